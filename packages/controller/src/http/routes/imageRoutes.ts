import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function imageRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: `${API}/images`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'createImage',
      summary: 'Register an image from an OCI reference or a tarball; it bakes in the background (poll its state and progress)',
      tags: ['images'],
      body: schemas.CreateImageBody,
      response: { status: 202, schema: schemas.Image },
      errors: ['IMAGE_CONFLICT', 'TENANT_NOT_FOUND'],
      handler: async ({ body, principal, reply }) => {
        reply.code(202);
        return s.images.create(principal, body);
      },
    }),
    route({
      method: 'GET',
      url: `${API}/images`,
      auth: 'scaibunker:read',
      operationId: 'listImages',
      summary: 'Images the tenant can start bunkers from: its own, shared (partner) and platform images',
      tags: ['images'],
      response: { status: 200, schema: schemas.ImageList },
      errors: [],
      handler: async ({ principal }) => ({ items: await s.images.list(principal) }),
    }),
    route({
      method: 'GET',
      url: `${API}/images/:id`,
      auth: 'scaibunker:read',
      operationId: 'getImage',
      summary: 'One image: bake state and progress, size, sha256, failure reason, scan result',
      tags: ['images'],
      params: schemas.ImageIdParams,
      response: { status: 200, schema: schemas.Image },
      errors: ['IMAGE_NOT_FOUND'],
      handler: async ({ params, principal }) => s.images.get(principal, params.id),
    }),
    route({
      method: 'DELETE',
      url: `${API}/images/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'deleteImage',
      summary: 'Delete an image (refused while bunkers that have not ended use it)',
      tags: ['images'],
      params: schemas.ImageIdParams,
      response: { status: 204 },
      errors: ['IMAGE_NOT_FOUND', 'IMAGE_IN_USE'],
      handler: async ({ params, principal, reply }) => {
        await s.images.delete(principal, params.id);
        return reply.code(204).send();
      },
    }),
    route({
      method: 'GET',
      url: `${API}/peers/:sha256`,
      auth: 'worker',
      operationId: 'listImagePeers',
      summary: 'Workers sharing an availability group with the asking worker that hold the image (workers only)',
      tags: ['images'],
      params: schemas.PeersParams,
      querystring: schemas.PeersQuery,
      response: { status: 200, schema: schemas.PeerList },
      errors: [],
      handler: async ({ params, query }) => ({ items: await s.store.imageCache.peers(query.worker_id, params.sha256) }),
    }),
  ];
}
