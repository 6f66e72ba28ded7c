import { ApiError } from '@scaibunker/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import type { PortTunnels } from './PortTunnels.js';
import { type RelayStats, relayHttp, relayUpgrade, splice, upgradeOf } from './relay.js';
import { ThrottledTunnel } from './ThrottledTunnel.js';

/** The `Upgrade` protocol of a raw port-forward tunnel. */
export const TUNNEL_PROTOCOL = 'scaibunker-tunnel';

export interface ProxyTarget {
  bunkerId: string;
  port: number;
  /** Path and query as the service sees them. */
  path: string;
  /** X-Forwarded-Prefix (the path proxy). */
  prefix?: string;
  /** The preview the request came through. */
  previewId?: string;
  /**
   * Served on the API's own origin (the path proxy): answers get `Content-Security-Policy:
   * sandbox`, so a page from a bunker runs as an opaque origin and cannot read the API origin's
   * storage or cookies (the console's key).
   */
  sandbox?: boolean;
}

/** Sandbox everything but same-origin: a bunker's page works, but not as the API's origin. */
const SANDBOX_CSP = 'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads';

/**
 * One proxied request (or upgrade) to a port in a bunker: the tunnel is opened first (so a
 * refused one is an ordinary API error: 404, 409, 429, 502), then the reply is taken over and
 * the exchange relayed. Each ends with one audit event: `port.request` (or `port.upgrade`) with
 * method, path, status, bytes each way and duration (and, under a bandwidth cap, how long it held
 * the exchange back).
 */
export class PortProxy {
  constructor(
    private readonly tunnels: PortTunnels,
    private readonly idleMs: number,
    private readonly audit?: AuditTrail,
  ) {}

  async serve(principal: Principal, target: ProxyTarget, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const upgrade = upgradeOf(req.raw);
    if (upgrade && req.method !== 'GET') throw new ApiError('VALIDATION_FAILED', 'only GET requests can be upgraded');
    const tunnel = await this.tunnels.open(principal, target.bunkerId, target.port);
    reply.hijack();
    const options = {
      req: req.raw,
      tunnel: tunnel.stream,
      port: target.port,
      path: target.path,
      idleMs: this.idleMs,
      ...(target.prefix ? { prefix: target.prefix } : {}),
      ...(target.sandbox ? { responseHeaders: { 'content-security-policy': SANDBOX_CSP } } : {}),
    };
    const done = (stats: RelayStats) =>
      this.record(principal, target, req.method, upgrade ? 'port.upgrade' : 'port.request', stats, tunnel.stream);
    if (upgrade) relayUpgrade(options, upgrade, done);
    else relayHttp(options, reply.raw, done);
  }

  /**
   * A raw TCP tunnel (port-forward): an upgrade to `scaibunker-tunnel` is answered 101 by the
   * controller itself once the tunnel is open, then bytes flow both ways untouched. On record as
   * `port.forward` when it closes.
   */
  async forward(principal: Principal, bunkerId: string, port: number, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const upgrade = upgradeOf(req.raw);
    if (!upgrade || String(req.headers.upgrade ?? '').toLowerCase() !== TUNNEL_PROTOCOL) {
      throw new ApiError('VALIDATION_FAILED', `this route needs an upgrade: Connection: Upgrade, Upgrade: ${TUNNEL_PROTOCOL}`);
    }
    const tunnel = await this.tunnels.open(principal, bunkerId, port);
    reply.hijack();
    upgrade.socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${TUNNEL_PROTOCOL}\r\n\r\n`);
    const target = { bunkerId, port, path: '' };
    splice(upgrade, tunnel.stream, this.idleMs, false, (stats) =>
      this.record(principal, target, 'GET', 'port.forward', stats, tunnel.stream),
    );
  }

  private record(principal: Principal, t: ProxyTarget, method: string, action: string, s: RelayStats, stream: unknown): void {
    this.audit?.record(principal, {
      action,
      target: { type: 'port', id: String(t.port) },
      bunkerId: t.bunkerId,
      details: {
        port: t.port,
        ...(action === 'port.forward'
          ? {}
          : {
              method,
              // The query is left out: it may carry the service's own secrets.
              path: t.path.split('?')[0]?.slice(0, 1024),
            }),
        status: s.status,
        bytes_in: s.bytesIn,
        bytes_out: s.bytesOut,
        duration_ms: s.durationMs,
        ...(t.previewId ? { preview_id: t.previewId } : {}),
        // Time the bunker's bandwidth_mbit held this exchange back.
        ...(stream instanceof ThrottledTunnel ? { bandwidth_held_ms: stream.heldMs } : {}),
        ...(s.error ? { error: s.error } : {}),
      },
    });
  }
}
