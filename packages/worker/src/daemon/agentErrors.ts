/** How the agent's errors cross into the worker contract's vocabulary. */
import { AgentError } from '../agent/AgentError.js';
import { WorkerError, type WorkerErrorCode } from '../WorkerApi.js';

const PASSTHROUGH_AGENT_CODES = new Set<WorkerErrorCode>([
  'NOT_FOUND',
  'NOT_A_DIRECTORY',
  'IS_A_DIRECTORY',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'NOT_EMPTY',
  'INVALID_PATH',
  'NO_SPACE',
  'IO_ERROR',
  'CHANNEL_CLOSED',
  'PORT_NOT_LISTENING',
]);

/** AgentError codes keep their name across the boundary; anything else is an IO_ERROR. */
export function toWorkerError(err: unknown): WorkerError {
  if (err instanceof WorkerError) return err;
  if (err instanceof AgentError) {
    const code = err.code as WorkerErrorCode;
    if (PASSTHROUGH_AGENT_CODES.has(code)) return new WorkerError(code, err.message);
    // Could not (re)open the channel: to a caller that is the same as a closed one.
    if (err.code === 'CONNECT_TIMEOUT' || err.code === 'CONNECT_FAILED') return new WorkerError('CHANNEL_CLOSED', err.message);
    return new WorkerError('IO_ERROR', err.message);
  }
  return new WorkerError('IO_ERROR', messageOf(err));
}

/** An error's message, with a host command's output (`details`) when it has one. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const details = (err as { details?: unknown }).details;
    return typeof details === 'string' && details ? `${err.message}: ${details.trim()}` : err.message;
  }
  return String(err);
}
