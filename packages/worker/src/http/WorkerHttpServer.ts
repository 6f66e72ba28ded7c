/**
 * Exposes a WorkerApi over HTTP for the separate `scaibunker worker` daemon. Only the
 * controller calls it (bearer worker token). Bodies stream both ways: uploads go from the
 * socket into the bunker, downloads from the bunker onto the socket, exec output as NDJSON —
 * never a whole file or a whole command output in memory.
 *
 * Routes (all under /v1/worker, all need `Authorization: Bearer <worker token>`):
 *   POST   /bunkers                         spawn (JSON SpawnRequest) → 204
 *   DELETE /bunkers/:id                     destroy, idempotent → 204
 *   POST   /bunkers/:id/pause | /resume     cgroup freezer → 204
 *   POST   /bunkers/:id/exec                JSON ExecRequest → 200 application/x-ndjson:
 *            {"t":"stdout","d":"<base64>"} | {"t":"stderr","d":"<base64>"}
 *            | {"t":"exit",exitCode,signal,timedOut,durationMs} | {"t":"error",code,message}
 *          (an error before any output is a plain JSON error with its status instead)
 *   GET    /bunkers/:id/files?path=         file bytes (application/octet-stream)
 *   PUT    /bunkers/:id/files?path=&max_bytes=&mode=&parents=   raw body → {bytes}
 *   DELETE /bunkers/:id/files?path=&recursive=                  → 204
 *   GET    /bunkers/:id/stat?path=          FileStatInfo
 *   GET    /bunkers/:id/list?path=          {items: FileStatInfo[]}
 *   POST   /bunkers/:id/mkdir               JSON {path, parents?} → 204
 *   POST   /bridges                         JSON {bridgeId, tenantId} → 204 (make a transit bridge)
 *   DELETE /bridges/:id                     remove a transit bridge, idempotent → 204
 *   POST   /stats                           JSON {bunkerIds: string[]} → {stats: {<id>: BunkerStats}}
 *          (bunkers this worker does not run are left out; POST because the id list is long)
 * Images (under /v1/images, same token — the controller and peer workers share it):
 *   POST   /v1/images/:sha256/ensure        fetch into the cache unless cached → {source, bytes}
 *   GET    /v1/images/:sha256               the cached image file (peer download), streamed with
 *          content-length; 404 IMAGE_NOT_CACHED when not (completely) cached here
 * Errors: {error:{code,message}} with the status from WORKER_ERROR_STATUS.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import {
  BANDWIDTH_MBIT_MAX,
  BANDWIDTH_MBIT_MIN,
  NETWORK_ALLOWLIST_MAX,
  NETWORK_PROFILES,
  TRANSIT_INTERFACES_MAX,
  TRANSIT_INTERFACES_MIN,
} from '@scaibunker/core';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import {
  type CachedImageSource,
  type ExecRequest,
  type SpawnRequest,
  type WorkerApi,
  WorkerError,
  type WorkerErrorCode,
} from '../WorkerApi.js';

/** HTTP status per WorkerError code; HttpWorkerClient maps the body's code back. */
export const WORKER_ERROR_STATUS: Record<WorkerErrorCode, number> = {
  BUNKER_NOT_FOUND: 404,
  INVALID_STATE: 409,
  SPAWN_FAILED: 500,
  IMAGE_NOT_CACHED: 409,
  NOT_FOUND: 404,
  NOT_A_DIRECTORY: 409,
  IS_A_DIRECTORY: 409,
  ALREADY_EXISTS: 409,
  NOT_EMPTY: 409,
  PERMISSION_DENIED: 403,
  INVALID_PATH: 400,
  NO_SPACE: 507,
  TOO_LARGE: 413,
  IO_ERROR: 500,
  CHANNEL_CLOSED: 502,
  WORKER_UNAVAILABLE: 503,
  BRIDGE_FAILED: 422,
  IMAGE_FETCH_FAILED: 502,
  HOST_DISK_FULL: 507,
};

export interface WorkerHttpServerOptions {
  /** Fastify's request logging (default off). */
  logger?: boolean;
  /**
   * What `GET /v1/images/:sha256` serves to peers. Default: `api` itself when it has
   * `openCachedImage` (the Worker does); otherwise that route answers 404.
   */
  images?: CachedImageSource;
}

const BUNKER_ID = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } as const;
const PATH = { type: 'string', minLength: 1, maxLength: 4096 } as const;
const BOOL_QUERY = { type: 'string', enum: ['true', 'false', '1', '0'] } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: BUNKER_ID } } as const;
const pathQuery = { type: 'object', required: ['path'], properties: { path: PATH } } as const;

