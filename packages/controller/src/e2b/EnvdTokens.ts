import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { ApiError } from '@scaibunker/core';
import { hashApiKey, looksLikeApiKey } from '../auth/apiKeys.js';
import type { Principal } from '../auth/Principal.js';

const PREFIX = 'e2bat_';
/** Re-issued by every create and connect; the key behind it is re-checked on every call. */
const TTL_MS = 7 * 86400_000;

interface Claims {
  /** bunker */
  b: string;
  /** the API key's sha256 (the key is looked up, so revoking it ends the token too) */
  h?: string;
  /** a JWT caller's principal, carried as it was (no key to look up) */
  p?: Principal;
  /** expiry, ms */
  e: number;
}

export interface KeyLookup {
  principalForKeyHash(hash: string): Promise<Principal>;
}

/**
 * envd access tokens (`envdAccessToken` of a created or connected sandbox; the SDK sends it as
 * `X-Access-Token` to envd): `e2bat_<payload>.<hmac>`, bound to one bunker and to the credential
 * that asked for it. For an API key the token carries only the key's SHA-256 and each envd call
 * resolves the key again (a revoked key stops working at once; permissions are the key's).
 * Signed with a key derived from the worker token, so every controller of a deployment accepts it.
 */
export class EnvdTokens {
  private readonly key: Buffer;

  constructor(
    workerToken: string | undefined,
    private readonly keys: KeyLookup,
  ) {
    this.key = workerToken ? createHmac('sha256', workerToken).update('scaibunker e2b envd token v1').digest() : randomBytes(32);
  }

  /** A token for `bunkerId` acting as the caller; `credential` is the raw API key when the caller used one. */
  mint(principal: Principal, bunkerId: string, credential: string | undefined, now = Date.now()): string {
    const claims: Claims =
      credential && looksLikeApiKey(credential)
        ? { b: bunkerId, h: hashApiKey(credential), e: now + TTL_MS }
        : { b: bunkerId, p: principal, e: now + TTL_MS };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${PREFIX}${payload}.${this.sign(payload)}`;
  }

  /** The caller behind a token for `bunkerId`; UNAUTHENTICATED when forged, expired or for another sandbox. */
  async verify(token: string, bunkerId: string, now = Date.now()): Promise<Principal> {
    const body = token.slice(PREFIX.length);
    const dot = body.indexOf('.');
    if (!token.startsWith(PREFIX) || dot < 0) throw new ApiError('UNAUTHENTICATED', 'malformed envd access token');
    const payload = body.slice(0, dot);
    const given = Buffer.from(body.slice(dot + 1), 'base64url');
    const expected = Buffer.from(this.sign(payload), 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError('UNAUTHENTICATED', 'envd access token signature does not verify');
    }
    let claims: Claims;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      throw new ApiError('UNAUTHENTICATED', 'malformed envd access token');
    }
    if (claims.e <= now) throw new ApiError('UNAUTHENTICATED', 'envd access token expired: connect to the sandbox again');
    if (claims.b !== bunkerId) throw new ApiError('UNAUTHENTICATED', 'envd access token is for another sandbox');
    if (claims.h) return this.keys.principalForKeyHash(claims.h);
    if (claims.p) return claims.p;
    throw new ApiError('UNAUTHENTICATED', 'malformed envd access token');
  }

  private sign(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}
