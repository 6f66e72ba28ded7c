/**
 * The controller ↔ worker contract is declared once, in @scaibunker/core (core/src/worker):
 * shapes, WorkerApi, ControllerLink, the error vocabulary and WORKER_ROUTES. Re-exported here
 * for the worker's own modules.
 */
export type {
  BunkerStats,
  CachedImage,
  CachedImageSource,
  ControllerLink,
  EventHandlers,
  ExecHandlers,
  ExecOutcome,
  ExecRequest,
  FileStatInfo,
  Heartbeat,
  HeartbeatReply,
  ProcessInfo,
  ProcessOutput,
  SnapshotRef,
  SnapshotRequest,
  SnapshotResult,
  SpawnRequest,
  StartProcessRequest,
  TransitInterfaceSpec,
  WatchEvent,
  WorkerApi,
  WorkerErrorCode,
} from '@scaibunker/core';
export { WORKER_ERROR_CODES, WorkerError } from '@scaibunker/core';
