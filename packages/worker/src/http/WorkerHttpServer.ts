/**
 * Exposes a WorkerApi over HTTP for the separate `scaibunker worker` daemon: the routes are
 * WORKER_ROUTES of @scaibunker/core (core/src/worker/routes.ts), registered from that list and
 * validated with its schemas; each route's kind says how its answer travels. Only the
 * controller (and, for images, peer workers) call it, with the bearer worker token. Bodies
 * stream both ways: uploads go from the socket into the bunker, downloads from the bunker onto
 * the socket, exec output as NDJSON — never a whole file or a whole command output in memory.
 * Errors: {error:{code,message}} with the status from WORKER_ERROR_STATUS (or the route's own).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type AnyWireRequest,
  type AnyWorkerRoute,
  type ExecOutcome,
  workerErrorBody as errorBody,
  MUX_PATH,
  MUX_UPGRADE,
  matchRoute,
  pipeLent,
  type StreamReply,
  TUNNEL_UPGRADE,
  WORKER_ERROR_STATUS,
  WORKER_ROUTE_LIST,
  type WorkerErrorCode,
  type WorkerVerb,
} from '@scaibunker/core';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifySchema } from 'fastify';
import { type CachedImageSource, type ExecHandlers, type WorkerApi, WorkerError } from '../WorkerApi.js';
import { type MuxCallLog, WorkerMuxSession } from './WorkerMuxSession.js';

/** HTTP status per WorkerError code (declared in core); HttpWorkerClient maps the body's code back. */
export { WORKER_ERROR_STATUS };

export interface WorkerHttpServerOptions {
  /** Fastify's request logging (default off). */
  logger?: boolean;
  /**
   * One line per answered request on stderr (`worker --log-format`): method, route, status,
   * duration and the controller's `x-request-id`, so a worker line can be matched to the API
   * request that caused it. None by default.
   */
  requestLog?: 'json' | 'text';
  /**
   * What `GET /v1/images/:sha256` serves to peers. Default: `api` itself when it has
   * `openCachedImage` (the Worker does); otherwise that route answers 404.
   */
  images?: CachedImageSource;
}

function isCachedImageSource(x: unknown): x is CachedImageSource {
  return typeof (x as Partial<CachedImageSource>).openCachedImage === 'function';
}

/** Constant-time token check: hashing first makes the compare independent of lengths. */
function tokenMatches(header: string | undefined, expected: Buffer): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const presented = createHash('sha256').update(header.slice('Bearer '.length)).digest();
  return timingSafeEqual(presented, expected);
}

/** The status `err` answers with on `route` (its own override first). */
function statusOf(err: WorkerError, route: AnyWorkerRoute | undefined): number {
  return route?.errorStatus?.[err.code] ?? WORKER_ERROR_STATUS[err.code] ?? 500;
}

/**
 * N of a `Range: bytes=N-` header (the rest from byte N), the one form ranged routes serve;
 * anything else (absent, several ranges, an end, a suffix, malformed) is undefined: answered whole,
 * as RFC 9110 lets a server ignore a Range.
 */
function rangeStart(header: string | undefined): number | undefined {
  const m = /^bytes=(\d{1,15})-$/.exec(header?.trim() ?? '');
  return m ? Number(m[1]) : undefined;
}

/** Resolves when the socket can take more (drain) or will never take more (close). */
function writable(res: ServerResponse): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

export class WorkerHttpServer {
  private readonly app: FastifyInstance;
  private readonly tokenHash: Buffer;
  private readonly images: CachedImageSource | undefined;
  private readonly logger: boolean;
  private readonly muxLog: MuxCallLog | undefined;
  /** Open channel connections: close() ends them (the server does not track upgraded sockets). */
  private readonly muxSockets = new Set<Duplex>();
  private listeningUrl: string | null = null;

