/**
 * The controller's handle on a remote worker daemon: WorkerApi over HTTP, generated from
 * WORKER_ROUTES (each verb is one route: its method, path, encoding and kind drive one generic
 * request). Keep-alive connections, streamed bodies both ways, and error bodies mapped back to
 * WorkerError so callers cannot tell it from the in-process Worker.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { type Duplex, PassThrough, type Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { ExecHandlers } from './api.js';
import { toWorkerError, WorkerError } from './errors.js';
import {
  type AnyWireRequest,
  type AnyWorkerRoute,
  type StreamReply,
  TUNNEL_UPGRADE,
  WORKER_ROUTES,
  type WorkerTarget,
  type WorkerVerb,
} from './routes.js';
import type { ExecLine, ExecOutcome } from './schemas.js';
import { errorFrom, readBody, transportError } from './transportErrors.js';

interface RequestOptions {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined> | undefined;
  json?: unknown;
  /** Streamed request body (PUT files). */
  body?: Readable | undefined;
  headers?: OutgoingHttpHeaders | undefined;
  signal?: AbortSignal | undefined;
  /** Safe to send again on a stale pooled socket (GET and DELETE are; a read-only POST may be). */
  idempotent?: boolean | undefined;
}

export interface HttpWorkerClientOptions {
  /** Extra headers for each request, asked per request (the controller's `x-request-id`). */
  headers?: () => OutgoingHttpHeaders;
}

