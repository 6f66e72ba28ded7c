import { ApiError } from '@scaibunker/core';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { BlobStore } from '../blobs/BlobStore.js';
import { guardBlobStore } from '../blobs/GuardedBlobStore.js';
import { buildHttpServer } from '../http/HttpServer.js';
import { route } from '../http/Route.js';
import { storageRoutes } from '../http/routes/storageRoutes.js';
import { StorageAuthenticator } from './StorageAuthenticator.js';
import { StorageService } from './StorageService.js';

/**
 * `scaibunker proxy`: the storage routes and nothing else — no database, no Redis — so any
 * number can run behind a load balancer in front of the blob store. Capability tokens verify
 * with the key every process derives from the shared worker token.
 */
export class StorageProxy {
  readonly http: FastifyInstance;

  constructor(opts: {
    workerToken: string;
    blobStore: BlobStore;
    logger?: boolean;
    /** One line per storage request: `storage <METHOD> <key> <status> bytes=<content-length>`. */
    accessLog?: (line: string) => void;
  }) {
    const auth = new StorageAuthenticator(opts.workerToken);
    const service = new StorageService(guardBlobStore(opts.blobStore), auth.capabilities);
    this.http = buildHttpServer({
      authenticator: {
        storage: auth,
        authenticate: async () => {
          throw new ApiError('UNAUTHENTICATED', 'this storage proxy takes only the worker token or a capability token');
        },
      },
      routes: [
        ...storageRoutes(service),
        route({
          method: 'GET',
          url: '/healthz',
          auth: 'public',
          operationId: 'proxyHealth',
          summary: 'Liveness of a storage proxy',
          tags: ['meta'],
          response: { status: 200, schema: Type.Object({ ok: Type.Boolean() }) },
          errors: [],
          handler: async () => ({ ok: true }),
        }),
      ],
      logger: opts.logger ?? false,
    });
    const accessLog = opts.accessLog;
    if (accessLog) {
      this.http.addHook('onResponse', async (req, reply) => {
        const key = req.url.split('?')[0]?.replace(/^\/v1\/modules\/scaibunker\/storage\/?/, '') ?? '';
        // Bytes moved: the upload's for a PUT, the answer's otherwise (HEAD moves none).
        const bytes = req.method === 'PUT' ? req.headers['content-length'] : req.method === 'HEAD' ? 0 : reply.getHeader('content-length');
        accessLog(`storage ${req.method} ${key || '-'} ${reply.statusCode} bytes=${bytes ?? 0}`);
      });
    }
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    return this.http.listen({ port, host });
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}
