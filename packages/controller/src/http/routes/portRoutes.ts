import { schemas } from '@scaibunker/core';
import { parsePort } from '../../ports/PortTunnels.js';
import { type RouteDef, route } from '../Route.js';
import { API, type Services } from './Services.js';

const PORT = `${API}/bunkers/:id/ports/:port`;
// HEAD before GET: Fastify would otherwise add its own HEAD for the GET.
const METHODS = ['HEAD', 'GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const PROXY_ERRORS = [
  'BUNKER_NOT_FOUND',
  'BUNKER_NOT_RUNNING',
  'PORT_NOT_LISTENING',
  'PORT_TIMEOUT',
  'TUNNEL_LIMIT',
  'WORKER_UNAVAILABLE',
] as const;

/** The path proxy to ports inside bunkers, and host-based previews of them. */
export function portRoutes(s: Services): RouteDef[] {
  const proxy = METHODS.map((method) =>
    route({
      method,
      url: `${PORT}/*`,
      auth: 'scaibunker:execute',
      operationId: `proxyPort${method[0]}${method.slice(1).toLowerCase()}`,
      summary: `${method} a path of a port inside the bunker (HTTP/1.1 relayed, bodies streamed; SSE and WebSocket upgrades pass through)`,
      tags: ['ports'],
      params: schemas.PortProxyParams,
      wildcard: 'path',
      response: { status: 200, binary: true },
      errors: [...PROXY_ERRORS],
      handler: async () => undefined,
      raw: async ({ params, principal, req, reply }) => {
        const port = parsePort(params.port);
        const url = req.raw.url ?? '/';
        const at = url.indexOf(`/ports/${params.port}/`);
        const prefix = url.slice(0, at + `/ports/${params.port}`.length);
        await s.ports.serve(
          principal,
          { bunkerId: params.id as string, port, path: url.slice(prefix.length), prefix, sandbox: true },
          req,
          reply,
        );
      },
    }),
  );
  return [
    ...proxy,
    route({
      method: 'GET',
      url: PORT,
      auth: 'scaibunker:execute',
      operationId: 'proxyPortRoot',
      summary: 'Redirects (308) to `…/ports/{port}/`, so relative links in pages resolve',
      tags: ['ports'],
      params: schemas.PortParams,
      response: { status: 308 },
      errors: [],
      handler: async ({ req, reply }) => {
        const [path, query] = (req.raw.url ?? '').split(/\?(.*)/s, 2);
        return reply.redirect(`${path}/${query ? `?${query}` : ''}`, 308);
      },
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/port-forward/:port`,
      auth: 'scaibunker:execute',
      operationId: 'portForward',
      summary: 'A raw TCP tunnel to a port: upgrade with `Upgrade: scaibunker-tunnel`, then bytes flow both ways (port-forward)',
      tags: ['ports'],
      params: schemas.PortParams,
      response: { status: 101 },
      errors: [...PROXY_ERRORS.filter((c) => c !== 'PORT_TIMEOUT')],
      handler: async () => undefined,
      raw: async ({ params, principal, req, reply }) => s.ports.forward(principal, params.id as string, parsePort(params.port), req, reply),
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/previews`,
      auth: 'scaibunker:execute',
      operationId: 'createPreview',
      summary: 'A host-based preview of a port: its URL and token (shown once; none when `public`)',
      tags: ['ports'],
      params: schemas.BunkerIdParams,
      body: schemas.CreatePreviewBody,
      response: { status: 201, schema: schemas.Preview },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'PREVIEWS_DISABLED'],
      handler: ({ params, body, principal }) => s.previews.create(principal, params.id, body),
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/previews`,
      auth: 'scaibunker:read',
      operationId: 'listPreviews',
      summary: "A bunker's previews, newest first (tokens are never shown again)",
      tags: ['ports'],
      params: schemas.BunkerIdParams,
      response: { status: 200, schema: schemas.PreviewList },
      errors: ['BUNKER_NOT_FOUND'],
      handler: ({ params, principal }) => s.previews.list(principal, params.id),
    }),
    route({
      method: 'DELETE',
      url: `${API}/bunkers/:id/previews/:preview_id`,
      auth: 'scaibunker:execute',
      operationId: 'revokePreview',
      summary: 'Revoke a preview: its token and cookie stop working at once, on every controller',
      tags: ['ports'],
      params: schemas.PreviewIdParams,
      response: { status: 200, schema: schemas.Empty },
      errors: ['BUNKER_NOT_FOUND', 'PREVIEW_NOT_FOUND'],
      handler: async ({ params, principal }) => {
        await s.previews.revoke(principal, params.id, params.preview_id);
        return {};
      },
    }),
  ];
}
