import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

/** Reading flow-audit batches; workers write them through the storage proxy (storageRoutes). */
export function flowAuditRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/audit-batches`,
      auth: 'scaibunker:read',
      operationId: 'listAuditBatches',
      summary: "A bunker's flow-audit batches (unrestricted profile), oldest first",
      tags: ['network'],
      params: schemas.BunkerIdParams,
      querystring: schemas.AuditBatchQuery,
      response: { status: 200, schema: schemas.AuditBatchPage },
      errors: ['BUNKER_NOT_FOUND', 'BLOB_STORE_UNAVAILABLE'],
      handler: async ({ params, query, principal }) => s.flowAudit.list(principal, params.id, query),
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/audit-batches/:name`,
      auth: 'scaibunker:read',
      operationId: 'getAuditBatch',
      summary: 'One flow-audit batch: one JSON flow record per line',
      tags: ['network'],
      params: schemas.AuditBatchParams,
      response: { status: 200, binary: true },
      errors: ['BUNKER_NOT_FOUND', 'AUDIT_BATCH_NOT_FOUND', 'BLOB_STORE_UNAVAILABLE'],
      handler: async ({ params, principal, reply }) => {
        const stream = await s.flowAudit.get(principal, params.id, params.name);
        reply.header('content-type', 'application/x-ndjson');
        return reply.send(stream);
      },
    }),
  ];
}
