/**
 * How the worker's transports (HttpWorkerClient, MuxWorkerClient) turn what went wrong on the
 * wire into the WorkerError a caller sees: one mapping, so the controller cannot tell them apart.
 */
import type { IncomingMessage } from 'node:http';
import { toWorkerError, WorkerError } from './errors.js';

/** Socket-level failures that mean "the worker is not there (any more)". */
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNABORTED',
]);

/** A socket or request failure as a WorkerError (`origin`: the worker's, for the message). */
export function transportError(err: unknown, origin: string): WorkerError {
  if (err instanceof WorkerError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.name === 'AbortError') return new WorkerError('IO_ERROR', 'request aborted by the caller');
  if (e?.code && UNAVAILABLE_ERRNOS.has(e.code)) return new WorkerError('WORKER_UNAVAILABLE', `worker at ${origin}: ${e.message}`);
  if (e?.message === 'aborted' || e?.message === 'socket hang up') {
    return new WorkerError('WORKER_UNAVAILABLE', `worker at ${origin}: connection lost`);
  }
  return new WorkerError('IO_ERROR', e?.message ?? String(err));
}

export async function readBody(res: IncomingMessage, limit = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new WorkerError('IO_ERROR', 'worker reply too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Turns an error response into the WorkerError the worker raised. */
export async function errorFrom(res: IncomingMessage): Promise<WorkerError> {
  const status = res.statusCode ?? 0;
  let code: string | undefined;
  let message = `worker answered HTTP ${status}`;
  try {
    const body = JSON.parse(await readBody(res)) as { error?: { code?: string; message?: string } };
    code = body.error?.code;
    if (body.error?.message) message = body.error.message;
  } catch {
    /* not our JSON: keep the status-based message */
  }
  // A worker that rejects our token cannot serve us: to the scheduler that is "unavailable".
  if (status === 401) return new WorkerError('WORKER_UNAVAILABLE', `worker rejected the token: ${message}`);
  if (code) return toWorkerError(code, message);
  return new WorkerError(status === 503 ? 'WORKER_UNAVAILABLE' : 'IO_ERROR', message);
}
