import { Agent, type Dispatcher } from 'undici';
import { connectionFailed, errorFromResponseBody, ScaiBunkerError } from './errors.js';
import type { HttpMethod, JsonRequestBody, JsonResponse, PathParams, PathWith, QueryParams } from './types.js';

export interface HttpTransportOptions {
  /** Server root, e.g. `http://127.0.0.1:8080` (API paths are appended to it). */
  baseUrl: string;
  apiKey?: string | undefined;
  /** A fetch to use instead of the SDK's own HTTP client (tests, proxies); every request then goes through it. */
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

/** A request body: bytes are sent with a content-length; streams are sent chunked as they are read, never buffered. */
export type RequestBody = Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export interface RawCallOptions<M extends HttpMethod, P extends PathWith<M>> extends CallOptions<M, P> {
  /** JSON to send (`content-type: application/json`). */
  json?: unknown;
  /** A raw body; a stream (web ReadableStream or async iterable) is streamed, never buffered. */
  body?: RequestBody;
  headers?: Record<string, string>;
}

/** Where an upload's source stream failed, so its own error is reported rather than a network one. */
export interface UploadSourceWatch {
  failure(): unknown;
}

/**
 * A response as the transport hands it on, whichever HTTP client fetched it: the status, its
 * headers, and the body unread. Read the body with `bodyChunks` or `readBuffer`, which report a
 * connection that breaks mid-body as CONNECTION_FAILED.
 */
export interface TransportResponse {
  readonly status: number;
  /** A response header by case-insensitive name (repeated headers joined with `, `), or null. */
  header(name: string): string | null;
  /** The body's bytes, unread; null when there is none. */
  readonly body: AsyncIterable<Uint8Array> | null;
  /** The request's abort signal: an abort while the body is read is not a network failure. */
  readonly signal?: AbortSignal | undefined;
  /** The response as a fetch Response (the one fetch answered, when the request went through fetch). */
  toResponse(): Response;
}

type QueryValue = string | number | boolean | readonly (string | number | boolean)[] | undefined | null;

/** A request as both HTTP clients take it. */
interface Outgoing {
  method: string;
  /** Path and query, to append to the base URL. */
  target: string;
  headers: Record<string, string>;
  body: string | RequestBody | undefined;
  signal: AbortSignal | undefined;
  /** Set once an error answer has been read: a streamed body still being sent stops there. */
  answered: boolean;
}

/**
 * The one HTTP client the SDK's requests go through when no fetch is given: undici's dispatcher
 * API over a keep-alive connection pool per server, shared by every client in the process.
 * It skips fetch's WHATWG Request/Headers/Response/stream layers, which cost a good part of a
 * millisecond per call (more on a busy small machine). undici gives up after 300 s without
 * response headers or body bytes by default, but a synchronous exec may run for hours and a
 * streamed one may be silent for long: this one waits as long as the server does; callers bound
 * waits with an AbortSignal.
 */
let sharedAgent: Agent | undefined;
function patientAgent(): Agent {
  sharedAgent ??= new Agent({ headersTimeout: 0, bodyTimeout: 0 });
  return sharedAgent;
}

/** Fetch follows redirects (at most 20); so does the SDK's own client. */
const MAX_REDIRECTIONS = 20;

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: unknown })?.cause;
  const e = cause instanceof Error ? cause : err;
  if (e instanceof Error) return e.message || String((e as { code?: unknown }).code ?? e.name);
  return String(e);
}

/**
 * A pull-based web stream over an async iterable: read only as fast as it is consumed. Once
 * `stopped()` says so it errors instead of reading on, and closes the source.
 */
function toWebStream(source: AsyncIterable<Uint8Array>, stopped: () => boolean = () => false): ReadableStream<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (stopped()) {
        controller.error(new Error('upload stopped: the server has answered'));
        await iterator.return?.();
        return;
      }
      try {
        const next = await iterator.next();
        if (next.done) controller.close();
        else controller.enqueue(next.value);
      } catch (err) {
        controller.error(err);
      }
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

function fromFetch(res: Response, signal: AbortSignal | undefined): TransportResponse {
  return {
    status: res.status,
    header: (name) => res.headers.get(name),
    body: res.body as unknown as AsyncIterable<Uint8Array> | null,
    signal,
    toResponse: () => res,
  };
}

