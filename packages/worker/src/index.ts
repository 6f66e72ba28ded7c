/** Public surface of @scaibunker/worker: the worker daemon, its HTTP transport, providers and the agent client. */

export type { FileStat, HealthInfo } from './agent/AgentClient.js';
export { AgentClient, AgentError } from './agent/AgentClient.js';
export { Certification, type CertifyCheck, type CertifyReport } from './certify/Certification.js';
export type { CertifyConfig } from './certify/CertifyConfig.js';
export { Worker, type WorkerCapacity, type WorkerLogger, type WorkerNetworking, type WorkerOptions } from './daemon/Worker.js';
export { HttpControllerLink, type HttpControllerLinkOptions } from './http/HttpControllerLink.js';
export { HttpWorkerClient } from './http/HttpWorkerClient.js';
export { WORKER_ERROR_STATUS, WorkerHttpServer, type WorkerHttpServerOptions } from './http/WorkerHttpServer.js';
export { FLOWLOG_BINARY, WorkerNetwork, type WorkerNetworkOptions } from './network/WorkerNetwork.js';
export { ContainerProvider, type ContainerProviderOptions } from './providers/container/ContainerProvider.js';
export {
  CONTAINER_RUNTIMES,
  type ContainerRuntimeSetting,
  createProviders,
  DEFAULT_DOCKER_HOST,
  type ProviderSettings,
  parseIsolations,
} from './providers/createProviders.js';
export { DockerProvider, type DockerProviderOptions } from './providers/docker/DockerProvider.js';
export { loadProviderModule, type PluginProviderOptions, PROVIDER_METHODS, providerContractGaps } from './providers/loadProviderModule.js';
export { FirecrackerVmm } from './providers/microvm/firecracker/FirecrackerVmm.js';
export { MicrovmProvider, type MicrovmProviderOptions } from './providers/microvm/MicrovmProvider.js';
export * from './providers/Provider.js';
export { NONET_BINARY, ProotProvider, type ProotProviderOptions } from './providers/proot/ProotProvider.js';
export * from './WorkerApi.js';
