import { timingSafeEqual } from 'node:crypto';
import { ApiError } from '@scaibunker/core';
import type { Store } from '../store/Store.js';
import { hashApiKey, looksLikeApiKey } from './apiKeys.js';
import type { JwtVerifier } from './JwtVerifier.js';
import { type Principal, systemPrincipal } from './Principal.js';

/** Turns an Authorization header into a Principal, or UNAUTHENTICATED. */
export class Authenticator {
  private readonly workerToken: Buffer | undefined;

  constructor(
    private readonly store: Store,
    private readonly jwt: JwtVerifier | undefined,
    workerToken: string | undefined,
  ) {
    this.workerToken = workerToken ? Buffer.from(workerToken) : undefined;
  }

  async authenticate(header: string | undefined): Promise<Principal> {
    const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
    if (!m?.[1]) throw new ApiError('UNAUTHENTICATED', 'missing bearer credentials');
    const token = m[1];
    if (this.isWorkerToken(token)) return systemPrincipal('worker', 'worker');
    if (looksLikeApiKey(token)) {
      const row = await this.store.tenants.findApiKeyByHash(hashApiKey(token));
      if (!row) throw new ApiError('UNAUTHENTICATED', 'unknown or revoked API key');
      const actor = `key:${row.id}`;
      return {
        kind: 'api_key',
        tenantId: row.tenant_id,
        actor,
        permissions: JSON.parse(row.permissions),
        userId: row.identity_user_id ?? actor,
        groups: JSON.parse(row.identity_groups),
      };
    }
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

  private isWorkerToken(token: string): boolean {
    if (!this.workerToken) return false;
    const given = Buffer.from(token);
    return given.length === this.workerToken.length && timingSafeEqual(given, this.workerToken);
  }
}
