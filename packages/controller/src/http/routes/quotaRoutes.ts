import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function quotaRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: `${API}/quota-profiles`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'createQuotaProfile',
      summary: "Create a quota profile in the caller's tenant (platform admins: any tenant, `tenant_id`)",
      tags: ['quotas'],
      body: schemas.CreateQuotaProfileBody,
      response: { status: 201, schema: schemas.QuotaProfile },
      errors: ['TENANT_NOT_FOUND', 'QUOTA_PROFILE_CONFLICT'],
      handler: async ({ body, principal }) => s.quotaProfiles.create(principal, body),
    }),
    route({
      method: 'GET',
      url: `${API}/quota-profiles`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'listQuotaProfiles',
      summary: "The tenant's quota profiles with their assignments (platform admins: every tenant's)",
      tags: ['quotas'],
      querystring: schemas.QuotaProfileListQuery,
      response: { status: 200, schema: schemas.QuotaProfileList },
      errors: ['TENANT_NOT_FOUND'],
      handler: async ({ query, principal }) => ({ items: await s.quotaProfiles.list(principal, query.tenant_id) }),
    }),
    route({
      method: 'GET',
      url: `${API}/quota-profiles/usage`,
      auth: 'scaibunker:read',
      operationId: 'getQuotaUsage',
      summary: "Current / cap / remaining per quota bucket: the caller's own buckets, or every bucket of the tenant for its admins",
      tags: ['quotas'],
      querystring: schemas.QuotaUsageQuery,
      response: { status: 200, schema: schemas.QuotaUsage },
      errors: ['TENANT_NOT_FOUND', 'LIVE_STATE_UNAVAILABLE'],
      handler: async ({ query, principal }) => s.quotas.usage(principal, query.tenant_id),
    }),
    route({
      method: 'GET',
      url: `${API}/quota-profiles/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'getQuotaProfile',
      summary: 'One quota profile with its assignments',
      tags: ['quotas'],
      params: schemas.QuotaProfileIdParams,
      response: { status: 200, schema: schemas.QuotaProfile },
      errors: ['QUOTA_PROFILE_NOT_FOUND'],
      handler: async ({ params, principal }) => s.quotaProfiles.get(principal, params.id),
    }),
    route({
      method: 'PATCH',
      url: `${API}/quota-profiles/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'updateQuotaProfile',
      summary: 'Change a quota profile (the fields given; null clears); applies to later creates only',
      tags: ['quotas'],
      params: schemas.QuotaProfileIdParams,
      body: schemas.UpdateQuotaProfileBody,
      response: { status: 200, schema: schemas.QuotaProfile },
      errors: ['QUOTA_PROFILE_NOT_FOUND', 'QUOTA_PROFILE_CONFLICT'],
      handler: async ({ params, body, principal }) => s.quotaProfiles.update(principal, params.id, body),
    }),
    route({
      method: 'DELETE',
      url: `${API}/quota-profiles/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'deleteQuotaProfile',
      summary: 'Delete a quota profile and its assignments (running bunkers keep their charge until they end)',
      tags: ['quotas'],
      params: schemas.QuotaProfileIdParams,
      response: { status: 200, schema: schemas.Empty },
      errors: ['QUOTA_PROFILE_NOT_FOUND'],
      handler: async ({ params, principal }) => {
        await s.quotaProfiles.remove(principal, params.id);
        return {};
      },
    }),
    route({
      method: 'POST',
      url: `${API}/quota-profiles/:id/assignments`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'assignQuotaProfile',
      summary: 'Assign a quota profile to a user, a group (one shared bucket) or each user of a group',
      tags: ['quotas'],
      params: schemas.QuotaProfileIdParams,
      body: schemas.CreateQuotaAssignmentBody,
      response: { status: 201, schema: schemas.QuotaAssignment },
      errors: ['QUOTA_PROFILE_NOT_FOUND', 'QUOTA_PROFILE_CONFLICT'],
      handler: async ({ params, body, principal }) => s.quotaProfiles.assign(principal, params.id, body),
    }),
    route({
      method: 'DELETE',
      url: `${API}/quota-profiles/:id/assignments/:assignment_id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'unassignQuotaProfile',
      summary: 'Remove an assignment (running bunkers keep their charge until they end)',
      tags: ['quotas'],
      params: schemas.QuotaAssignmentParams,
      response: { status: 200, schema: schemas.Empty },
      errors: ['QUOTA_PROFILE_NOT_FOUND'],
      handler: async ({ params, principal }) => {
        await s.quotaProfiles.unassign(principal, params.id, params.assignment_id);
        return {};
      },
    }),
  ];
}
