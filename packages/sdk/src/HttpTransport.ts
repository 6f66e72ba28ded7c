import { Agent } from 'undici';
import { connectionFailed, errorFromResponseBody, ScaiBunkerError } from './errors.js';
import type { HttpMethod, JsonRequestBody, JsonResponse, PathParams, PathWith, QueryParams } from './types.js';

export interface HttpTransportOptions {
  /** Server root, e.g. `http://127.0.0.1:8080` (API paths are appended to it). */
  baseUrl: string;
  apiKey?: string | undefined;
  /** A fetch to use instead of the global one (tests, proxies). */
  fetch?: typeof fetch;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

export interface CallOptions<M extends HttpMethod, P extends PathWith<M>> {
  path?: PathParams<M, P>;
  query?: QueryParams<M, P>;
  signal?: AbortSignal | undefined;
}

export interface JsonCallOptions<M extends HttpMethod, P extends PathWith<M>> extends CallOptions<M, P> {
  body?: JsonRequestBody<M, P>;
}

export interface RawCallOptions<M extends HttpMethod, P extends PathWith<M>> extends CallOptions<M, P> {
  /** JSON to send (`content-type: application/json`). */
  json?: unknown;
  /** A raw body; a ReadableStream is streamed (`duplex: 'half'`), never buffered. */
  body?: Uint8Array | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
}

/** Where an upload's source stream failed, so its own error is reported rather than a network one. */
export interface UploadSourceWatch {
  failure(): unknown;
}

type QueryValue = string | number | boolean | readonly (string | number | boolean)[] | undefined | null;

/**
 * Global fetch gives up after 300 s without response headers or body bytes (undici's defaults),
 * but a synchronous exec may run for hours and a streamed one may be silent for long. This
 * dispatcher, handed to global fetch, waits as long as the server does; callers bound waits
 * with an AbortSignal.
 */
let patientDispatcher: Agent | undefined;
function longRequestDispatcher(): Agent {
  patientDispatcher ??= new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  return patientDispatcher;
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: unknown })?.cause;
  if (cause instanceof Error) return cause.message || String((cause as { code?: unknown }).code ?? cause.name);
  return err instanceof Error ? err.message : String(err);
}

/**
 * The one place requests are built and answers checked: base URL + typed API path, bearer auth,
 * query encoding, JSON or streamed bodies, and every non-2xx mapped to a typed error.
 */
export class HttpTransport {
  readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly extraHeaders: Record<string, string>;
  private readonly usesGlobalFetch: boolean;

  constructor(opts: HttpTransportOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.baseUrl);
    } catch {
      throw new TypeError(`invalid ScaiBunker base URL: ${opts.baseUrl}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw new TypeError(`the ScaiBunker base URL must be http(s): ${opts.baseUrl}`);
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.fetchImpl = opts.fetch ?? globalThis.fetch;
    this.usesGlobalFetch = opts.fetch === undefined;
    this.extraHeaders = opts.headers ?? {};
  }

  /** Call a JSON operation and return its parsed answer. */
  async json<M extends HttpMethod, P extends PathWith<M>>(
    method: M,
    path: P,
    opts: JsonCallOptions<M, P> = {},
  ): Promise<JsonResponse<M, P>> {
    const res = await this.send(method, path, {
      ...(opts.path === undefined ? {} : { path: opts.path }),
      ...(opts.query === undefined ? {} : { query: opts.query }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.body === undefined ? {} : { json: opts.body }),
    });
    const text = await this.readText(res);
    try {
      return JSON.parse(text) as JsonResponse<M, P>;
    } catch {
      throw errorFromResponseBody(502, text);
    }
  }

  /** Send a request and return the (2xx) response with its body unread. */
  async send<M extends HttpMethod, P extends PathWith<M>>(
    method: M,
    path: P,
    opts: RawCallOptions<M, P> = {},
    upload?: UploadSourceWatch,
  ): Promise<Response> {
    const url = this.url(path, opts.path as Record<string, string> | undefined, opts.query as Record<string, QueryValue> | undefined);
    const headers: Record<string, string> = { accept: 'application/json', ...this.extraHeaders, ...opts.headers };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const init: RequestInit & { dispatcher?: Agent } = { method: method.toUpperCase(), headers };
    if (this.usesGlobalFetch) init.dispatcher = longRequestDispatcher();
    if (opts.signal) init.signal = opts.signal;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/octet-stream';
      init.body = opts.body;
      if (!(opts.body instanceof Uint8Array)) init.duplex = 'half';
    }
    let res: Response;
    try {
      res = await this.fetchImpl(url, init);
    } catch (err) {
      const sourceFailure = upload?.failure();
      if (sourceFailure !== undefined) throw sourceFailure;
      if (isAbortError(err) || err instanceof ScaiBunkerError) throw err;
      throw connectionFailed(`cannot reach ${this.baseUrl}: ${describeCause(err)}`, err);
    }
    if (!res.ok) throw errorFromResponseBody(res.status, await this.readText(res).catch(() => ''));
    return res;
  }

  /** A response body's bytes, with a broken connection reported as CONNECTION_FAILED. */
  async *bodyChunks(res: Response): AsyncGenerator<Uint8Array> {
    if (!res.body) return;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) yield chunk;
    } catch (err) {
      if (isAbortError(err)) throw err;
      throw connectionFailed(`the connection to ${this.baseUrl} broke mid-response: ${describeCause(err)}`, err);
    }
  }

  async readBuffer(res: Response): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.bodyChunks(res)) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  private async readText(res: Response): Promise<string> {
    return (await this.readBuffer(res)).toString('utf8');
  }

  private url(template: string, pathParams: Record<string, string> | undefined, query: Record<string, QueryValue> | undefined): string {
    const path = template.replace(/\{([A-Za-z_]+)\}/g, (_m, name: string) => {
      const value = pathParams?.[name];
      if (value === undefined) throw new TypeError(`missing path parameter ${name} for ${template}`);
      return encodeURIComponent(value);
    });
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined || value === null) continue;
      const values = Array.isArray(value) ? value : [value];
      for (const v of values) search.append(key, String(v));
    }
    const qs = search.toString();
    return `${this.baseUrl}${path}${qs ? `?${qs}` : ''}`;
  }
}
