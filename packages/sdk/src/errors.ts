/**
 * The SDK's typed errors, and the one place that maps an API error code to its class.
 *
 * Every code in @scaibunker/core's ERROR_CODES table has an entry in ERROR_CLASS_BY_CODE (the
 * `Record<ErrorCode, …>` type makes a missing one a compile error), and test/errors.test.ts
 * checks each maps to a class whose family matches the code's HTTP status.
 */
import { ERROR_CODES, type ErrorCode } from '@scaibunker/core';

/** Codes the SDK itself produces when there is no API error body to read. */
export const SDK_ERROR_CODES = {
  /** The server could not be reached, or the connection broke mid-response. */
  CONNECTION_FAILED: { status: 503 },
  /** The server answered something that is not the API's error shape (a proxy page, say). */
  UNEXPECTED_RESPONSE: { status: 502 },
} as const;
export type SdkErrorCode = keyof typeof SDK_ERROR_CODES;

/** An API code, an SDK code, or a code from a newer server this SDK does not know yet. */
export type ScaiBunkerErrorCode = ErrorCode | SdkErrorCode | (string & Record<never, never>);

export interface ScaiBunkerErrorInit {
  code: ScaiBunkerErrorCode;
  status: number;
  message: string;
  details?: Record<string, unknown>;
  cause?: unknown;
}

/** Base of every error the SDK throws for an API or transport failure. */
export class ScaiBunkerError extends Error {
  readonly code: ScaiBunkerErrorCode;
  /** The HTTP status the server answered (or the code's table status for stream errors). */
  readonly status: number;
  readonly details: Record<string, unknown>;

  constructor(init: ScaiBunkerErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.status = init.status;
    this.details = init.details ?? {};
  }
}

/** 400 or 416: the request was malformed (VALIDATION_FAILED), its checksum wrong or its range outside the object. */
export class ValidationError extends ScaiBunkerError {}
/** 401/403: missing or bad credentials, or a permission the caller lacks. */
export class AuthError extends ScaiBunkerError {}
/** 404: the bunker, file, image, tenant, worker or output does not exist (for this tenant). */
export class NotFoundError extends ScaiBunkerError {}
/** 409: the object's state does not allow the operation (not running, not ready, wrong file type). */
export class ConflictError extends ScaiBunkerError {}
/** 413: the upload or body is over its cap. */
export class PayloadTooLargeError extends ScaiBunkerError {}
/** 429: a quota bucket would be exceeded. */
export class QuotaError extends ScaiBunkerError {}
/** 500: an unexpected fault on the server; the request id is in `details`. */
export class InternalError extends ScaiBunkerError {}
/** 502/503/504 and connection failures: a worker, or the server itself, cannot be reached. */
export class UnavailableError extends ScaiBunkerError {}
/** 507: the bunker's disk is full, or the platform's own storage (INSUFFICIENT_STORAGE). */
export class DiskFullError extends ScaiBunkerError {}

export type ScaiBunkerErrorClass = new (init: ScaiBunkerErrorInit) => ScaiBunkerError;

