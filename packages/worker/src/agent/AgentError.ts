/**
 * Error raised by the agent client.
 *
 * `code` is either one of the agent's stable error codes (NOT_FOUND, NOT_A_DIRECTORY,
 * IS_A_DIRECTORY, ALREADY_EXISTS, PERMISSION_DENIED, NOT_EMPTY, INVALID_PATH, NO_SPACE,
 * IO_ERROR, INVALID_ARGUMENT, TOO_MANY_ENTRIES, TOO_MANY_STREAMS, UNSUPPORTED, CANCELLED,
 * PROTOCOL_ERROR) or a client-side code (CHANNEL_CLOSED, CONNECT_TIMEOUT, CONNECT_FAILED,
 * TIMEOUT (no HELLO in time), ABORTED).
 */
export class AgentError extends Error {
  readonly code: string;
  /** errno name reported by the agent (e.g. 'ENOENT'), when the error came from a syscall. */
  readonly errno: string | undefined;

  constructor(code: string, message: string, opts?: { errno?: string; cause?: unknown }) {
    super(message, opts?.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'AgentError';
    this.code = code;
    this.errno = opts?.errno;
  }
}
