import { Type } from '@sinclair/typebox';
import { type RouteDef, route } from '../Route.js';
import type { Services } from './Services.js';

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
  ];
}
