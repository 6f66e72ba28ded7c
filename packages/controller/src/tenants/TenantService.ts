import { ApiError, newId, type schemas } from '@scaibunker/core';
import type { Static } from '@sinclair/typebox';
import { generateApiKey } from '../auth/apiKeys.js';
import { type Principal, systemPrincipal } from '../auth/Principal.js';
import type { ChangeFeed } from '../live/ChangeFeed.js';
import { isPlatformAdmin } from '../quotas/access.js';
import type { Store } from '../store/Store.js';
import type { ApiKeyRow } from '../store/schema.js';
import { parseTimestamp } from '../time/parseTimestamp.js';
import { recordAudit } from './audit.js';

export const PLATFORM_TENANT = 'platform';

type ApiKeyInfo = Static<typeof schemas.ApiKey>;

export class TenantService {
  constructor(
    private readonly store: Store,
    /** Where a revocation is announced, so every controller drops the key from its cache at once. */
    private readonly changes?: ChangeFeed,
  ) {}

  async createTenant(actor: Principal, name: string): Promise<{ id: string; name: string }> {
    const row = { id: newId('tn'), name, created_at: new Date().toISOString() };
    await this.store.tenants.insert(row);
    await this.audit(actor, row.id, 'tenant.create', 'tenant', row.id, { name });
    return { id: row.id, name: row.name };
  }

  /**
   * A new API key. `identity` is who the key acts as for quotas: `userId` (default the key's
   * actor, `key:<id>`) and its `groups` (default none). `expiresAt`: an ISO date-time in the future.
   */
  async createApiKey(
    actor: Principal,
    tenantId: string,
    name: string,
    permissions: string[],
    identity: { userId?: string | undefined; groups?: readonly string[] | undefined } = {},
    expiresAt?: string,
  ): Promise<{ id: string; key: string; user_id: string; groups: string[]; expires_at: string | null }> {
    let expires: string | null = null;
    if (expiresAt !== undefined) {
      const ms = parseTimestamp(expiresAt, 'expires_at');
      if (ms <= Date.now()) throw new ApiError('VALIDATION_FAILED', '`expires_at` is not in the future', { field: 'body/expires_at' });
      expires = new Date(ms).toISOString();
    }
    if (!(await this.store.tenants.get(tenantId))) throw new ApiError('TENANT_NOT_FOUND', `no tenant ${tenantId}`);
    const { key, hash } = generateApiKey();
    const id = newId('ak');
    const groups = [...new Set(identity.groups ?? [])];
    await this.store.tenants.insertApiKey({
      id,
      tenant_id: tenantId,
      user_id: null,
      identity_user_id: identity.userId ?? null,
      identity_groups: JSON.stringify(groups),
      name,
      key_hash: hash,
      permissions: JSON.stringify(permissions),
      created_at: new Date().toISOString(),
      revoked_at: null,
      expires_at: expires,
    });
    const userId = identity.userId ?? `key:${id}`;
    await this.audit(actor, tenantId, 'api_key.create', 'api_key', id, {
      name,
      permissions,
      user_id: userId,
      groups,
      ...(expires ? { expires_at: expires } : {}),
    });
    return { id, key, user_id: userId, groups, expires_at: expires };
  }

  /** A tenant's keys without their secrets: platform admins any tenant's, tenant admins their own. */
  async listApiKeys(actor: Principal, tenantId: string): Promise<ApiKeyInfo[]> {
    await this.checkTenantScope(actor, tenantId);
    return (await this.store.tenants.listApiKeys(tenantId)).map(apiKeyToApi);
  }

  /**
   * Revokes a key (idempotent: a revoked key answers as it is). Every controller drops it from
   * its key cache through the change feed, so it is refused at once here and within the feed's
   * delivery time elsewhere.
   */
  async revokeApiKey(actor: Principal, tenantId: string, keyId: string): Promise<ApiKeyInfo> {
    await this.checkTenantScope(actor, tenantId);
    const revoked = await this.store.tenants.revokeApiKey(tenantId, keyId, new Date().toISOString());
    const row = await this.store.tenants.getApiKey(tenantId, keyId);
    if (!row) throw new ApiError('API_KEY_NOT_FOUND', `no API key ${keyId} in tenant ${tenantId}`, { key_id: keyId });
    // Published even when it was revoked already: a retry also clears any cache that kept it.
    this.changes?.publish('api_key', keyId);
    if (revoked) await this.audit(actor, tenantId, 'api_key.revoke', 'api_key', keyId, { name: row.name });
    return apiKeyToApi(row);
  }

  /**
   * First start: a `platform` tenant with one platform-admin key. Returns the key only when it
   * was created now (it is shown once), undefined when the platform tenant already exists.
   */
  async bootstrap(): Promise<string | undefined> {
    // Several controllers may start at once on a fresh database: one of them creates it.
    return this.store.locks.with(
      'bootstrap',
      async () => {
        if (await this.store.tenants.findByName(PLATFORM_TENANT)) return undefined;
        const system = systemPrincipal('system');
        const tenant = await this.createTenant(system, PLATFORM_TENANT);
        const { key } = await this.createApiKey(system, tenant.id, 'bootstrap-admin', ['scaibunker:admin']);
        return key;
      },
      60_000,
    );
  }

  /** Platform admins: any existing tenant; anyone else (tenant admins): their own only. Otherwise TENANT_NOT_FOUND, which confirms nothing. */
  private async checkTenantScope(actor: Principal, tenantId: string): Promise<void> {
    const allowed = isPlatformAdmin(actor) || tenantId === actor.tenantId;
    if (!allowed || !(await this.store.tenants.get(tenantId))) {
      throw new ApiError('TENANT_NOT_FOUND', `no tenant ${tenantId}`, { tenant_id: tenantId });
    }
  }

  private async audit(actor: Principal, tenantId: string | null, action: string, targetType: string, targetId: string, details: object) {
    await recordAudit(this.store, actor, tenantId, action, { type: targetType, id: targetId }, details);
  }
}

export function apiKeyToApi(row: ApiKeyRow): ApiKeyInfo {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    permissions: JSON.parse(row.permissions),
    user_id: row.identity_user_id ?? `key:${row.id}`,
    groups: JSON.parse(row.identity_groups),
    created_at: row.created_at,
    last_used_at: row.last_used_at ?? null,
    expires_at: row.expires_at ?? null,
    revoked_at: row.revoked_at,
  };
}