/** The one mapping from API error code to class. */
export const ERROR_CLASS_BY_CODE: Record<ErrorCode, ScaiBunkerErrorClass> = {
  VALIDATION_FAILED: ValidationError,
  UNAUTHENTICATED: AuthError,
  PERMISSION_DENIED: AuthError,
  NETWORK_PROFILE_DENIED: AuthError,
  FILE_PERMISSION_DENIED: AuthError,
  BUNKER_NOT_FOUND: NotFoundError,
  IMAGE_NOT_FOUND: NotFoundError,
  TENANT_NOT_FOUND: NotFoundError,
  WORKER_NOT_FOUND: NotFoundError,
  API_KEY_NOT_FOUND: NotFoundError,
  FILE_NOT_FOUND: NotFoundError,
  OUTPUT_NOT_FOUND: NotFoundError,
  EXEC_NOT_FOUND: NotFoundError,
  AUDIT_BATCH_NOT_FOUND: NotFoundError,
  QUOTA_PROFILE_NOT_FOUND: NotFoundError,
  BRIDGE_NOT_FOUND: NotFoundError,
  BLOB_NOT_FOUND: NotFoundError,
  AVAILABILITY_GROUP_NOT_FOUND: NotFoundError,
  NOT_FOUND: NotFoundError,
  PREVIEW_NOT_FOUND: NotFoundError,
  BUNKER_INVALID_TRANSITION: ConflictError,
  BUNKER_NOT_RUNNING: ConflictError,
  EXEC_CONFLICT: ConflictError,
  IMAGE_NOT_READY: ConflictError,
  IMAGE_CONFLICT: ConflictError,
  AVAILABILITY_GROUP_CONFLICT: ConflictError,
  AVAILABILITY_GROUP_LIMIT: ConflictError,
  IMAGE_IN_USE: ConflictError,
  FILE_CONFLICT: ConflictError,
  QUOTA_PROFILE_CONFLICT: ConflictError,
  BRIDGE_CONFLICT: ConflictError,
  SNAPSHOT_NOT_READY: ConflictError,
  SNAPSHOT_IN_USE: ConflictError,
  SNAPSHOT_NOT_FOUND: NotFoundError,
  CODE_CONTEXT_NOT_FOUND: NotFoundError,
  KERNEL_UNAVAILABLE: ConflictError,
  SNAPSHOT_CORRUPT: ConflictError,
  SNAPSHOT_FAILED: UnavailableError,
  PREVIEWS_DISABLED: ConflictError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  CHECKSUM_MISMATCH: ValidationError,
  RANGE_NOT_SATISFIABLE: ValidationError,
  QUOTA_EXCEEDED: QuotaError,
  TUNNEL_LIMIT: QuotaError,
  DISK_FULL: DiskFullError,
  INTERNAL: InternalError,
  BRIDGE_REJECTED: UnavailableError,
  PORT_NOT_LISTENING: UnavailableError,
  PORT_TIMEOUT: UnavailableError,
  WORKER_UNAVAILABLE: UnavailableError,
  NO_SUITABLE_WORKER: UnavailableError,
  STORE_UNAVAILABLE: UnavailableError,
  LIVE_STATE_UNAVAILABLE: UnavailableError,
  BLOB_STORE_UNAVAILABLE: UnavailableError,
  INSUFFICIENT_STORAGE: DiskFullError,
};

/** For codes this SDK does not know (a newer server) or bodies without a code: by status. */
export function errorClassForStatus(status: number): ScaiBunkerErrorClass {
  if (status === 400 || status === 416) return ValidationError;
  if (status === 401 || status === 403) return AuthError;
  if (status === 404) return NotFoundError;
  if (status === 409) return ConflictError;
  if (status === 413) return PayloadTooLargeError;
  if (status === 429) return QuotaError;
  if (status === 502 || status === 503 || status === 504) return UnavailableError;
  if (status === 507) return DiskFullError;
  if (status >= 500) return InternalError;
  return ScaiBunkerError;
}

export function isKnownErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/** The error for an API error body `{ code, message, details }`, answered with `status`. */
export function errorFromApi(
  status: number | undefined,
  body: { code: string; message?: string; details?: Record<string, unknown> },
): ScaiBunkerError {
  const known = isKnownErrorCode(body.code);
  const effectiveStatus = status ?? (known ? ERROR_CODES[body.code as ErrorCode].status : 500);
  const ErrorClass = known ? ERROR_CLASS_BY_CODE[body.code as ErrorCode] : errorClassForStatus(effectiveStatus);
  return new ErrorClass({
    code: body.code,
    status: effectiveStatus,
    message: body.message ?? body.code,
    details: body.details ?? {},
  });
}

/** The error for a non-2xx response: its `{ error }` body when it has one, else by status. */
export function errorFromResponseBody(status: number, bodyText: string): ScaiBunkerError {
  try {
    const parsed = JSON.parse(bodyText) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    const e = parsed?.error;
    if (e && typeof e.code === 'string') {
      return errorFromApi(status, {
        code: e.code,
        ...(typeof e.message === 'string' ? { message: e.message } : {}),
        ...(e.details && typeof e.details === 'object' ? { details: e.details as Record<string, unknown> } : {}),
      });
    }
  } catch {
    // not JSON: fall through
  }
  const ErrorClass = errorClassForStatus(status);
  const snippet = bodyText.trim().slice(0, 200);
  return new ErrorClass({
    code: 'UNEXPECTED_RESPONSE',
    status,
    message: `HTTP ${status}${snippet ? `: ${snippet}` : ''}`,
    details: { body: snippet },
  });
}

/** A transport failure: no usable answer from the server. */
export function connectionFailed(message: string, cause?: unknown): UnavailableError {
  return new UnavailableError({
    code: 'CONNECTION_FAILED',
    status: SDK_ERROR_CODES.CONNECTION_FAILED.status,
    message,
    ...(cause === undefined ? {} : { cause }),
  });
}