  /** `token` is the worker token the controller must present. */
  constructor(
    private readonly api: WorkerApi,
    token: string,
    opts: WorkerHttpServerOptions = {},
  ) {
    if (!token) throw new Error('WorkerHttpServer needs a worker token');
    this.tokenHash = createHash('sha256').update(token).digest();
    this.images = opts.images ?? (isCachedImageSource(api) ? api : undefined);
    this.logger = opts.logger ?? false;
    // No request timeouts: exec and transfers legitimately run long; the controller bounds them.
    this.app = Fastify({
      logger: opts.logger ?? false,
      requestTimeout: 0,
      bodyLimit: 8 * 1024 * 1024,
      // The controller's request id (HttpWorkerClient sends x-request-id) names this request too.
      requestIdHeader: false,
      genReqId: (req) => {
        const given = req.headers['x-request-id'];
        return typeof given === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : `w-${Math.random().toString(36).slice(2, 12)}`;
      },
    });
    const requestLog = opts.requestLog;
    if (requestLog) {
      this.app.addHook('onResponse', (req, reply, done) => {
        const route = req.routeOptions.url ?? 'unmatched';
        const ms = Math.round(reply.elapsedTime * 1000) / 1000;
        process.stderr.write(
          requestLog === 'json'
            ? `${JSON.stringify({ time: new Date().toISOString(), level: reply.statusCode >= 500 ? 'error' : 'info', msg: 'worker request', request_id: req.id, method: req.method, route, path: req.url.split('?')[0], status: reply.statusCode, duration_ms: ms })}\n`
            : `[worker-http] ${req.method} ${req.url.split('?')[0]} ${reply.statusCode} ${ms}ms request=${req.id}\n`,
        );
        done();
      });
    }
    if (requestLog) {
      // A channel call's line: as its HTTP request's would be (the status it would have had), method MUX.
      this.muxLog = (route, status, elapsed, requestId) => {
        const ms = Math.round(elapsed * 1000) / 1000;
        const id = requestId ?? '-';
        process.stderr.write(
          requestLog === 'json'
            ? `${JSON.stringify({ time: new Date().toISOString(), level: status >= 500 ? 'error' : 'info', msg: 'worker request', request_id: id, method: 'MUX', route: route.url, path: route.url, status, duration_ms: ms })}\n`
            : `[worker-http] MUX ${route.url} ${status} ${ms}ms request=${id}\n`,
        );
      };
    }
    this.registerRoutes();
    // Fastify does not route upgrade requests: tunnel routes and the channel are served here.
    this.app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.handleUpgrade(req, socket, head).catch((err: unknown) => {
        this.app.log.error(err);
        socket.destroy();
      });
    });
  }

  /** Base URL once listening, e.g. http://127.0.0.1:41234 */
  get url(): string {
    if (!this.listeningUrl) throw new Error('WorkerHttpServer is not listening');
    return this.listeningUrl;
  }

  /** Default: an ephemeral port on loopback. Resolves with the base URL. */
  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    await this.app.listen({ host, port });
    const addr = this.app.server.address() as AddressInfo;
    const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    this.listeningUrl = `http://${shownHost}:${addr.port}`;
    return this.listeningUrl;
  }

  async close(): Promise<void> {
    // Long-lived exec streams would otherwise hold close() open indefinitely.
    this.app.server.closeAllConnections?.();
    for (const socket of this.muxSockets) socket.destroy();
    await this.app.close();
    this.listeningUrl = null;
  }

  private registerRoutes(): void {
    const app = this.app;
    const api = this.api;

    // Uploads are handed to the route untouched (streamed), not buffered by a parser.
    app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));

    app.addHook('onRequest', async (request, reply) => {
      if (!tokenMatches(request.headers.authorization, this.tokenHash)) {
        return reply.code(401).send(errorBody('UNAUTHENTICATED', 'missing or wrong worker token'));
      }
    });

    app.setNotFoundHandler((request, reply) => {
      reply.code(404).send(errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url}`));
    });

    app.setErrorHandler((err: FastifyError | WorkerError, request, reply) => {
      if (err instanceof WorkerError) {
        const route = (request.routeOptions.config as { workerRoute?: AnyWorkerRoute }).workerRoute;
        return reply.code(statusOf(err, route)).send(errorBody(err.code, err.message));
      }
      if ((err as FastifyError).validation) return reply.code(400).send(errorBody('VALIDATION_FAILED', err.message));
      const status = (err as FastifyError).statusCode;
      if (status && status >= 400 && status < 500) return reply.code(status).send(errorBody('VALIDATION_FAILED', err.message));
      if (this.logger) request.log.error(err);
      // Without Fastify's logger a 500 would leave no trace: say it on stderr, with the request id.
      else
        process.stderr.write(
          `[worker-http] ${request.method} ${request.url.split('?')[0]} → 500 (request ${request.id}): ${err.stack ?? err.message}\n`,
        );
      return reply.code(500).send(errorBody('INTERNAL', err.message));
    });

    for (const route of WORKER_ROUTE_LIST) {
      const schema: FastifySchema = {};
      if (route.params) schema.params = route.params;
      if (route.query) schema.querystring = route.query;
      if (route.body) schema.body = route.body;
      app.route({
        method: route.method,
        url: route.url,
        schema,
        config: { workerRoute: route },
        handler: (request, reply) => this.handle(route, request, reply),
      });
    }
  }

  /** Calls the verb a route carries: on the WorkerApi, or on the image source for peers. */
  private invoke(verb: WorkerVerb, args: unknown[]): Promise<unknown> {
    if (verb === 'openCachedImage') {
      if (!this.images) return Promise.reject(new WorkerError('IMAGE_NOT_CACHED', 'this worker serves no images'));
      return this.images.openCachedImage(...(args as [string, number?]));
    }
    const fn = this.api[verb] as (...a: unknown[]) => Promise<unknown>;
    return fn.apply(this.api, args);
  }

  private async handle(route: AnyWorkerRoute, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    const wire: AnyWireRequest = {
      params: request.params as AnyWireRequest['params'],
      query: request.query as AnyWireRequest['query'],
      body: request.body,
    };
    if (route.ranges) {
      const from = rangeStart(request.headers.range);
      if (from) wire.from = from;
    }
    const toWire = (result: unknown) => (route.toWire ? route.toWire(result) : result);
    switch (route.kind) {
      case 'empty':
        await this.invoke(route.verb, route.decode(wire));
        return reply.code(204).send();
      case 'json':
        return toWire(await this.invoke(route.verb, route.decode(wire)));
      case 'stream-out': {
        const { stream, bytes, from } = toWire(await this.invoke(route.verb, route.decode(wire))) as StreamReply;
        reply.type('application/octet-stream');
        if (route.ranges) reply.header('accept-ranges', 'bytes');
        if (from && bytes !== undefined) {
          reply
            .code(206)
            .header('content-range', `bytes ${from}-${bytes - 1}/${bytes}`)
            .header('content-length', bytes - from);
        } else if (bytes !== undefined) reply.header('content-length', bytes);
        // Fastify pipes with back-pressure and destroys `stream` if the client goes away.
        return reply.send(stream);
      }
      case 'stream-in':
        return this.receiveUpload(route, wire, request, reply);
      case 'exec':
        reply.hijack();
        await this.streamExec(route, wire, request.raw, reply.raw);
        return;
      case 'events':
        reply.hijack();
        await this.streamEvents(route, wire, reply.raw);
        return;
      case 'tunnel':
        // Reached only without `Upgrade: scaibunker-tunnel` (upgrades go to handleUpgrade).
        return reply
          .code(426)
          .header('upgrade', TUNNEL_UPGRADE)
          .send(errorBody('VALIDATION_FAILED', `this route needs Connection: Upgrade, Upgrade: ${TUNNEL_UPGRADE}`));
    }
  }

  /**
   * A `tunnel` route: checks the token and params as the Fastify routes do, opens the tunnel
   * and only then answers 101, so a refused port is a plain JSON error answer. After the 101
   * the socket carries the tunnel's bytes both ways; half-closes are passed on (pipe ends the
   * other side), and either side going away destroys the other.
   */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {}); // a client that vanishes mid-answer: the close handles it
    const fail = (status: number, code: string, message: string) => {
      const body = JSON.stringify(errorBody(code, message));
      socket.end(
        `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    if (!tokenMatches(req.headers.authorization, this.tokenHash)) {
      return fail(401, 'UNAUTHENTICATED', 'missing or wrong worker token');
    }
    const pathname = new URL(req.url ?? '/', 'http://worker').pathname;
    if (pathname === MUX_PATH && req.method === 'GET' && req.headers.upgrade?.toLowerCase() === MUX_UPGRADE) {
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${MUX_UPGRADE}\r\n\r\n`);
      this.muxSockets.add(socket);
      socket.on('close', () => this.muxSockets.delete(socket));
      new WorkerMuxSession(socket, (verb, args) => this.invoke(verb, args), statusOf, this.muxLog);
      if (head.length) socket.unshift(head);
      return;
    }
    const match = matchRoute('tunnel', req.method ?? 'GET', pathname);
    if (!match || req.headers.upgrade?.toLowerCase() !== TUNNEL_UPGRADE) {
      return fail(404, 'ROUTE_NOT_FOUND', `no upgrade route ${req.method} ${pathname} (${req.headers.upgrade ?? 'no'} upgrade)`);
    }
    if (!match.params) return fail(400, 'VALIDATION_FAILED', `invalid path parameters in ${pathname}`);
    let tunnel: Duplex;
    try {
      tunnel = (await this.invoke(match.route.verb, match.route.decode({ params: match.params }))) as Duplex;
    } catch (err) {
      if (err instanceof WorkerError) return fail(statusOf(err, match.route), err.code, err.message);
      return fail(500, 'INTERNAL', err instanceof Error ? err.message : String(err));
    }
    if (socket.destroyed) {
      tunnel.destroy(); // the client gave up while the agent was connecting
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${TUNNEL_UPGRADE}\r\n\r\n`);
    if (head.length) tunnel.write(head); // bytes the client sent right after its request head
    tunnel.on('error', () => socket.destroy());
    socket.on('close', () => tunnel.destroy());
    tunnel.on('close', () => {
      // both directions done (or the tunnel failed): end the socket once its bytes are out
      if (!socket.writableEnded) socket.destroy();
    });
    pipeLent(tunnel, socket); // the tunnel's chunks go back once written
    socket.pipe(tunnel);
  }

  private async receiveUpload(
    route: AnyWorkerRoute,
    wire: AnyWireRequest,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const body = request.raw;
    try {
      const maxBytes = route.uploadLimit?.(wire) ?? Number.POSITIVE_INFINITY;
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        throw new WorkerError('TOO_LARGE', `file exceeds ${maxBytes} bytes`);
      }
      const result = await this.invoke(route.verb, route.decode({ ...wire, upload: body }));
      return reply.send(route.toWire ? route.toWire(result) : result);
    } catch (err) {
      // Discard what the client is still sending (it aborts when it sees our answer), so the
      // response is read cleanly instead of being lost to a reset.
      if (!body.complete && !body.destroyed) body.resume();
      throw err;
    }
  }

  /**
   * Relays a stream of events as NDJSON, as fast as the socket drains; the client going away
   * aborts the reading (not what is read: a process runs on, a watch stops).
   */
  private async streamEvents(route: AnyWorkerRoute, wire: AnyWireRequest, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort(new Error('client disconnected'));
    };
    res.on('close', onClose);
    const writeLine = async (line: object): Promise<void> => {
      if (res.destroyed || res.writableEnded) return;
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      if (!res.write(`${JSON.stringify(line)}\n`)) await writable(res);
    };
    const toWire = (e: unknown) => (route.eventToWire ? route.eventToWire(e) : e);
    try {
      const events = { onEvent: (e: unknown) => writeLine({ t: 'event', e: toWire(e) }), signal: abort.signal };
      const result = await this.invoke(route.verb, route.decode({ ...wire, events }));
      await writeLine({ t: 'end', r: route.toWire ? route.toWire(result) : (result ?? null) });
      res.end();
    } catch (err) {
      if (res.destroyed) return;
      const code = err instanceof WorkerError ? err.code : 'INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      if (!res.headersSent) {
        res.writeHead(err instanceof WorkerError ? statusOf(err, route) : 500, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(errorBody(code, message)));
      } else {
        res.end(`${JSON.stringify({ t: 'error', code, message })}\n`);
      }
    } finally {
      res.off('close', onClose);
    }
  }

  /**
   * Relays one exec as NDJSON. Output is pulled from the agent only as fast as the socket
   * drains (the handlers' promises are awaited upstream); a client that disconnects aborts
   * the command.
   */
  private async streamExec(route: AnyWorkerRoute, wire: AnyWireRequest, httpReq: IncomingMessage, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) abort.abort(new Error('client disconnected'));
    };
    res.on('close', onClose);
    httpReq.on('error', () => abort.abort(new Error('client connection error')));

    const writeLine = async (line: object): Promise<void> => {
      if (res.destroyed || res.writableEnded) return;
      if (!res.headersSent) {
        res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      }
      if (!res.write(`${JSON.stringify(line)}\n`)) await writable(res);
    };

    try {
      const handlers: ExecHandlers = {
        onStdout: (chunk) => writeLine({ t: 'stdout', d: chunk.toString('base64') }),
        onStderr: (chunk) => writeLine({ t: 'stderr', d: chunk.toString('base64') }),
        signal: abort.signal,
      };
      const outcome = (await this.invoke(route.verb, route.decode({ ...wire, handlers }))) as ExecOutcome;
      const exit = `${JSON.stringify({ t: 'exit', ...outcome })}\n`;
      if (res.destroyed || res.writableEnded) return;
      if (!res.headersSent) {
        // Nothing was streamed (a short command's usual case): head and body leave in one
        // write, with a length instead of chunked framing and its separate terminator.
        res.writeHead(200, {
          'content-type': 'application/x-ndjson',
          'cache-control': 'no-store',
          'content-length': Buffer.byteLength(exit),
        });
      }
      res.end(exit);
    } catch (err) {
      if (res.destroyed) return;
      const code = err instanceof WorkerError ? err.code : 'INTERNAL';
      const message = err instanceof Error ? err.message : String(err);
      if (!res.headersSent) {
        const status = err instanceof WorkerError ? statusOf(err, route) : 500;
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(JSON.stringify(errorBody(code, message)));
      } else {
        res.end(`${JSON.stringify({ t: 'error', code, message })}\n`);
      }
    } finally {
      res.off('close', onClose);
    }
  }
}
