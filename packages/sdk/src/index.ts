export { AdminApi } from './AdminApi.js';
export { AuditApi, type AuditQueryOptions } from './AuditApi.js';
export { AvailabilityGroupsApi } from './AvailabilityGroupsApi.js';
export { BridgesApi } from './BridgesApi.js';
export { Bunker, type CreateBunkerOptions, type ExecOptions, type ListBunkersOptions, type PageOptions } from './Bunker.js';
export { BunkerCode, type CodeError, type CodeResult, type Execution, type RunCodeOptions } from './BunkerCode.js';
export { BunkerFiles, type WatchOptions, type WriteFileOptions } from './BunkerFiles.js';
export { BunkerPorts, type PreviewInfo, type PreviewOptions } from './BunkerPorts.js';
export { BunkerProcess } from './BunkerProcess.js';
export {
  type AttachOptions,
  BunkerProcesses,
  type ListProcessesOptions,
  type ShellOptions,
  type StartProcessOptions,
  type TerminalAuth,
} from './BunkerProcesses.js';
export * from './errors.js';
export type { components, operations, paths } from './generated/schema.js';
export { HttpTransport, type HttpTransportOptions, type RequestBody, type TransportResponse } from './HttpTransport.js';
export { ImagesApi } from './ImagesApi.js';
export { type Page, Paginator } from './Paginator.js';
export type { ProcessEvent, ProcessEventsOptions, ProcessExitEvent, ProcessOutputEvent } from './processEvents.js';
export { QuotasApi } from './QuotasApi.js';
export { type ClientOptions, DEFAULT_BASE_URL, ScaiBunkerClient } from './ScaiBunkerClient.js';
export { type ListSnapshotsOptions, SnapshotsApi } from './SnapshotsApi.js';
export { readSseEvents, type SseEvent, SseParser } from './SseParser.js';
export { Terminal, type TerminalExit } from './Terminal.js';
export type * from './types.js';
export { UsageApi, type UsageQueryOptions } from './UsageApi.js';
export type { UploadData } from './uploadBody.js';
export { WorkersApi } from './WorkersApi.js';
