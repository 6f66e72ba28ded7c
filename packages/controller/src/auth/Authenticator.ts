import { ApiError } from '@scaibunker/core';
import { isStoreUnavailable } from '../health/failures.js';
import { StorageAuthenticator } from '../storage/StorageAuthenticator.js';
import type { Store } from '../store/Store.js';
import { hashApiKey, looksLikeApiKey } from './apiKeys.js';
import type { JwtVerifier } from './JwtVerifier.js';
import { type Principal, systemPrincipal } from './Principal.js';

/**
 * How long a looked-up API key is trusted without asking the database again. Every request
 * authenticates, and that lookup was a database round trip per exec; keys are never edited, and
 * a revocation drops the key from every controller's cache through the change feed, so this only
 * bounds how long a revocation that missed the feed (Redis down, a row edited by hand) goes unseen.
 */
const API_KEY_TTL_MS = 10_000;
const API_KEY_CACHE_MAX = 10_000;
/** `last_used_at` is written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;

interface CachedKey {
  keyId: string;
  principal: Principal;
  /** Until when the entry is trusted: the TTL, or the key's own expiry if sooner. */
  trustedUntil: number;
  /** The key's expiry (epoch ms), if it has one. */
  keyExpiresAt: number | undefined;
}

/** Turns an Authorization header into a Principal, or UNAUTHENTICATED. */
export class Authenticator {
  /** The worker token and storage capability tokens, which need no database. */
  readonly storage: StorageAuthenticator;
  private readonly apiKeys = new Map<string, CachedKey>();
  /** Bumped by every invalidation: a lookup that started before one does not fill the cache. */
  private generation = 0;
  /** When this controller last wrote each key's `last_used_at`. */
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly jwt: JwtVerifier | undefined,
    workerToken: string | undefined,
    private readonly log: (m: string) => void = (m) => console.error(m),
  ) {
    this.storage = new StorageAuthenticator(workerToken);
  }

  /** A key was revoked (or, `null`, notices may have been lost): drop it (everything) from the cache. */
  invalidateApiKey(keyId: string | null): void {
    this.generation++;
    if (keyId === null) {
      this.apiKeys.clear();
      return;
    }
    for (const [hash, entry] of this.apiKeys) if (entry.keyId === keyId) this.apiKeys.delete(hash);
  }

  async authenticate(header: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!m?.[1]) throw new ApiError('UNAUTHENTICATED', 'missing bearer credentials');
    const token = m[1];
    if (this.storage.isWorkerToken(token)) return systemPrincipal('worker', 'worker');
    if (looksLikeApiKey(token)) return this.apiKey(hashApiKey(token));
    if (this.jwt?.enabled) {
      try {
        const claims = await this.jwt.verify(token);
        return {
          kind: 'jwt',
          tenantId: claims.tenantId,
          actor: `jwt:${claims.sub}`,
          permissions: claims.permissions,
          userId: claims.sub,
          groups: claims.groups,
        };
      } catch (err) {
        throw new ApiError('UNAUTHENTICATED', `invalid token: ${(err as Error).message}`);
      }
    }
    throw new ApiError('UNAUTHENTICATED', 'unknown credentials');
  }

  /** The principal of the API key whose SHA-256 this is (E2B envd access tokens carry it), or UNAUTHENTICATED. */
  principalForKeyHash(hash: string): Promise<Principal> {
    return this.apiKey(hash);
  }

  private async apiKey(hash: string): Promise<Principal> {
    const now = Date.now();
    const hit = this.apiKeys.get(hash);
    if (hit && hit.keyExpiresAt !== undefined && hit.keyExpiresAt <= now) {
      this.apiKeys.delete(hash);
      throw new ApiError('UNAUTHENTICATED', 'expired API key');
    }
    if (hit && hit.trustedUntil > now) {
      this.touch(hit.keyId, now);
      return hit.principal;
    }
    const generation = this.generation;
    let row: Awaited<ReturnType<Store['tenants']['findApiKeyByHash']>>;
    try {
      row = await this.store.tenants.findApiKeyByHash(hash);
    } catch (err) {
      // The database is down: a key we knew stays good (a revocation cannot be written meanwhile either).
      if (hit && isStoreUnavailable(err)) return hit.principal;
      throw err;
    }
    if (!row) {
      this.apiKeys.delete(hash);
      throw new ApiError('UNAUTHENTICATED', 'unknown or revoked API key');
    }
    const keyExpiresAt = row.expires_at ? Date.parse(row.expires_at) : undefined;
    if (keyExpiresAt !== undefined && keyExpiresAt <= Date.now()) {
      this.apiKeys.delete(hash);
      throw new ApiError('UNAUTHENTICATED', 'expired API key');
    }
    const actor = `key:${row.id}`;
    const principal: Principal = {
      kind: 'api_key',
      tenantId: row.tenant_id,
      actor,
      permissions: JSON.parse(row.permissions),
      userId: row.identity_user_id ?? actor,
      groups: JSON.parse(row.identity_groups),
    };
    // A revocation announced while this lookup ran may be older than the row it read: not cached.
    if (generation === this.generation) {
      if (this.apiKeys.size >= API_KEY_CACHE_MAX) this.apiKeys.clear();
      const ttlEnd = Date.now() + API_KEY_TTL_MS;
      this.apiKeys.set(hash, {
        keyId: row.id,
        principal,
        trustedUntil: keyExpiresAt === undefined ? ttlEnd : Math.min(ttlEnd, keyExpiresAt),
        keyExpiresAt,
      });
    }
    this.touch(row.id, now, row.last_used_at);
    return principal;
  }

  /** Records the key's use, at most once a minute per key (and, across controllers, per row). Never awaited. */
  private touch(keyId: string, now: number, lastUsedAt?: string | null): void {
    const written = this.lastUsedWritten.get(keyId) ?? (lastUsedAt ? Date.parse(lastUsedAt) : 0);
    if (now - written < LAST_USED_EVERY_MS) {
      if (!this.lastUsedWritten.has(keyId)) this.lastUsedWritten.set(keyId, written);
      return;
    }
    if (this.lastUsedWritten.size >= API_KEY_CACHE_MAX) this.lastUsedWritten.clear();
    this.lastUsedWritten.set(keyId, now);
    const at = new Date(now).toISOString();
    this.store.tenants.touchApiKey(keyId, at, new Date(now - LAST_USED_EVERY_MS).toISOString()).catch((err: Error) => {
      if (!isStoreUnavailable(err)) this.log(`[auth] could not record the use of key ${keyId}: ${err.message}`);
    });
  }
}
