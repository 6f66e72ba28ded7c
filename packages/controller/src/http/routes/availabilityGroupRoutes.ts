import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

const URL = `${API}/availability-groups`;

/**
 * Platform groups are platform objects (workers are): platform admins only. Tenant admins make,
 * see and fill their own tenant's groups (another tenant's, or a platform group, is
 * AVAILABILITY_GROUP_NOT_FOUND); members are chosen by platform admins, for platform groups only.
 */
export function availabilityGroupRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: URL,
      auth: 'scaibunker:admin:tenant',
      operationId: 'createAvailabilityGroup',
      summary: "Create an availability group: a platform group, or a tenant group (tenant admins: always their tenant's)",
      tags: ['availability-groups'],
      body: schemas.CreateAvailabilityGroupBody,
      response: { status: 201, schema: schemas.AvailabilityGroup },
      errors: ['AVAILABILITY_GROUP_CONFLICT', 'AVAILABILITY_GROUP_LIMIT', 'TENANT_NOT_FOUND'],
      handler: async ({ body, principal, reply }) => {
        reply.code(201);
        return s.availabilityGroups.create(principal, body);
      },
    }),
    route({
      method: 'GET',
      url: URL,
      auth: 'scaibunker:admin:tenant',
      operationId: 'listAvailabilityGroups',
      summary: "Availability groups with their workers, images and which worker holds each image (tenant admins: their tenant's)",
      tags: ['availability-groups'],
      querystring: schemas.AvailabilityGroupListQuery,
      response: { status: 200, schema: schemas.AvailabilityGroupList },
      errors: ['TENANT_NOT_FOUND'],
      handler: async ({ query, principal }) => ({ items: await s.availabilityGroups.list(principal, query.tenant_id) }),
    }),
    route({
      method: 'GET',
      url: `${URL}/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'getAvailabilityGroup',
      summary: 'One availability group',
      tags: ['availability-groups'],
      params: schemas.AvailabilityGroupParams,
      response: { status: 200, schema: schemas.AvailabilityGroup },
      errors: ['AVAILABILITY_GROUP_NOT_FOUND'],
      handler: async ({ params, principal }) => s.availabilityGroups.get(principal, params.id),
    }),
    route({
      method: 'DELETE',
      url: `${URL}/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'deleteAvailabilityGroup',
      summary: 'Delete an availability group (cached images stay on the workers)',
      tags: ['availability-groups'],
      params: schemas.AvailabilityGroupParams,
      response: { status: 204 },
      errors: ['AVAILABILITY_GROUP_NOT_FOUND'],
      handler: async ({ params, principal, reply }) => {
        await s.availabilityGroups.delete(principal, params.id);
        return reply.code(204).send();
      },
    }),
    route({
      method: 'POST',
      url: `${URL}/:id/workers`,
      auth: 'scaibunker:admin',
      operationId: 'addAvailabilityGroupWorker',
      summary: "Add a worker: it starts fetching every image of the group it doesn't hold",
      tags: ['availability-groups'],
      params: schemas.AvailabilityGroupParams,
      body: schemas.AddGroupWorkerBody,
      response: { status: 200, schema: schemas.AvailabilityGroup },
      errors: ['AVAILABILITY_GROUP_NOT_FOUND', 'WORKER_NOT_FOUND'],
      handler: async ({ params, body, principal }) => s.availabilityGroups.addWorker(principal, params.id, body.worker_id),
    }),
    route({
      method: 'DELETE',
      url: `${URL}/:id/workers/:worker_id`,
      auth: 'scaibunker:admin',
      operationId: 'removeAvailabilityGroupWorker',
      summary: 'Remove a worker from the group',
      tags: ['availability-groups'],
      params: schemas.AvailabilityGroupWorkerParams,
      response: { status: 200, schema: schemas.AvailabilityGroup },
      errors: ['AVAILABILITY_GROUP_NOT_FOUND', 'WORKER_NOT_FOUND'],
      handler: async ({ params, principal }) => s.availabilityGroups.removeWorker(principal, params.id, params.worker_id),
    }),
    route({
      method: 'POST',
      url: `${URL}/:id/images`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'addAvailabilityGroupImage',
      summary: 'Add an image: every worker of the group starts fetching it',
      tags: ['availability-groups'],
      params: schemas.AvailabilityGroupParams,
      body: schemas.AddGroupImageBody,
      response: { status: 200, schema: schemas.AvailabilityGroup },
      errors: ['AVAILABILITY_GROUP_NOT_FOUND', 'IMAGE_NOT_FOUND'],
      handler: async ({ params, body, principal }) => s.availabilityGroups.addImage(principal, params.id, body.image_id),
    }),
    route({
      method: 'DELETE',
      url: `${URL}/:id/images/:image_id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'removeAvailabilityGroupImage',
      summary: 'Remove an image from the group (workers keep their copies)',
      tags: ['availability-groups'],
      params: schemas.AvailabilityGroupImageParams,
      response: { status: 200, schema: schemas.AvailabilityGroup },
      errors: ['AVAILABILITY_GROUP_NOT_FOUND', 'IMAGE_NOT_FOUND'],
      handler: async ({ params, principal }) => s.availabilityGroups.removeImage(principal, params.id, params.image_id),
    }),
  ];
}
