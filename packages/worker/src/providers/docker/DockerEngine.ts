import { request } from 'node:http';
import type { Readable } from 'node:stream';

/** An Engine API answer: its status and body (parsed JSON when it was JSON). */
export interface EngineReply<T = unknown> {
  status: number;
  body: T;
  text: string;
  raw: Buffer;
}

export class DockerEngineError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'DockerEngineError';
  }
}

/** The Engine API version we speak (Docker 20.10+; every call used here exists since 1.41). */
export const DOCKER_API_VERSION = 'v1.41';

/**
 * A minimal Docker Engine API client over the daemon's Unix socket: plain HTTP/1.1 through
 * node:http, no docker CLI, no dependency. `host` is `unix:///path/docker.sock` (or the bare
 * path). Only what the Docker provider needs: JSON requests, a streamed upload (image import)
 * and a streamed download.
 */
export class DockerEngine {
  readonly socketPath: string;

  constructor(host: string) {
    if (/^(tcp|https?|ssh):/.test(host)) throw new Error(`--docker-host: only unix:// sockets are supported (got ${host})`);
    this.socketPath = host.replace(/^unix:\/\//, '');
    if (!this.socketPath.startsWith('/')) throw new Error(`--docker-host: expected unix:///absolute/path (got ${host})`);
  }

  /** JSON in, JSON (or text) out; never throws on an HTTP status (see `must`). */
  call<T = unknown>(
    method: string,
    path: string,
    o: { body?: unknown; stream?: Readable; timeoutMs?: number; headers?: Record<string, string> } = {},
  ): Promise<EngineReply<T>> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      let payload: Buffer | undefined;
      if (o.body !== undefined) {
        payload = Buffer.from(JSON.stringify(o.body));
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(payload.length);
      }
      const req = request(
        { socketPath: this.socketPath, method, path: `/${DOCKER_API_VERSION}${path}`, headers, timeout: o.timeoutMs ?? 60_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const raw = Buffer.concat(chunks);
            const text = raw.toString('utf8');
            let body: unknown = text;
            if ((res.headers['content-type'] ?? '').includes('application/json') && text.trim()) {
              try {
                body = JSON.parse(text);
              } catch {
                /* keep the text */
              }
            }
            resolve({ status: res.statusCode ?? 0, body: body as T, text, raw });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`docker ${method} ${path}: no answer within ${o.timeoutMs ?? 60_000} ms`)));
      req.on('error', reject);
      if (o.stream) {
        o.stream.on('error', (e) => req.destroy(e));
        o.stream.pipe(req);
      } else req.end(payload);
    });
  }

  /** Like call, but a status outside 2xx (and not in `ok`) throws DockerEngineError with the daemon's message. */
  async must<T = unknown>(
    method: string,
    path: string,
    o: { body?: unknown; stream?: Readable; timeoutMs?: number; headers?: Record<string, string>; ok?: number[] } = {},
  ): Promise<EngineReply<T>> {
    const r = await this.call<T>(method, path, o);
    if ((r.status >= 200 && r.status < 300) || o.ok?.includes(r.status)) return r;
    throw new DockerEngineError(r.status, `docker ${method} ${path.split('?')[0]}: ${r.status} ${engineMessage(r)}`);
  }
}

/** The daemon's error text (`{"message": …}`) or the raw body. */
export function engineMessage(r: EngineReply): string {
  const b = r.body as { message?: string } | string;
  return (typeof b === 'object' && b?.message) || r.text.trim().slice(0, 1000);
}

/** Query string of a params object (values JSON-encoded when not strings). */
export function qs(params: Record<string, unknown>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(typeof v === 'string' ? v : JSON.stringify(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/** Demultiplexes a non-TTY container's log stream (8-byte frame headers: stream, 0, 0, 0, size32 BE). */
export function demuxLogs(raw: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= raw.length) {
    const size = raw.readUInt32BE(i + 4);
    parts.push(raw.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return Buffer.concat(parts).toString('utf8');
}
