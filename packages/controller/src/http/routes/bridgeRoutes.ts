import { schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

export function bridgeRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: `${API}/bridges`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'createBridge',
      summary:
        "Make a transit bridge for the caller's tenant on a worker (reserved, made by the worker, then ready; rolled back if it refuses)",
      tags: ['bridges'],
      body: schemas.CreateBridgeBody,
      response: { status: 201, schema: schemas.Bridge },
      errors: ['BRIDGE_CONFLICT', 'BRIDGE_REJECTED', 'WORKER_NOT_FOUND', 'WORKER_UNAVAILABLE', 'NO_SUITABLE_WORKER'],
      handler: async ({ body, principal }) => s.bridges.create(principal, body),
    }),
    route({
      method: 'GET',
      url: `${API}/bridges`,
      auth: 'scaibunker:read',
      operationId: 'listBridges',
      summary: "The tenant's transit bridges",
      tags: ['bridges'],
      response: { status: 200, schema: schemas.BridgeList },
      errors: [],
      handler: async ({ principal }) => ({ items: await s.bridges.list(principal) }),
    }),
    route({
      method: 'GET',
      url: `${API}/bridges/:id`,
      auth: 'scaibunker:read',
      operationId: 'getBridge',
      summary: 'One transit bridge',
      tags: ['bridges'],
      params: schemas.BridgeIdParams,
      response: { status: 200, schema: schemas.Bridge },
      errors: ['BRIDGE_NOT_FOUND'],
      handler: async ({ params, principal }) => s.bridges.get(principal, params.id),
    }),
    route({
      method: 'DELETE',
      url: `${API}/bridges/:id`,
      auth: 'scaibunker:admin:tenant',
      operationId: 'deleteBridge',
      summary: 'Remove a transit bridge (refused while a bunker that has not ended is attached)',
      tags: ['bridges'],
      params: schemas.BridgeIdParams,
      response: { status: 200, schema: schemas.Empty },
      errors: ['BRIDGE_NOT_FOUND', 'BRIDGE_CONFLICT'],
      handler: async ({ params, principal }) => {
        await s.bridges.remove(principal, params.id);
        return {};
      },
    }),
  ];
}
