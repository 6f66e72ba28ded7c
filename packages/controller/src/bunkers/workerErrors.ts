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
};

/** The one place worker-side failures become API errors. */
export function fromWorkerError(err: unknown): unknown {
  if (err instanceof WorkerError) return new ApiError(MAP[err.code] ?? 'INTERNAL', err.message, { worker_code: err.code });
  return err;
}
