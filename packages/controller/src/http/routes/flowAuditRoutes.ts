import { Readable } from 'node:stream';
import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function flowAuditRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'PUT',
      url: `${API}/storage/scaibunker/audit/:bunker_id/:name`,
      auth: 'worker',
      operationId: 'putAuditBatch',
      summary: 'Store one flow-audit batch of a bunker (NDJSON, streamed; worker token only)',
      tags: ['storage'],
      params: schemas.AuditUploadParams,
      rawBody: true,
      response: { status: 201, schema: schemas.StoredObject },
      errors: ['BUNKER_NOT_FOUND', 'PAYLOAD_TOO_LARGE'],
      handler: async ({ params, req, reply }) => {
        const body = req.body instanceof Readable ? req.body : Readable.from([]);
        const stored = await s.flowAudit.storeBatch(params.bunker_id, params.name, body);
        reply.code(201);
        return stored;
      },
    }),
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
      errors: ['BUNKER_NOT_FOUND'],
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
      errors: ['BUNKER_NOT_FOUND', 'AUDIT_BATCH_NOT_FOUND'],
      handler: async ({ params, principal, reply }) => {
        const stream = await s.flowAudit.get(principal, params.id, params.name);
        reply.header('content-type', 'application/x-ndjson');
        return reply.send(stream);
      },
    }),
  ];
}
