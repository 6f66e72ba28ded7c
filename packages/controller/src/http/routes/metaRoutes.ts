import { Type } from '@sinclair/typebox';
import type { ReadinessReport } from '../../health/Readiness.js';
import { METRICS_CONTENT_TYPE } from '../../metrics/Registry.js';
import { type RouteDef, route } from '../Route.js';

const Check = Type.Object(
  {
    ok: Type.Boolean(),
    error: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);

export function metaRoutes(openapi: () => unknown, readiness: () => Promise<ReadinessReport>, metrics: () => Promise<string>): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: '/metrics',
      auth: 'scaibunker:admin',
      operationId: 'metrics',
      summary:
        'Prometheus metrics in the text exposition format (platform admins; `--metrics-port` serves the same without auth on a port of its own)',
      tags: ['meta'],
      response: { status: 200, schema: Type.String({ description: 'text/plain; version=0.0.4' }), text: METRICS_CONTENT_TYPE },
      errors: [],
      handler: async ({ reply }) => reply.type(METRICS_CONTENT_TYPE).send(await metrics()),
    }),
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
      summary: 'Liveness: the controller process answers (it asks no dependency; see /readyz)',
      tags: ['meta'],
      response: { status: 200, schema: Type.Object({ ok: Type.Boolean() }) },
      errors: [],
      handler: async () => ({ ok: true }),
    }),
    route({
      method: 'GET',
      url: '/readyz',
      auth: 'public',
      operationId: 'ready',
      summary:
        'Readiness for a load balancer: the database, Redis, the blob store and the data disk probed now; 503 with the same body when any is not ok',
      tags: ['meta'],
      response: {
        status: 200,
        schema: Type.Object({
          ready: Type.Boolean(),
          checks: Type.Object({ database: Check, live_state: Check, blob_store: Check, disk: Check }),
        }),
      },
      errors: [],
      handler: async ({ reply }) => {
        const report = await readiness();
        if (!report.ready) return reply.status(503).send(report);
        return report;
      },
    }),
  ];
}