function fromUndici(res: Dispatcher.ResponseData, signal: AbortSignal | undefined): TransportResponse {
  return {
    status: res.statusCode,
    header: (name) => {
      const value = res.headers[name.toLowerCase()];
      if (value === undefined) return null;
      return Array.isArray(value) ? value.join(', ') : value;
    },
    body: res.body,
    signal,
    toResponse: () => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
      }
      // A fetch Response may not have a body with these statuses.
      if (res.statusCode === 204 || res.statusCode === 205 || res.statusCode === 304) {
        res.body.resume();
        return new Response(null, { status: res.statusCode, headers });
      }
      return new Response(toWebStream(res.body), { status: res.statusCode, headers });
    },
  };
}

/**
 * The one place requests are built and answers checked: base URL + typed API path, bearer auth,
 * query encoding, JSON or streamed bodies, and every non-2xx mapped to a typed error.
 */
export class HttpTransport {
  readonly baseUrl: string;
  private readonly origin: string;
  private readonly basePath: string;
  private readonly apiKey: string | undefined;
  private readonly fetchImpl: typeof fetch | undefined;
  private readonly extraHeaders: Record<string, string>;

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
    this.origin = parsed.origin;
    this.basePath = parsed.pathname.replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
    this.fetchImpl = opts.fetch;
    this.extraHeaders = opts.headers ?? {};
  }

  /** Call a JSON operation and return its parsed answer. */
  async json<M extends HttpMethod, P extends PathWith<M>>(
    method: M,
    path: P,
    opts: JsonCallOptions<M, P> = {},
  ): Promise<JsonResponse<M, P>> {
    const res = await this.request(method, path, {
      ...(opts.path === undefined ? {} : { path: opts.path }),
      ...(opts.query === undefined ? {} : { query: opts.query }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      ...(opts.body === undefined ? {} : { json: opts.body }),
    });
    const text = await this.readText(res);
    // 204 No Content (a delete): there is no document to parse.
    if (res.status === 204 && text === '') return undefined as JsonResponse<M, P>;
    try {
      return JSON.parse(text) as JsonResponse<M, P>;
    } catch {
      throw errorFromResponseBody(502, text);
    }
  }

  /**
   * Send a request and return the (2xx) response with its body unread. Network failures are
   * CONNECTION_FAILED, non-2xx answers their typed error, an abort the signal's reason.
   */
  async request<M extends HttpMethod, P extends PathWith<M>>(
    method: M,
    path: P,
    opts: RawCallOptions<M, P> = {},
    upload?: UploadSourceWatch,
  ): Promise<TransportResponse> {
    const out = this.outgoing(method, path, opts);
    let res: TransportResponse;
    try {
      res = this.fetchImpl ? await this.viaFetch(this.fetchImpl, out) : await this.viaUndici(out);
    } catch (err) {
      const sourceFailure = upload?.failure();
      if (sourceFailure !== undefined) throw sourceFailure;
      if (out.signal?.aborted) throw out.signal.reason ?? err;
      if (isAbortError(err) || err instanceof ScaiBunkerError) throw err;
      throw connectionFailed(`cannot reach ${this.baseUrl}: ${describeCause(err)}`, err);
    }
    if (res.status < 200 || res.status > 299) {
      // The server may answer (a 413, say) before a streamed upload is done: the upload stops
      // there (its connection is closed, and over fetch the body stream errors on its next pull).
      const text = await this.readText(res).catch(() => '');
      out.answered = true;
      throw errorFromResponseBody(res.status, text);
    }
    return res;
  }

  /** As `request`, answering a fetch Response (the body unread). */
  async send<M extends HttpMethod, P extends PathWith<M>>(
    method: M,
    path: P,
    opts: RawCallOptions<M, P> = {},
    upload?: UploadSourceWatch,
  ): Promise<Response> {
    return (await this.request(method, path, opts, upload)).toResponse();
  }

  /**
   * The ws:// (or wss://) URL of a WebSocket operation: the same base URL, path and query
   * encoding as every other request, so a base path behind a proxy is kept.
   */
  webSocketUrl(path: PathWith<'get'>, opts: { path?: Record<string, string>; query?: Record<string, QueryValue> } = {}): string {
    const target = this.target(path, opts.path, opts.query);
    return `${this.baseUrl.replace(/^http/, 'ws')}${target}`;
  }

  /** The headers a WebSocket upgrade carries where the runtime lets it set headers (Node's undici does). */
  webSocketHeaders(): Record<string, string> {
    const headers: Record<string, string> = { ...this.extraHeaders };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    return headers;
  }

  /** A response body's bytes, with a broken connection reported as CONNECTION_FAILED. */
  async *bodyChunks(res: TransportResponse | Response): AsyncGenerator<Uint8Array> {
    const body = res.body as AsyncIterable<Uint8Array> | null;
    if (!body) return;
    try {
      for await (const chunk of body) yield chunk;
    } catch (err) {
      const signal = (res as TransportResponse).signal;
      if (isAbortError(err) || (signal?.aborted && err === signal.reason)) throw err;
      throw connectionFailed(`the connection to ${this.baseUrl} broke mid-response: ${describeCause(err)}`, err);
    }
  }

  async readBuffer(res: TransportResponse | Response): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.bodyChunks(res)) chunks.push(chunk);
    return chunks.length === 1 && Buffer.isBuffer(chunks[0]) ? chunks[0] : Buffer.concat(chunks);
  }

  private async readText(res: TransportResponse): Promise<string> {
    return (await this.readBuffer(res)).toString('utf8');
  }

  private outgoing<M extends HttpMethod, P extends PathWith<M>>(method: M, path: P, opts: RawCallOptions<M, P>): Outgoing {
    const target = this.target(path, opts.path as Record<string, string> | undefined, opts.query as Record<string, QueryValue> | undefined);
    const headers: Record<string, string> = { accept: 'application/json', ...this.extraHeaders, ...opts.headers };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let body: Outgoing['body'];
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers['content-type'] ??= 'application/octet-stream';
      body = opts.body;
      // A streamed upload may be answered before it is all sent (a 413, a 404), and servers
      // differ in whether they then read and drop the rest or stop reading the connection: it
      // is not reused. (One connection setup per streamed upload is nothing next to the upload.)
      if (!(body instanceof Uint8Array)) headers.connection = 'close';
    }
    return { method: method.toUpperCase(), target, headers, body, signal: opts.signal, answered: false };
  }

  private async viaUndici(out: Outgoing): Promise<TransportResponse> {
    out.signal?.throwIfAborted();
    const res = await patientAgent().request({
      origin: this.origin,
      path: `${this.basePath}${out.target}`,
      method: out.method as Dispatcher.HttpMethod,
      headers: out.headers,
      // Bytes and strings go with a content-length; a web stream or async iterable goes chunked,
      // each chunk written as the socket drains, so the source is read only as fast as it is sent.
      body: (out.body ?? null) as NonNullable<Dispatcher.DispatchOptions['body']> | null,
      signal: out.signal ?? null,
      maxRedirections: MAX_REDIRECTIONS,
    });
    return fromUndici(res, out.signal);
  }

  private async viaFetch(fetchImpl: typeof fetch, out: Outgoing): Promise<TransportResponse> {
    const init: RequestInit & { duplex?: 'half' } = { method: out.method, headers: out.headers };
    if (out.signal) init.signal = out.signal;
    const body = out.body;
    if (typeof body === 'string' || body instanceof Uint8Array) init.body = body;
    else if (body !== undefined) {
      // Web streams too are async iterables in Node: rewrapped so the upload can stop early.
      init.body = toWebStream(body as AsyncIterable<Uint8Array>, () => out.answered);
      init.duplex = 'half';
    }
    return fromFetch(await fetchImpl(`${this.baseUrl}${out.target}`, init), out.signal);
  }

  private target(template: string, pathParams: Record<string, string> | undefined, query: Record<string, QueryValue> | undefined): string {
    const path = template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const value = pathParams?.[name];
      if (value === undefined) throw new TypeError(`missing path parameter ${name} for ${template}`);
      return encodeURIComponent(value);
    });
    if (query === undefined) return path;
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value === undefined || value === null) continue;
      const values = Array.isArray(value) ? value : [value];
      for (const v of values) search.append(key, String(v));
    }
    const qs = search.toString();
    return qs ? `${path}?${qs}` : path;
  }
}
