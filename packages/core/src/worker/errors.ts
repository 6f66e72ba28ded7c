/**
 * The worker's error vocabulary: every failure crossing the controller ↔ worker boundary (either
 * transport) is a WorkerError with one of these codes; the controller maps them to API errors.
 */

export const WORKER_ERROR_CODES = [
  'BUNKER_NOT_FOUND',
  'INVALID_STATE',
  'SPAWN_FAILED',
  'IMAGE_NOT_CACHED',
  'NOT_FOUND',
  'NOT_A_DIRECTORY',
  'IS_A_DIRECTORY',
  'ALREADY_EXISTS',
  'NOT_EMPTY',
  'PERMISSION_DENIED',
  'INVALID_PATH',
  'NO_SPACE',
  'TOO_LARGE',
  'IO_ERROR',
  'CHANNEL_CLOSED',
  'WORKER_UNAVAILABLE',
  'BRIDGE_FAILED',
  /** An image could not be fetched (storage failed or sent bytes of the wrong digest); the message says why. */
  'IMAGE_FETCH_FAILED',
  /** The worker's own disk is full or under its reserve (`--disk-reserve`): no new bunker, no image fetch. */
  'HOST_DISK_FULL',
  /** No such exec in this bunker's journal (never started here, or its journal was dropped). */
  'PROCESS_NOT_FOUND',
  /** The process has ended, its stdin is closed, or it has no terminal (to resize). */
  'PROCESS_CONFLICT',
  /** openTunnel: nothing listens on 127.0.0.1:port inside the bunker (connection refused). */
  'PORT_NOT_LISTENING',
  /** openTunnel: the bunker already has the most concurrent tunnels a worker allows (256). */
  'TOO_MANY_TUNNELS',
  /** spawn with restore: storage has no archive under that snapshot id. */
  'SNAPSHOT_NOT_FOUND',
  /** spawn with restore: the archive's bytes do not hash to the declared sha256, or it does not unpack. */
  'SNAPSHOT_CORRUPT',
  /** snapshot: the archive could not be made or stored; nothing was stored, the bunker runs on. */
  'SNAPSHOT_FAILED',
] as const;
export type WorkerErrorCode = (typeof WORKER_ERROR_CODES)[number];

export class WorkerError extends Error {
  constructor(
    readonly code: WorkerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerError';
  }
}

/** HTTP status per code on the worker's HTTP transport (a route may override one, see WorkerRoute.errorStatus). */
export const WORKER_ERROR_STATUS: Record<WorkerErrorCode, number> = {
  BUNKER_NOT_FOUND: 404,
  INVALID_STATE: 409,
  SPAWN_FAILED: 500,
  IMAGE_NOT_CACHED: 409,
  NOT_FOUND: 404,
  NOT_A_DIRECTORY: 409,
  IS_A_DIRECTORY: 409,
  ALREADY_EXISTS: 409,
  NOT_EMPTY: 409,
  PERMISSION_DENIED: 403,
  INVALID_PATH: 400,
  NO_SPACE: 507,
  TOO_LARGE: 413,
  IO_ERROR: 500,
  CHANNEL_CLOSED: 502,
  WORKER_UNAVAILABLE: 503,
  BRIDGE_FAILED: 422,
  IMAGE_FETCH_FAILED: 502,
  HOST_DISK_FULL: 507,
  PROCESS_NOT_FOUND: 404,
  PROCESS_CONFLICT: 409,
  PORT_NOT_LISTENING: 502,
  TOO_MANY_TUNNELS: 429,
  SNAPSHOT_NOT_FOUND: 404,
  SNAPSHOT_CORRUPT: 422,
  SNAPSHOT_FAILED: 500,
};

const KNOWN_CODES: ReadonlySet<string> = new Set(WORKER_ERROR_CODES);

/** A WorkerError from a code read off the wire; a code this side does not know becomes IO_ERROR. */
export function toWorkerError(code: string, message: string): WorkerError {
  return new WorkerError(KNOWN_CODES.has(code) ? (code as WorkerErrorCode) : 'IO_ERROR', message);
}

/** The body of every error answer of the worker's HTTP transport. */
export function workerErrorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}
