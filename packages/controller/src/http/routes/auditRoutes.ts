import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function auditRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: `${API}/audit-events`,
      auth: 'scaibunker:audit:read',
      operationId: 'listAuditEvents',
      summary: "The tenant's audit trail (execs, file changes, bunkers, keys…), newest first",
      tags: ['audit'],
      querystring: schemas.AuditEventQuery,
      response: { status: 200, schema: schemas.AuditEventPage },
      errors: ['TENANT_NOT_FOUND', 'BUNKER_NOT_FOUND'],
      handler: async ({ query, principal }) => s.audit.list(principal, query),
    }),
  ];
}
