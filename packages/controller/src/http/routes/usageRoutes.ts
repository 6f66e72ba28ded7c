import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function usageRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: `${API}/usage`,
      auth: 'scaibunker:read',
      operationId: 'getUsage',
      summary:
        "The tenant's metered usage (CPU seconds, memory and disk MB-minutes, wall seconds) over [from, to), per bunker, day, hour, image or in total",
      tags: ['usage'],
      querystring: schemas.UsageQuery,
      response: { status: 200, schema: schemas.UsageReport },
      errors: ['TENANT_NOT_FOUND'],
      handler: async ({ query, principal }) => s.usage.report(principal, query),
    }),
  ];
}
