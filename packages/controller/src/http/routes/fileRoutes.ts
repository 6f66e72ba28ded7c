import { ApiError, schemas } from '@scaibunker/core';
import { type RouteDef, rawUpload, route } from '../Route.js';
import { SseStream } from '../SseStream.js';
import { API, type Services } from './Services.js';

const FILE_ERRORS = [
  'BUNKER_NOT_FOUND',
  'BUNKER_NOT_RUNNING',
  'WORKER_UNAVAILABLE',
  'FILE_NOT_FOUND',
  'FILE_CONFLICT',
  'FILE_PERMISSION_DENIED',
] as const;

export function fileRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/files/watch`,
      auth: 'scaibunker:read',
      operationId: 'watchFiles',
      summary: 'Changes under a directory as Server-Sent Events `change` {type, path, is_dir}, until the client leaves',
      tags: ['files'],
      params: schemas.BunkerIdParams,
      querystring: schemas.WatchQuery,
      response: { status: 200, sse: ['change', 'error'] },
      errors: [...FILE_ERRORS],
      handler: async ({ params, query, principal, req, reply }) => {
        // A missing path or a file stays an HTTP error: checked before the stream starts.
        const target = await s.files.stat(principal, params.id, query.path);
        if (target.type !== 'dir') throw new ApiError('FILE_CONFLICT', `${query.path} is not a directory`);
        const sse = new SseStream(req, reply);
        try {
          await s.files.watch(principal, params.id, query.path, query.recursive === true, (e) => sse.send('change', e), sse.signal);
        } catch (err) {
          const e = err instanceof ApiError ? err : new ApiError('INTERNAL', 'watch failed');
          if (!sse.signal.aborted) await sse.send('error', e.toBody().error);
        }
        sse.end();
        return reply;
      },
    }),
    route({
      method: 'PUT',
      url: `${API}/bunkers/:id/files`,
      auth: 'scaibunker:execute',
      operationId: 'writeFile',
      summary: 'Write a file (the raw body, streamed and capped, whatever its content type)',
      tags: ['files'],
      params: schemas.BunkerIdParams,
      querystring: schemas.FileWriteQuery,
      rawBody: true,
      response: { status: 200, schema: schemas.WriteResult },
      errors: [...FILE_ERRORS, 'PAYLOAD_TOO_LARGE', 'DISK_FULL'],
      handler: async ({ params, query, principal, req }) => {
        const data = rawUpload(req);
        const r = await s.files.write(principal, params.id, query.path, data, {
          ...(query.mode ? { mode: Number.parseInt(query.mode, 8) } : {}),
          ...(query.parents ? { parents: true } : {}),
        });
        return { path: query.path, bytes: r.bytes };
      },
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/files`,
      auth: 'scaibunker:read',
      operationId: 'readFile',
      summary: 'Read a file (streamed)',
      tags: ['files'],
      params: schemas.BunkerIdParams,
      querystring: schemas.FilePathQuery,
      response: { status: 200, binary: true },
      errors: [...FILE_ERRORS],
      handler: async ({ params, query, principal, reply }) => {
        const stream = await s.files.read(principal, params.id, query.path);
        reply.header('content-type', 'application/octet-stream');
        return reply.send(stream);
      },
    }),
    route({
      method: 'DELETE',
      url: `${API}/bunkers/:id/files`,
      auth: 'scaibunker:execute',
      operationId: 'removeFile',
      summary: 'Remove a file or directory (`recursive=true` for a non-empty one)',
      tags: ['files'],
      params: schemas.BunkerIdParams,
      querystring: schemas.FileDeleteQuery,
      response: { status: 200, schema: schemas.Empty },
      errors: [...FILE_ERRORS],
      handler: async ({ params, query, principal }) => {
        await s.files.remove(principal, params.id, query.path, query.recursive ?? false);
        return {};
      },
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/files/list`,
      auth: 'scaibunker:read',
      operationId: 'listFiles',
      summary: "List a directory's entries",
      tags: ['files'],
      params: schemas.BunkerIdParams,
      querystring: schemas.FilePathQuery,
      response: { status: 200, schema: schemas.FileList },
      errors: [...FILE_ERRORS],
      handler: async ({ params, query, principal }) => ({ items: await s.files.list(principal, params.id, query.path) }),
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/files/stat`,
      auth: 'scaibunker:read',
      operationId: 'statFile',
      summary: 'Stat a path',
      tags: ['files'],
      params: schemas.BunkerIdParams,
      querystring: schemas.FilePathQuery,
      response: { status: 200, schema: schemas.FileStat },
      errors: [...FILE_ERRORS],
      handler: async ({ params, query, principal }) => s.files.stat(principal, params.id, query.path),
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/files/mkdir`,
      auth: 'scaibunker:execute',
      operationId: 'makeDirectory',
      summary: 'Create a directory',
      tags: ['files'],
      params: schemas.BunkerIdParams,
      body: schemas.MkdirBody,
      response: { status: 201, schema: schemas.Empty },
      errors: [...FILE_ERRORS],
      handler: async ({ params, body, principal }) => {
        await s.files.mkdir(principal, params.id, body.path, body.parents ?? false);
        return {};
      },
    }),
  ];
}
