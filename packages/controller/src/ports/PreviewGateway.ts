import { ApiError, hasPermission } from '@scaibunker/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../auth/Principal.js';
import type { PortProxy } from './PortProxy.js';
import type { PreviewService } from './PreviewService.js';
import { parsePreviewHost } from './previewHost.js';
import { cookieValue, E2B_TRAFFIC_TOKEN_HEADER, PREVIEW_COOKIE, PREVIEW_TOKEN_HEADER } from './relay.js';

/** E2B's envd and code interpreter ports: served by the API itself (e2bRoutes), not tunneled. */
const E2B_SERVED_PORTS = new Set([49983, 49999]);

/** Who an E2B sandbox's traffic access token acts for (EnvdTokens): bound to one bunker. */
export interface TrafficTokens {
  verify(token: string, bunkerId: string): Promise<Principal>;
}

/**
 * Requests to preview hosts (`{port}-{bunker}.{preview domain}`), answered before any API
 * route: authorized by a preview token (the `X-ScaiBunker-Preview-Token` header, or the cookie a
 * one-time `?token=` link sets), a public preview, or — the E2B SDK's `getHost(port)` — the
 * sandbox's traffic access token in `E2B-Traffic-Access-Token`, then proxied to the port.
 */
export class PreviewGateway {
  constructor(
    private readonly previews: PreviewService,
    private readonly proxy: PortProxy,
    private readonly secureCookie: boolean,
    private readonly trafficTokens?: TrafficTokens,
  ) {}

  /**
   * Whether the request is for a preview host (not the API). Not E2B's envd or code interpreter
   * on their own host names (`49983-{id}.{domain}`, what the SDK calls without E2B_SANDBOX_URL):
   * carrying that sandbox's `E2b-Sandbox-Id`, they go to the API's envd routes, which
   * authenticate them by their own tokens.
   */
  matches(req: FastifyRequest): boolean {
    const domain = this.previews.domain;
    if (!domain) return false;
    const target = parsePreviewHost(req.headers.host, domain);
    if (target === undefined) return false;
    return !(target && E2B_SERVED_PORTS.has(target.port) && req.headers['e2b-sandbox-id'] === target.bunkerId);
  }

  async serve(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const target = parsePreviewHost(req.headers.host, this.previews.domain as string);
    if (!target) throw new ApiError('NOT_FOUND', `no preview at ${req.headers.host}`);
    const url = new URL(req.raw.url ?? '/', 'http://preview.invalid');
    const linkToken = url.searchParams.get('token');
    if (linkToken !== null) {
      // A one-time link: the token moves into a cookie for this host only, and out of the URL
      // (history, logs, Referer).
      const grant = await this.previews.authorize(target.bunkerId, target.port, linkToken);
      url.searchParams.delete('token');
      const maxAge = Math.max(0, Math.floor((Date.parse(grant.expiresAt) - Date.now()) / 1000));
      const cookie = `${PREVIEW_COOKIE}=${linkToken}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${this.secureCookie ? '; Secure' : ''}`;
      await reply
        .header('set-cookie', cookie)
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .redirect(`${url.pathname}${url.search}`, 303);
      return;
    }
    const traffic = req.headers[E2B_TRAFFIC_TOKEN_HEADER];
    if (typeof traffic === 'string' && traffic && this.trafficTokens) {
      // E2B's secured sandbox traffic: the token stands for the key that created or connected the
      // sandbox (re-checked on every request), which must be allowed to use the bunker's ports as
      // on the path proxy. No token falls through to the preview rules: never an open door.
      const principal = await this.trafficTokens.verify(traffic, target.bunkerId);
      if (!hasPermission(principal.permissions, 'scaibunker:execute')) {
        throw new ApiError('PERMISSION_DENIED', "this sandbox's ports need scaibunker:execute", { needed: 'scaibunker:execute' });
      }
      await this.proxy.serve(principal, { bunkerId: target.bunkerId, port: target.port, path: req.raw.url ?? '/' }, req, reply);
      return;
    }
    const header = req.headers[PREVIEW_TOKEN_HEADER];
    const token = (typeof header === 'string' && header) || cookieValue(req.headers.cookie, PREVIEW_COOKIE) || undefined;
    const grant = await this.previews.authorize(target.bunkerId, target.port, token);
    await this.proxy.serve(
      grant.principal,
      { bunkerId: target.bunkerId, port: target.port, path: req.raw.url ?? '/', previewId: grant.previewId },
      req,
      reply,
    );
  }
}