export class HttpWorkerClient implements WorkerTarget {
  private readonly base: URL;
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;

  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly options: HttpWorkerClientOptions = {},
  ) {
    this.base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
    this.transport = this.base.protocol === 'https:' ? https : http;
    // Keep-alive: the controller talks to the same few workers all the time.
    this.agent = this.base.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  readonly spawn = this.verb('spawn');
  readonly destroy = this.verb('destroy');
  readonly pause = this.verb('pause');
  readonly resume = this.verb('resume');
  /** No client-side timeout (none of the verbs has one): archiving a large layer takes as long as it takes. */
  readonly snapshot = this.verb('snapshot');
  readonly exec = this.verb('exec');
  readonly startProcess = this.verb('startProcess');
  readonly listProcesses = this.verb('listProcesses');
  readonly getProcess = this.verb('getProcess');
  readonly processEvents = this.verb('processEvents');
  readonly writeStdin = this.verb('writeStdin');
  readonly closeStdin = this.verb('closeStdin');
  readonly signalProcess = this.verb('signalProcess');
  readonly resizeProcess = this.verb('resizeProcess');
  readonly watchFiles = this.verb('watchFiles');
  readonly readFile = this.verb('readFile');
  readonly openTunnel = this.verb('openTunnel');
  readonly writeFile = this.verb('writeFile');
  readonly stat = this.verb('stat');
  readonly list = this.verb('list');
  readonly mkdir = this.verb('mkdir');
  readonly remove = this.verb('remove');
  readonly stats = this.verb('stats');
  readonly createBridge = this.verb('createBridge');
  readonly deleteBridge = this.verb('deleteBridge');
  readonly ensureImage = this.verb('ensureImage');
  /** A peer's download of an image this worker caches. */
  readonly openCachedImage = this.verb('openCachedImage');

  /** Drops pooled connections (in-flight requests finish). */
  close(): void {
    this.agent.destroy();
  }

  /** The verb `k` as a function: one request shaped by its route. */
  private verb<K extends WorkerVerb>(k: K): WorkerTarget[K] {
    const route = WORKER_ROUTES[k] as AnyWorkerRoute;
    return ((...args: unknown[]) => this.call(route, args)) as WorkerTarget[K];
  }

  /** Sends one call as its route says and turns the answer back into the verb's result. */
  private async call(route: AnyWorkerRoute, args: unknown[]): Promise<unknown> {
    const wire = route.encode(...args);
    const path = route.url.slice(1).replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(String(wire.params?.[name])));
    if (route.kind === 'tunnel') return this.upgrade(path);
    const headers: OutgoingHttpHeaders = {};
    if (wire.upload) headers['content-type'] = 'application/octet-stream';
    if (route.ranges && wire.from) headers.range = `bytes=${wire.from}-`;
    const res = await this.request({
      method: route.method,
      path,
      query: wire.query,
      json: wire.body,
      body: wire.upload,
      headers,
      signal: wire.handlers?.signal ?? wire.events?.signal,
      idempotent: route.idempotent,
    });
    const fromWire = (reply: unknown) => (route.fromWire ? route.fromWire(reply) : reply);
    switch (route.kind) {
      case 'empty':
        await this.expectOk(res);
        return undefined;
      case 'json':
      case 'stream-in':
        if (res.statusCode !== 200) throw await errorFrom(res);
        return fromWire(await readJson(res, route.replyLimit));
      case 'stream-out':
        if (res.statusCode === 206 && route.ranges && wire.from) return fromWire(this.partialDownload(res, wire.from));
        if (res.statusCode !== 200) throw await errorFrom(res);
        return fromWire(this.download(res));
      case 'exec':
        return this.execStream(res, wire.handlers ?? {});
      case 'events':
        return this.eventStream(route, res, wire.events);
    }
  }

  /**
   * A `tunnel` route: an HTTP upgrade on a connection of its own (never a pooled one: the socket
   * becomes the tunnel). Resolves with the socket after the 101; a JSON error answer instead
   * becomes its WorkerError. The socket is half-open capable, like the in-process Duplex.
   */
  private upgrade(path: string): Promise<Duplex> {
    const url = new URL(path, this.base);
    return new Promise<Duplex>((resolve, reject) => {
      const req = this.transport.request(url, {
        method: 'GET',
        agent: false,
        headers: { ...this.options.headers?.(), authorization: `Bearer ${this.token}`, connection: 'Upgrade', upgrade: TUNNEL_UPGRADE },
      });
      req.on('error', (err) => reject(this.transportError(err)));
      req.on('upgrade', (res, socket: Socket, head: Buffer) => {
        if (res.headers.upgrade?.toLowerCase() !== TUNNEL_UPGRADE) {
          socket.destroy();
          reject(new WorkerError('IO_ERROR', `worker upgraded to ${res.headers.upgrade ?? 'nothing'}`));
          return;
        }
        // The worker's end: half-close passes through (its FIN is the server's EOF), so our
        // side must not end itself when the read side ends.
        socket.allowHalfOpen = true;
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => {
        errorFrom(res).then(reject, reject);
      });
      req.end();
    });
  }

  /** An events answer: each event to the handler (awaited: back-pressure), then the end line's result. */
  private async eventStream(route: AnyWorkerRoute, res: IncomingMessage, events: AnyWireRequest['events']): Promise<unknown> {
    if (res.statusCode !== 200) throw await errorFrom(res);
    const fromWire = (e: unknown) => (route.eventFromWire ? route.eventFromWire(e) : e);
    try {
      for await (const line of ndjsonLines(res)) {
        const msg = JSON.parse(line) as { t: string; e?: unknown; r?: unknown; code?: string; message?: string };
        if (msg.t === 'event') await events?.onEvent(fromWire(msg.e));
        else if (msg.t === 'end') return route.fromWire ? route.fromWire(msg.r) : (msg.r ?? undefined);
        else if (msg.t === 'error') throw toWorkerError(msg.code ?? 'IO_ERROR', msg.message ?? 'event stream failed');
      }
    } catch (err) {
      res.destroy();
      // The caller stopped reading on purpose: not a failure of the worker.
      if (events?.signal?.aborted) return undefined;
      throw this.transportError(err);
    }
    if (events?.signal?.aborted) return undefined;
    throw new WorkerError('CHANNEL_CLOSED', 'event stream ended without its end line');
  }

  /** The body of a download as a stream; a connection cut mid-body fails it with a WorkerError, not a bare socket error. */
  private download(res: IncomingMessage): StreamReply {
    const out = new PassThrough();
    res.on('error', (err) => out.destroy(this.transportError(err)));
    res.on('aborted', () => out.destroy(new WorkerError('WORKER_UNAVAILABLE', 'worker connection lost during download')));
    out.on('close', () => {
      if (!res.complete) res.destroy();
    });
    res.pipe(out);
    const length = Number(res.headers['content-length']);
    return { stream: out, bytes: Number.isFinite(length) ? length : undefined };
  }

  /** A 206 answer to `Range: bytes=from-`: the rest of the bytes, checked to start where asked. */
  private partialDownload(res: IncomingMessage, from: number): StreamReply {
    const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
    if (!range || Number(range[1]) !== from || Number(range[2]) !== Number(range[3]) - 1) {
      res.destroy();
      throw new WorkerError(
        'IO_ERROR',
        `asked for bytes ${from}- and the worker answered ${res.headers['content-range'] ?? 'no content-range'}`,
      );
    }
    return { ...this.download(res), bytes: Number(range[3]), from };
  }

  private async execStream(res: IncomingMessage, handlers: ExecHandlers): Promise<ExecOutcome> {
    if (res.statusCode !== 200) throw await errorFrom(res);
    let outcome: ExecOutcome | null = null;
    try {
      // Lines are parsed as they arrive; awaiting the handler before reading on is what
      // propagates back-pressure to the worker (and from there to the agent).
      for await (const line of ndjsonLines(res)) {
        const msg = JSON.parse(line) as ExecLine;
        if (msg.t === 'stdout') await handlers.onStdout?.(Buffer.from(msg.d, 'base64'));
        else if (msg.t === 'stderr') await handlers.onStderr?.(Buffer.from(msg.d, 'base64'));
        else if (msg.t === 'exit') {
          outcome = { exitCode: msg.exitCode, signal: msg.signal, timedOut: msg.timedOut, durationMs: msg.durationMs };
        } else if (msg.t === 'error') throw toWorkerError(msg.code, msg.message);
      }
    } catch (err) {
      res.destroy();
      throw this.transportError(err);
    }
    if (!outcome) throw new WorkerError('CHANNEL_CLOSED', 'exec stream ended without an exit status');
    return outcome;
  }

  // ---------------------------------------------------------------- internals

  private async expectOk(res: IncomingMessage): Promise<void> {
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw await errorFrom(res);
    res.resume(); // frees the socket for the next request
  }

  /**
   * Sends a request and resolves with the response as soon as its head arrives. For uploads
   * the response may come before the body is done (e.g. TOO_LARGE): then the upload stops.
   */
  private async request(opts: RequestOptions): Promise<IncomingMessage> {
    try {
      return await this.requestOnce(opts);
    } catch (err) {
      // A pooled keep-alive socket the worker closed while idle fails on first use; the
      // request never reached the worker, so an idempotent one is safe to send again.
      const idempotent = (opts.idempotent || opts.method === 'GET' || opts.method === 'DELETE') && !opts.body;
      if (idempotent && err instanceof WorkerError && staleSocketErrors.has(err)) return this.requestOnce(opts);
      throw err;
    }
  }

  private requestOnce(opts: RequestOptions): Promise<IncomingMessage> {
    const url = new URL(opts.path, this.base);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: OutgoingHttpHeaders = { ...this.options.headers?.(), authorization: `Bearer ${this.token}`, ...opts.headers };
    let payload: Buffer | undefined;
    if (opts.json !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.json));
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }

    return new Promise<IncomingMessage>((resolve, reject) => {
      const req = this.transport.request(url, { method: opts.method, headers, agent: this.agent, signal: opts.signal });
      const body = opts.body;
      const onBodyError = (err: Error) => req.destroy(err);
      let settled = false;
      req.on('error', (err: NodeJS.ErrnoException) => {
        body?.off('error', onBodyError);
        if (settled) return;
        settled = true;
        const mapped = this.transportError(err);
        if (req.reusedSocket && err.code === 'ECONNRESET') staleSocketErrors.add(mapped);
        reject(mapped);
      });
      req.on('response', (res) => {
        settled = true;
        const status = res.statusCode ?? 0;
        // The worker answered before we finished uploading: stop sending, and do not reuse
        // this connection (its request body is unfinished).
        if (body && !req.writableFinished && (status < 200 || status >= 300)) {
          body.unpipe(req);
          res.on('end', () => req.destroy());
        }
        res.on('close', () => body?.off('error', onBodyError));
        resolve(res);
      });
      if (body) {
        body.on('error', onBodyError);
        body.pipe(req);
      } else {
        req.end(payload);
      }
    });
  }

  private transportError(err: unknown): WorkerError {
    return transportError(err, this.base.origin);
  }
}

// ---------------------------------------------------------------- helpers

/** Errors of requests that failed on a reused pooled socket before any answer. */
const staleSocketErrors = new WeakSet<WorkerError>();

async function readJson(res: IncomingMessage, limit?: number): Promise<unknown> {
  const text = await readBody(res, limit);
  try {
    return JSON.parse(text);
  } catch {
    throw new WorkerError('IO_ERROR', `worker sent invalid JSON (status ${res.statusCode})`);
  }
}

/** Splits a byte stream into lines without holding more than one partial line. */
async function* ndjsonLines(stream: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8'); // a multi-byte character may straddle two chunks
  let pending = '';
  for await (const chunk of stream) {
    pending += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim()) yield line;
      nl = pending.indexOf('\n');
    }
  }
  pending += decoder.end();
  if (pending.trim()) yield pending;
}
