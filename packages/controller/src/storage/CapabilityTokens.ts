import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError, schemas } from '@scaibunker/core';

/** The verbs, from the schema that validates `POST /storage-capabilities`. */
const STORAGE_VERBS = schemas.STORAGE_VERB_NAMES;
export type StorageVerb = (typeof STORAGE_VERBS)[number];

/** What a capability token allows: some verbs on keys under one prefix, until it expires. */
export interface Capability {
  /** A key prefix ending with `/`; the token covers keys that start with it. */
  prefix: string;
  verbs: StorageVerb[];
  /** Unix seconds. */
  expiresAt: number;
  /** Random id, recorded as the actor of what the token does. */
  id: string;
}

const TOKEN_PREFIX = 'sbcap_';
/** Longest lifetime a capability may be issued for: they are meant to be short-lived. */
export const MAX_CAPABILITY_TTL_S = 24 * 3600;

/**
 * Short-lived storage capabilities: `sbcap_<payload>.<hmac>`, both base64url, the payload a JSON
 * `{p, v, e, i}`. Stateless, so any storage proxy holding the same key verifies them with no
 * database — which is what lets `scaibunker proxy` run with none.
 */
export class CapabilityTokens {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error('the capability signing key must be at least 32 bytes');
  }

  /**
   * The key every controller and proxy of one deployment derives from the worker token they
   * share; with no worker token (embedded), a random key good for this process only.
   */
  static fromWorkerToken(workerToken: string | undefined): CapabilityTokens {
    const key = workerToken ? createHmac('sha256', workerToken).update('scaibunker storage capability v1').digest() : randomBytes(32);
    return new CapabilityTokens(key);
  }

  static looksLikeOne(token: string): boolean {
    return token.startsWith(TOKEN_PREFIX);
  }

  issue(opts: { prefix: string; verbs: StorageVerb[]; ttlS: number; now?: number }): { token: string; capability: Capability } {
    const now = Math.floor((opts.now ?? Date.now()) / 1000);
    const capability: Capability = {
      prefix: opts.prefix,
      verbs: [...new Set(opts.verbs)].sort(),
      expiresAt: now + opts.ttlS,
      id: randomBytes(9).toString('base64url'),
    };
    const payload = Buffer.from(
      JSON.stringify({ p: capability.prefix, v: capability.verbs, e: capability.expiresAt, i: capability.id }),
    ).toString('base64url');
    return { token: `${TOKEN_PREFIX}${payload}.${this.sign(payload)}`, capability };
  }

  /** The capability a token carries; UNAUTHENTICATED when forged, malformed or expired. */
  verify(token: string, now = Date.now()): Capability {
    const body = token.slice(TOKEN_PREFIX.length);
    const dot = body.indexOf('.');
    if (!token.startsWith(TOKEN_PREFIX) || dot < 0) throw new ApiError('UNAUTHENTICATED', 'malformed capability token');
    const payload = body.slice(0, dot);
    const given = Buffer.from(body.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.sign(payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError('UNAUTHENTICATED', 'capability token signature does not verify');
    }
    let claims: { p?: unknown; v?: unknown; e?: unknown; i?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      throw new ApiError('UNAUTHENTICATED', 'malformed capability token');
    }
    const { p, v, e, i } = claims;
    if (
      typeof p !== 'string' ||
      !Array.isArray(v) ||
      !v.every((x) => (STORAGE_VERBS as readonly unknown[]).includes(x)) ||
      typeof e !== 'number' ||
      typeof i !== 'string'
    ) {
      throw new ApiError('UNAUTHENTICATED', 'malformed capability token');
    }
    if (e * 1000 <= now) throw new ApiError('UNAUTHENTICATED', 'capability token expired');
    return { prefix: p, verbs: v as StorageVerb[], expiresAt: e, id: i };
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
