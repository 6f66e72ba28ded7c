import { ApiError, schemas } from '@scaibunker/core';
import type { Principal } from '../../auth/Principal.js';
import type { StorageGrant } from '../../storage/StorageGrant.js';
import type { StorageService } from '../../storage/StorageService.js';
import { type RouteDef, rawUpload, route } from '../Route.js';
import { API } from './Services.js';

/**
 * The storage proxy: objects under `scaibunker/`, streamed both ways. Workers use the worker
 * token; anyone else a capability token scoped to a prefix and verbs. These routes are all a
 * `scaibunker proxy` serves, so they take only the storage service — no database behind them.
 */
export function storageRoutes(storage: StorageService): RouteDef[] {
  return [
    route({
      method: 'HEAD',
      url: `${API}/storage/*`,
      auth: 'storage',
      operationId: 'headObject',
      summary: "An object's size (content-length) and stored sha256 (x-scaibunker-sha256), without its bytes",
      tags: ['storage'],
      params: schemas.StorageKeyParams,
      response: { status: 200 },
      errors: ['BLOB_NOT_FOUND', 'BLOB_STORE_UNAVAILABLE'],
      handler: async ({ params, principal, reply }) => {
        const info = await storage.stat(grantOf(principal), params['*']);
        reply.header('content-length', info.size).header('accept-ranges', 'bytes');
        if (info.sha256) reply.header('x-scaibunker-sha256', info.sha256);
        return reply.code(200).send();
      },
    }),
    route({
      method: 'GET',
      url: `${API}/storage/*`,
      auth: 'storage',
      operationId: 'getObject',
      summary: 'Stream an object; a `Range: bytes=…` header gets 206 and that range',
      tags: ['storage'],
      params: schemas.StorageKeyParams,
      response: { status: 200, binary: true },
      errors: ['BLOB_NOT_FOUND', 'RANGE_NOT_SATISFIABLE', 'BLOB_STORE_UNAVAILABLE'],
      handler: async ({ params, principal, req, reply }) => {
        const read = await storage.read(grantOf(principal), params['*'], req.headers.range);
        reply.header('content-type', 'application/octet-stream').header('accept-ranges', 'bytes');
        if (read.info.sha256) reply.header('x-scaibunker-sha256', read.info.sha256);
        if (read.range) {
          reply
            .code(206)
            .header('content-range', `bytes ${read.range.start}-${read.range.end}/${read.info.size}`)
            .header('content-length', read.range.end - read.range.start + 1);
        } else {
          reply.code(200).header('content-length', read.info.size);
        }
        return reply.send(read.body);
      },
    }),
    route({
      method: 'PUT',
      url: `${API}/storage/*`,
      auth: 'storage',
      operationId: 'putObject',
      summary: 'Store an object, streamed; with `x-scaibunker-sha256` the bytes are verified before the object appears',
      tags: ['storage'],
      params: schemas.StorageKeyParams,
      rawBody: true,
      response: { status: 201, schema: schemas.StoragePutResult },
      errors: ['CHECKSUM_MISMATCH', 'BLOB_STORE_UNAVAILABLE', 'INSUFFICIENT_STORAGE'],
      handler: async ({ params, principal, req, reply }) => {
        const body = rawUpload(req);
        const declared = req.headers['x-scaibunker-sha256'];
        if (Array.isArray(declared)) throw new ApiError('VALIDATION_FAILED', 'x-scaibunker-sha256 given twice');
        const stored = await storage.write(grantOf(principal), params['*'], body, declared);
        reply.code(201);
        return stored;
      },
    }),
    route({
      method: 'DELETE',
      url: `${API}/storage/*`,
      auth: 'storage',
      operationId: 'deleteObject',
      summary: 'Delete an object (idempotent)',
      tags: ['storage'],
      params: schemas.StorageKeyParams,
      response: { status: 204 },
      errors: [],
      handler: async ({ params, principal, reply }) => {
        await storage.remove(grantOf(principal), params['*']);
        return reply.code(204).send();
      },
    }),
    route({
      method: 'GET',
      url: `${API}/storage`,
      auth: 'storage',
      operationId: 'listObjects',
      summary: 'Objects directly under a prefix, by key ascending',
      tags: ['storage'],
      querystring: schemas.StorageListQuery,
      response: { status: 200, schema: schemas.StorageListPage },
      errors: [],
      handler: async ({ query, principal }) =>
        storage.list(grantOf(principal), query.prefix, {
          limit: query.limit ?? 100,
          ...(query.start_after !== undefined ? { startAfter: query.start_after } : {}),
        }),
    }),
  ];
}

/** Minting capability tokens is a controller route (it needs an admin's API key), not a proxy one. */
export function capabilityRoutes(storage: StorageService): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: `${API}/storage-capabilities`,
      auth: 'scaibunker:admin',
      operationId: 'createStorageCapability',
      summary: 'Issue a short-lived storage capability token for a key prefix and verbs (platform admins)',
      tags: ['storage'],
      body: schemas.CapabilityRequest,
      response: { status: 201, schema: schemas.CapabilityToken },
      errors: [],
      handler: async ({ body, reply }) => {
        reply.code(201);
        return storage.issueCapability(body);
      },
    }),
  ];
}

function grantOf(principal: Principal): StorageGrant {
  if (!principal.storage) throw new ApiError('PERMISSION_DENIED', 'storage routes take the worker token or a capability token');
  return principal.storage;
}