const shaParams = {
  type: 'object',
  required: ['sha256'],
  properties: { sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
} as const;

const BRIDGE_ID = { type: 'string', pattern: '^br_[0-9a-z]{1,64}$' } as const;
const bridgeParams = { type: 'object', required: ['id'], properties: { id: BRIDGE_ID } } as const;
const bridgeBody = {
  type: 'object',
  additionalProperties: false,
  required: ['bridgeId', 'tenantId'],
  properties: { bridgeId: BRIDGE_ID, tenantId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
} as const;

const spawnBody = {
  type: 'object',
  additionalProperties: false,
  required: ['bunkerId', 'imageSha256', 'isolation', 'cpuMillicores', 'memoryMb', 'diskMb', 'networkProfile', 'hostname'],
  properties: {
    bunkerId: BUNKER_ID,
    imageSha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    isolation: { type: 'string', enum: ['container', 'microvm'] },
    cpuMillicores: { type: 'integer', minimum: 1 },
    memoryMb: { type: 'integer', minimum: 1 },
    diskMb: { type: 'integer', minimum: 1 },
    networkProfile: { type: 'string', enum: [...NETWORK_PROFILES] },
    networkAllowlist: {
      type: 'array',
      maxItems: NETWORK_ALLOWLIST_MAX,
      items: { type: 'string', minLength: 1, maxLength: 1024 },
    },
    bandwidthMbit: { type: 'integer', minimum: BANDWIDTH_MBIT_MIN, maximum: BANDWIDTH_MBIT_MAX },
    interfaces: {
      type: 'array',
      minItems: TRANSIT_INTERFACES_MIN,
      maxItems: TRANSIT_INTERFACES_MAX,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['bridgeId', 'tenantId', 'mac', 'spoofGuard'],
        properties: {
          bridgeId: BRIDGE_ID,
          tenantId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
          mac: { type: 'string', pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' },
          spoofGuard: { type: 'boolean' },
        },
      },
    },
    hostname: { type: 'string', minLength: 1, maxLength: 64 },
  },
} as const;

const execBody = {
  type: 'object',
  additionalProperties: false,
  required: ['argv', 'timeoutMs'],
  properties: {
    argv: { type: 'array', minItems: 1, items: { type: 'string' } },
    env: { type: 'object', additionalProperties: { type: 'string' } },
    cwd: { type: 'string' },
    user: { type: 'string' },
    stdin: { type: 'string' },
    timeoutMs: { type: 'integer', minimum: 0 },
  },
} as const;

const statsBody = {
  type: 'object',
  additionalProperties: false,
  required: ['bunkerIds'],
  properties: { bunkerIds: { type: 'array', maxItems: 100_000, items: BUNKER_ID } },
} as const;

interface IdParams {
  id: string;
}
interface PathQuery {
  path: string;
}
interface ShaParams {
  sha256: string;
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

function truthy(v: string | undefined): boolean {
  return v === 'true' || v === '1';
}

function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
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
    // No request timeouts: exec and transfers legitimately run long; the controller bounds them.
    this.app = Fastify({ logger: opts.logger ?? false, requestTimeout: 0, bodyLimit: 8 * 1024 * 1024 });
    this.registerRoutes();
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
        return reply.code(WORKER_ERROR_STATUS[err.code] ?? 500).send(errorBody(err.code, err.message));
      }
      if ((err as FastifyError).validation) return reply.code(400).send(errorBody('VALIDATION_FAILED', err.message));
      const status = (err as FastifyError).statusCode;
      if (status && status >= 400 && status < 500) return reply.code(status).send(errorBody('VALIDATION_FAILED', err.message));
      request.log.error(err);
      return reply.code(500).send(errorBody('INTERNAL', err.message));
    });

    const prefix = '/v1/worker';

    app.post<{ Body: SpawnRequest }>(`${prefix}/bunkers`, { schema: { body: spawnBody } }, async (request, reply) => {
      await api.spawn(request.body);
      return reply.code(204).send();
    });

    app.delete<{ Params: IdParams }>(`${prefix}/bunkers/:id`, { schema: { params: idParams } }, async (request, reply) => {
      await api.destroy(request.params.id);
      return reply.code(204).send();
    });

    app.post<{ Body: { bridgeId: string; tenantId: string } }>(
      `${prefix}/bridges`,
      { schema: { body: bridgeBody } },
      async (request, reply) => {
        await api.createBridge(request.body);
        return reply.code(204).send();
      },
    );

    app.delete<{ Params: IdParams }>(`${prefix}/bridges/:id`, { schema: { params: bridgeParams } }, async (request, reply) => {
      await api.deleteBridge(request.params.id);
      return reply.code(204).send();
    });

    for (const action of ['pause', 'resume'] as const) {
      app.post<{ Params: IdParams }>(`${prefix}/bunkers/:id/${action}`, { schema: { params: idParams } }, async (request, reply) => {
        await api[action](request.params.id);
        return reply.code(204).send();
      });
    }

    app.post<{ Params: IdParams; Body: ExecRequest }>(
      `${prefix}/bunkers/:id/exec`,
      { schema: { params: idParams, body: execBody } },
      async (request, reply) => {
        reply.hijack();
        await this.streamExec(request.params.id, request.body, request.raw, reply.raw);
      },
    );

    app.get<{ Params: IdParams; Querystring: PathQuery }>(
      `${prefix}/bunkers/:id/files`,
      { schema: { params: idParams, querystring: pathQuery } },
      async (request, reply) => {
        const stream = await api.readFile(request.params.id, request.query.path);
        // Fastify pipes with back-pressure and destroys `stream` if the client goes away.
        return reply.type('application/octet-stream').send(stream);
      },
    );

    app.put<{ Params: IdParams; Querystring: PathQuery & { max_bytes: number; mode?: number; parents?: string } }>(
      `${prefix}/bunkers/:id/files`,
      {
        schema: {
          params: idParams,
          querystring: {
            type: 'object',
            required: ['path', 'max_bytes'],
            properties: {
              path: PATH,
              max_bytes: { type: 'integer', minimum: 0 },
              mode: { type: 'integer', minimum: 0, maximum: 0o7777 },
              parents: BOOL_QUERY,
            },
          },
        },
      },
      async (request, reply) => this.receiveUpload(request, reply),
    );

    app.delete<{ Params: IdParams; Querystring: PathQuery & { recursive?: string } }>(
      `${prefix}/bunkers/:id/files`,
      {
        schema: {
          params: idParams,
          querystring: { type: 'object', required: ['path'], properties: { path: PATH, recursive: BOOL_QUERY } },
        },
      },
      async (request, reply) => {
        await api.remove(request.params.id, request.query.path, { recursive: truthy(request.query.recursive) });
        return reply.code(204).send();
      },
    );

    app.get<{ Params: IdParams; Querystring: PathQuery }>(
      `${prefix}/bunkers/:id/stat`,
      { schema: { params: idParams, querystring: pathQuery } },
      async (request) => api.stat(request.params.id, request.query.path),
    );

    app.get<{ Params: IdParams; Querystring: PathQuery }>(
      `${prefix}/bunkers/:id/list`,
      { schema: { params: idParams, querystring: pathQuery } },
      async (request) => ({ items: await api.list(request.params.id, request.query.path) }),
    );

    app.post<{ Params: IdParams; Body: { path: string; parents?: boolean } }>(
      `${prefix}/bunkers/:id/mkdir`,
      {
        schema: {
          params: idParams,
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['path'],
            properties: { path: PATH, parents: { type: 'boolean' } },
          },
        },
      },
      async (request, reply) => {
        await api.mkdir(request.params.id, request.body.path, { parents: request.body.parents });
        return reply.code(204).send();
      },
    );

    app.post<{ Body: { bunkerIds: string[] } }>(`${prefix}/stats`, { schema: { body: statsBody } }, async (request) => ({
      stats: await api.stats(request.body.bunkerIds),
    }));

    app.post<{ Params: ShaParams }>('/v1/images/:sha256/ensure', { schema: { params: shaParams } }, async (request) =>
      api.ensureImage(request.params.sha256),
    );

    app.get<{ Params: ShaParams }>('/v1/images/:sha256', { schema: { params: shaParams } }, async (request, reply) => {
      const sha = request.params.sha256;
      let opened: { stream: Readable; bytes: number };
      try {
        if (!this.images) throw new WorkerError('IMAGE_NOT_CACHED', 'this worker serves no images');
        opened = await this.images.openCachedImage(sha);
      } catch (err) {
        // Not here is a plain 404 to a peer (IMAGE_NOT_CACHED's usual 409 is about spawning).
        if (err instanceof WorkerError && err.code === 'IMAGE_NOT_CACHED') return reply.code(404).send(errorBody(err.code, err.message));
        throw err;
      }
      // Fastify pipes with back-pressure and destroys the stream if the peer goes away.
      return reply.type('application/octet-stream').header('content-length', opened.bytes).send(opened.stream);
    });
  }

  private async receiveUpload(
    request: FastifyRequest<{ Params: IdParams; Querystring: PathQuery & { max_bytes: number; mode?: number; parents?: string } }>,
    reply: FastifyReply,
  ): Promise<FastifyReply> {
    const body = request.raw;
    const { path, max_bytes: maxBytes, mode, parents } = request.query;
    try {
      const declared = Number(request.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        throw new WorkerError('TOO_LARGE', `file exceeds ${maxBytes} bytes`);
      }
      const result = await this.api.writeFile(request.params.id, path, body, { mode, parents: truthy(parents), maxBytes });
      return reply.send(result);
    } catch (err) {
      // Discard what the client is still sending (it aborts when it sees our answer), so the
      // response is read cleanly instead of being lost to a reset.
      if (!body.complete && !body.destroyed) body.resume();
      throw err;
    }
  }

  /**
   * Relays one exec as NDJSON. Output is pulled from the agent only as fast as the socket
   * drains (the handlers' promises are awaited upstream); a client that disconnects aborts
   * the command.
   */
  private async streamExec(bunkerId: string, req: ExecRequest, httpReq: IncomingMessage, res: ServerResponse): Promise<void> {
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
      const outcome = await this.api.exec(bunkerId, req, {
        onStdout: (chunk) => writeLine({ t: 'stdout', d: chunk.toString('base64') }),
        onStderr: (chunk) => writeLine({ t: 'stderr', d: chunk.toString('base64') }),
        signal: abort.signal,
      });
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
        const status = err instanceof WorkerError ? WORKER_ERROR_STATUS[err.code] : 500;
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
