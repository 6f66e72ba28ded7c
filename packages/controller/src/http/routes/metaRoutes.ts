import { schemas } from '@scaibunker/core';
import { Type } from '@sinclair/typebox';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function metaRoutes(s: Services, openapi: () => unknown): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: '/openapi.json',
      auth: 'public',
      operationId: 'openapi',
      summary: 'This OpenAPI document',
      tags: ['meta'],
      response: { status: 200, schema: Type.Object({}, { additionalProperties: true }) },
      errors: [],
      handler: async () => openapi(),
    }),
    route({
      method: 'GET',
      url: '/healthz',
      auth: 'public',
      operationId: 'health',
      summary: 'Liveness: the controller answers and its database responds',
      tags: ['meta'],
      response: { status: 200, schema: Type.Object({ ok: Type.Boolean() }) },
      errors: [],
      handler: async () => {
        await s.store.workers.list();
        return { ok: true };
      },
    }),
    route({
      method: 'GET',
      url: `${API}/images`,
      auth: 'scaibunker:read',
      operationId: 'listImages',
      summary: 'Images the tenant can start bunkers from',
      tags: ['images'],
      response: { status: 200, schema: schemas.ImageList },
      errors: [],
      handler: async ({ principal }) => ({
        items: (await s.store.images.listVisible(principal.tenantId)).map((i) => ({
          name: i.name,
          sha256: i.sha256,
          state: i.state,
          scope: i.scope,
          size_bytes: i.size_bytes === null ? null : Number(i.size_bytes),
          created_at: i.created_at,
        })),
      }),
    }),
  ];
}
