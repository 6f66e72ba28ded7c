import { ApiError, type ErrorCode, WorkerError, type WorkerErrorCode } from '@scaibunker/core';

const MAP: Record<WorkerErrorCode, ErrorCode> = {
  BUNKER_NOT_FOUND: 'BUNKER_NOT_RUNNING',
  INVALID_STATE: 'BUNKER_INVALID_TRANSITION',
  SPAWN_FAILED: 'INTERNAL',
  IMAGE_NOT_CACHED: 'IMAGE_NOT_READY',
  NOT_FOUND: 'FILE_NOT_FOUND',
  NOT_A_DIRECTORY: 'FILE_CONFLICT',
  IS_A_DIRECTORY: 'FILE_CONFLICT',
  ALREADY_EXISTS: 'FILE_CONFLICT',
  NOT_EMPTY: 'FILE_CONFLICT',
  PERMISSION_DENIED: 'FILE_PERMISSION_DENIED',
  INVALID_PATH: 'VALIDATION_FAILED',
  NO_SPACE: 'DISK_FULL',
  TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  IO_ERROR: 'INTERNAL',
  CHANNEL_CLOSED: 'WORKER_UNAVAILABLE',
  WORKER_UNAVAILABLE: 'WORKER_UNAVAILABLE',
  BRIDGE_FAILED: 'BRIDGE_REJECTED',
  IMAGE_FETCH_FAILED: 'INTERNAL',
  HOST_DISK_FULL: 'INSUFFICIENT_STORAGE',
  PROCESS_NOT_FOUND: 'EXEC_NOT_FOUND',
  PROCESS_CONFLICT: 'EXEC_CONFLICT',
  PORT_NOT_LISTENING: 'PORT_NOT_LISTENING',
  TOO_MANY_TUNNELS: 'TUNNEL_LIMIT',
  SNAPSHOT_NOT_FOUND: 'SNAPSHOT_CORRUPT',
  SNAPSHOT_CORRUPT: 'SNAPSHOT_CORRUPT',
  SNAPSHOT_FAILED: 'SNAPSHOT_FAILED',
};

/** Spawn refusals that are answers of their own; any other failure to start is the worker's (WORKER_UNAVAILABLE). */
const SPAWN_ANSWERS: ReadonlySet<WorkerErrorCode> = new Set([
  'HOST_DISK_FULL',
  'SNAPSHOT_CORRUPT',
  'SNAPSHOT_NOT_FOUND',
  'IMAGE_NOT_CACHED',
  'BRIDGE_FAILED',
]);

/** A failed spawn as the create's answer: the worker's own code where it says something to the caller. */
export function fromSpawnError(err: unknown, bunkerId: string): ApiError {
  if (err instanceof WorkerError && SPAWN_ANSWERS.has(err.code)) return fromWorkerError(err) as ApiError;
  if (err instanceof ApiError) return err;
  return new ApiError('WORKER_UNAVAILABLE', `bunker could not be started: ${(err as Error).message}`, {
    bunker_id: bunkerId,
    ...(err instanceof WorkerError ? { worker_code: err.code } : {}),
  });
}

/** The one place worker-side failures become API errors. */
export function fromWorkerError(err: unknown): unknown {
  if (err instanceof WorkerError) return new ApiError(MAP[err.code] ?? 'INTERNAL', err.message, { worker_code: err.code });
  return err;
}
