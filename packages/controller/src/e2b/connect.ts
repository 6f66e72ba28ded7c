import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, type ErrorCode } from '@scaibunker/core';

/**
 * The Connect protocol (connectrpc.com/docs/protocol) as envd speaks it to the E2B SDK, JSON
 * codec over HTTP/1.1: unary calls are `application/json` both ways (errors: an HTTP status and
 * `{code, message}`); streams are `application/connect+json`, each message an envelope — one
 * flags byte, a big-endian uint32 length, the JSON — ending with an end-of-stream envelope
 * (flags 0x02) that carries `{}` or `{"error": {code, message}}`. Stream errors always travel
 * in that envelope under HTTP 200, as the spec asks.
 */

export const CONNECT_CODES = [
  'canceled',
  'unknown',
  'invalid_argument',
  'deadline_exceeded',
  'not_found',
  'already_exists',
  'permission_denied',
  'resource_exhausted',
  'failed_precondition',
  'aborted',
  'out_of_range',
  'unimplemented',
  'internal',
  'unavailable',
  'data_loss',
  'unauthenticated',
] as const;
export type ConnectCode = (typeof CONNECT_CODES)[number];

/** The HTTP status of a unary error (the Connect spec's table). */
const HTTP_STATUS: Record<ConnectCode, number> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

/** A Connect error raised by the envd dispatcher itself (unknown method, malformed envelope). */
export class ConnectError extends Error {
  constructor(
    readonly code: ConnectCode,
    message: string,
  ) {
    super(message);
  }
}

/** Our API codes → Connect codes (the SDK maps not_found to NotFoundError / FileNotFoundError). */
const FROM_API: Partial<Record<ErrorCode, ConnectCode>> = {
  VALIDATION_FAILED: 'invalid_argument',
  UNAUTHENTICATED: 'unauthenticated',
  PERMISSION_DENIED: 'permission_denied',
  FILE_PERMISSION_DENIED: 'permission_denied',
  NETWORK_PROFILE_DENIED: 'permission_denied',
  BUNKER_NOT_FOUND: 'not_found',
  FILE_NOT_FOUND: 'not_found',
  EXEC_NOT_FOUND: 'not_found',
  NOT_FOUND: 'unimplemented',
  FILE_CONFLICT: 'already_exists',
  EXEC_CONFLICT: 'failed_precondition',
  BUNKER_NOT_RUNNING: 'unavailable',
  BUNKER_INVALID_TRANSITION: 'failed_precondition',
  PAYLOAD_TOO_LARGE: 'resource_exhausted',
  QUOTA_EXCEEDED: 'resource_exhausted',
  TUNNEL_LIMIT: 'resource_exhausted',
  DISK_FULL: 'resource_exhausted',
  INSUFFICIENT_STORAGE: 'resource_exhausted',
  WORKER_UNAVAILABLE: 'unavailable',
  STORE_UNAVAILABLE: 'unavailable',
  LIVE_STATE_UNAVAILABLE: 'unavailable',
  BLOB_STORE_UNAVAILABLE: 'unavailable',
};

export function toConnectError(err: unknown): { code: ConnectCode; message: string } {
  if (err instanceof ConnectError) return { code: err.code, message: err.message };
  if (err instanceof ApiError) return { code: FROM_API[err.code] ?? 'internal', message: err.message };
  return { code: 'internal', message: 'internal error' };
}

/**
 * The error body of a unary call. It also carries our own `{error: {…}}` next to Connect's
 * `code`/`message`, so a client of either kind reads it (Connect ignores the extra field).
 */
export function unaryErrorBody(err: unknown): { status: number; body: Record<string, unknown> } {
  const e = toConnectError(err);
  const own = err instanceof ApiError ? err.toBody() : {};
  return { status: HTTP_STATUS[e.code], body: { code: e.code, message: e.message, ...own } };
}

export const FLAG_END_STREAM = 0x02;
const FLAG_COMPRESSED = 0x01;

export function envelope(flags: number, json: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(json));
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function endStream(err?: unknown): Buffer {
  return envelope(FLAG_END_STREAM, err === undefined ? {} : { error: toConnectError(err) });
}

