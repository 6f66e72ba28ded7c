/**
 * The controller ↔ worker contract: its shapes (TypeBox), the WorkerApi interface, the worker
 * error vocabulary and WORKER_ROUTES, the one list of the worker's HTTP routes, and the frames
 * of its multiplexed channel (mux.ts). The clients generated from that list are
 * `@scaibunker/core/worker-client` (HTTP) and `@scaibunker/core/worker-mux-client` (the channel,
 * what the controller uses), kept out of this entry, which every CLI command loads.
 */
export * from './api.js';
export * from './errors.js';
export { MuxFrameDecoder } from './MuxFrameDecoder.js';
export * from './mux.js';
export * from './routes.js';
export type {
  BridgeRequest,
  BunkerStats,
  EnsureImageResult,
  ExecOutcome,
  ExecRequest,
  FileStatInfo,
  Heartbeat,
  HeartbeatReply,
  ProcessInfo,
  ProcessState,
  SnapshotRef,
  SnapshotRequest,
  SnapshotResult,
  SpawnRequest,
  StartProcessRequest,
  TerminalSize,
  TransitInterfaceSpec,
  WatchEvent,
} from './schemas.js';
export * as workerSchemas from './schemas.js';
export { TurnBatchedWriter } from './TurnBatchedWriter.js';
