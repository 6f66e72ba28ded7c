import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { TicketLedger } from './TicketLedger.js';

const TOKEN_PREFIX = 'sbtkt_';
/** A ticket is for opening one WebSocket right away, not for keeping. */
export const TICKET_TTL_MS = 30_000;

interface Claims {
  /** tenant, bunker, actor, user, permissions, expiry (ms), nonce */
  t: string;
  b: string;
  a: string;
  u: string;
  p: string[];
  e: number;
  n: string;
}

/**
 * Single-use tickets for a bunker's WebSockets (shell, attach): browsers cannot set an
 * `Authorization` header on a WebSocket, so an authenticated `POST …/shell-tickets` mints
 * `sbtkt_<payload>.<hmac>` for `?ticket=`. It is bound to the tenant, the bunker and the caller
 * (whose permissions it carries), lives 30 s and opens one socket: the ledger refuses a second
 * use. Signed with a key derived from the worker token, so any controller of the deployment
 * accepts it.
 */
export class ShellTickets {
  constructor(
    private readonly key: Buffer,
    private readonly ledger: TicketLedger,
  ) {
    if (key.length < 32) throw new Error('the ticket signing key must be at least 32 bytes');
  }

  static fromWorkerToken(workerToken: string | undefined, ledger: TicketLedger): ShellTickets {
    const key = workerToken ? createHmac('sha256', workerToken).update('scaibunker shell ticket v1').digest() : randomBytes(32);
    return new ShellTickets(key, ledger);
  }

  mint(principal: Principal, bunkerId: string, now = Date.now()): { ticket: string; expires_at: string } {
    const claims: Claims = {
      t: principal.tenantId,
      b: bunkerId,
      a: principal.actor,
      u: principal.userId,
      p: [...principal.permissions],
      e: now + TICKET_TTL_MS,
      n: randomBytes(12).toString('base64url'),
    };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { ticket: `${TOKEN_PREFIX}${payload}.${this.sign(payload)}`, expires_at: new Date(claims.e).toISOString() };
  }

  /** The caller the ticket was minted for; UNAUTHENTICATED when forged, expired, spent or for another bunker. */
  async redeem(ticket: string, bunkerId: string, now = Date.now()): Promise<Principal> {
    const claims = this.verify(ticket);
    if (claims.e <= now) throw new ApiError('UNAUTHENTICATED', 'shell ticket expired');
    if (claims.b !== bunkerId) throw new ApiError('UNAUTHENTICATED', 'shell ticket is for another bunker');
    if (!(await this.ledger.claim(claims.n, TICKET_TTL_MS))) throw new ApiError('UNAUTHENTICATED', 'shell ticket already used');
    return { kind: 'api_key', tenantId: claims.t, actor: claims.a, userId: claims.u, permissions: claims.p, groups: [] };
  }

  static looksLikeOne(ticket: string): boolean {
    return ticket.startsWith(TOKEN_PREFIX);
  }

  private verify(ticket: string): Claims {
    const body = ticket.slice(TOKEN_PREFIX.length);
    const dot = body.indexOf('.');
    if (!ticket.startsWith(TOKEN_PREFIX) || dot < 0) throw new ApiError('UNAUTHENTICATED', 'malformed shell ticket');
    const payload = body.slice(0, dot);
    const given = Buffer.from(body.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.sign(payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError('UNAUTHENTICATED', 'shell ticket signature does not verify');
    }
    try {
      const c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
      if (typeof c.t === 'string' && typeof c.b === 'string' && typeof c.e === 'number' && typeof c.n === 'string' && Array.isArray(c.p))
        return c;
    } catch {
      /* below */
    }
    throw new ApiError('UNAUTHENTICATED', 'malformed shell ticket');
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