/** Largest request message we take (the SDK's requests are small; input chunks are capped by it too). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/**
 * Reads enveloped messages off a request stream, one at a time. Malformed input (a compressed
 * or oversized frame, a truncated one, JSON that does not parse) is a ConnectError, never a hang.
 */
export class EnvelopeReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private failed: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(stream: NodeJS.ReadableStream) {
    stream.on('data', (c: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, c]) : c;
      this.wake?.();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    stream.on('error', (e: Error) => {
      this.failed = e;
      this.wake?.();
    });
    stream.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  /** The next message's JSON, or undefined at a clean end of the stream (or an end-stream frame). */
  async next(): Promise<unknown | undefined> {
    for (;;) {
      if (this.buf.length >= 5) {
        const flags = this.buf.readUInt8(0);
        const len = this.buf.readUInt32BE(1);
        if (flags & FLAG_COMPRESSED) throw new ConnectError('internal', 'compressed messages are not supported');
        if (len > MAX_MESSAGE_BYTES)
          throw new ConnectError('resource_exhausted', `message of ${len} bytes is over the ${MAX_MESSAGE_BYTES} cap`);
        if (this.buf.length >= 5 + len) {
          const payload = this.buf.subarray(5, 5 + len);
          this.buf = this.buf.subarray(5 + len);
          if (flags & FLAG_END_STREAM) return undefined;
          return parseJson(payload);
        }
      }
      if (this.failed) throw new ConnectError('canceled', this.failed.message);
      if (this.ended) {
        if (this.buf.length > 0) throw new ConnectError('invalid_argument', 'truncated envelope');
        return undefined;
      }
      await new Promise<void>((r) => {
        this.wake = r;
      });
      this.wake = undefined;
    }
  }
}

function parseJson(payload: Buffer): unknown {
  try {
    return payload.length === 0 ? {} : JSON.parse(payload.toString('utf8'));
  } catch (e) {
    throw new ConnectError('invalid_argument', `malformed JSON message: ${(e as Error).message}`);
  }
}

/** A unary request's JSON body (capped), or invalid_argument. */
export async function readUnaryBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_MESSAGE_BYTES) throw new ConnectError('resource_exhausted', `request over the ${MAX_MESSAGE_BYTES}-byte cap`);
    chunks.push(c);
  }
  return parseJson(Buffer.concat(chunks));
}

export type CallKind = 'unary' | 'server_stream' | 'client_stream';

/** Content type the request must carry for its kind (JSON codec only). */
export function checkContentType(req: IncomingMessage, kind: CallKind): void {
  const ct = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  const want = kind === 'unary' ? 'application/json' : 'application/connect+json';
  if (ct === want) return;
  if (ct === 'application/proto' || ct === 'application/connect+proto') {
    throw new ConnectError('unimplemented', 'only the JSON codec is served (useBinaryFormat: false)');
  }
  throw new ConnectError('invalid_argument', `content-type must be ${want}, not ${ct || 'none'}`);
}

/** `Connect-Timeout-Ms`: the call's deadline (envd kills a started process at it); 0 when none. */
export function timeoutMsOf(req: IncomingMessage): number {
  const v = Number(req.headers['connect-timeout-ms']);
  return Number.isFinite(v) && v > 0 ? Math.floor(v) : 0;
}

/** An open server stream: envelopes written with back-pressure, one end-of-stream frame at most. */
export class ServerStream {
  private done = false;

  constructor(private readonly res: ServerResponse) {
    res.writeHead(200, { 'content-type': 'application/connect+json', 'cache-control': 'no-store' });
    res.flushHeaders();
  }

  get closed(): boolean {
    return this.done || this.res.destroyed || this.res.writableEnded;
  }

  async send(message: unknown): Promise<void> {
    if (this.closed) return;
    if (!this.res.write(envelope(0, message))) {
      await new Promise<void>((r) => {
        const fin = () => {
          this.res.off('drain', fin);
          this.res.off('close', fin);
          r();
        };
        this.res.on('drain', fin);
        this.res.on('close', fin);
      });
    }
  }

  end(err?: unknown): void {
    if (this.closed) return;
    this.done = true;
    this.res.end(endStream(err));
  }
}
