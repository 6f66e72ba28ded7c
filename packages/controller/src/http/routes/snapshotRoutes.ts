import { schemas } from '@scaibunker/core';
import { snapshotToApi } from '../../bunkers/toApi.js';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function snapshotRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/snapshots`,
      auth: 'scaibunker:execute',
      operationId: 'createSnapshot',
      summary: "Snapshot a running bunker's files (its writable layer); answers at once, the snapshot becomes `ready` or `failed`",
      tags: ['snapshots'],
      params: schemas.BunkerIdParams,
      body: schemas.CreateSnapshotBody,
      bodyOptional: true,
      response: { status: 202, schema: schemas.Snapshot },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'QUOTA_EXCEEDED'],
      handler: async ({ params, body, principal }) => snapshotToApi((await s.snapshots.create(principal, params.id, body)).row),
    }),
    route({
      method: 'GET',
      url: `${API}/snapshots`,
      auth: 'scaibunker:read',
      operationId: 'listSnapshots',
      summary: "List the tenant's snapshots, newest first",
      tags: ['snapshots'],
      querystring: schemas.ListSnapshotsQuery,
      response: { status: 200, schema: schemas.SnapshotPage },
      errors: [],
      handler: async ({ query, principal }) => {
        const page = await s.snapshots.list(principal, query);
        return { items: page.items.map(snapshotToApi), next_cursor: page.nextCursor };
      },
    }),
    route({
      method: 'GET',
      url: `${API}/snapshots/:id`,
      auth: 'scaibunker:read',
      operationId: 'getSnapshot',
      summary: 'Get one snapshot',
      tags: ['snapshots'],
      params: schemas.SnapshotIdParams,
      response: { status: 200, schema: schemas.Snapshot },
      errors: ['SNAPSHOT_NOT_FOUND'],
      handler: async ({ params, principal }) => snapshotToApi(await s.snapshots.get(principal, params.id)),
    }),
    route({
      method: 'DELETE',
      url: `${API}/snapshots/:id`,
      auth: 'scaibunker:create',
      operationId: 'deleteSnapshot',
      summary: 'Delete a snapshot and its archive (refused while it is written or a bunker needs it)',
      tags: ['snapshots'],
      params: schemas.SnapshotIdParams,
      response: { status: 204 },
      errors: ['SNAPSHOT_NOT_FOUND', 'SNAPSHOT_IN_USE', 'BLOB_STORE_UNAVAILABLE'],
      handler: async ({ params, principal, reply }) => {
        await s.snapshots.delete(principal, params.id);
        return reply.status(204).send();
      },
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/fork`,
      auth: 'scaibunker:create',
      operationId: 'forkBunker',
      summary: 'Start `count` independent bunkers from one fresh snapshot of a running bunker; answers once they run',
      tags: ['snapshots'],
      params: schemas.BunkerIdParams,
      body: schemas.ForkBody,
      response: { status: 201, schema: schemas.ForkResult },
      errors: [
        'BUNKER_NOT_FOUND',
        'BUNKER_NOT_RUNNING',
        'QUOTA_EXCEEDED',
        'SNAPSHOT_FAILED',
        'SNAPSHOT_CORRUPT',
        'WORKER_UNAVAILABLE',
        'NO_SUITABLE_WORKER',
        'INSUFFICIENT_STORAGE',
      ],
      handler: async ({ params, body, principal }) => {
        const forked = await s.forks.fork(principal, params.id, body.count);
        return { snapshot_id: forked.snapshotId, bunkers: await s.bunkers.toApi(forked.bunkers) };
      },
    }),
  ];
}
