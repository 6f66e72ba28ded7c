import { ApiError } from '@scaibunker/core';
import { isStoreUnavailable } from '../health/failures.js';
import { StorageAuthenticator } from '../storage/StorageAuthenticator.js';
import type { Store } from '../store/Store.js';
import { hashApiKey, looksLikeApiKey } from './apiKeys.js';
import type { JwtVerifier } from './JwtVerifier.js';
import { type Principal, systemPrincipal } from './Principal.js';

/**
 * How long a looked-up API key is trusted without asking the database again. Every request
 * authenticates, and that lookup was a database round trip per exec; keys are never edited, so
 * the only thing this delays is noticing a key row deleted or revoked in the database.
 */
const API_KEY_TTL_MS = 10_000;
const API_KEY_CACHE_MAX = 10_000;

/** Turns an Authorization header into a Principal, or UNAUTHENTICATED. */
export class Authenticator {
  /** The worker token and storage capability tokens, which need no database. */
  readonly storage: StorageAuthenticator;
  private readonly apiKeys = new Map<string, { principal: Principal; expiresAt: number }>();

  constructor(
    private readonly store: Store,
    private readonly jwt: JwtVerifier | undefined,
    workerToken: string | undefined,
  ) {
    this.storage = new StorageAuthenticator(workerToken);
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
    const hit = this.apiKeys.get(hash);
    if (hit && hit.expiresAt > Date.now()) return hit.principal;
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
    const actor = `key:${row.id}`;
    const principal: Principal = {
      kind: 'api_key',
      tenantId: row.tenant_id,
      actor,
      permissions: JSON.parse(row.permissions),
      userId: row.identity_user_id ?? actor,
      groups: JSON.parse(row.identity_groups),
    };
    if (this.apiKeys.size >= API_KEY_CACHE_MAX) this.apiKeys.clear();
    this.apiKeys.set(hash, { principal, expiresAt: Date.now() + API_KEY_TTL_MS });
    return principal;
  }
}
