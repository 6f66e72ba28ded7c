import { ApiError, newId } from '@scaibunker/core';
import { generateApiKey } from '../auth/apiKeys.js';
import { type Principal, systemPrincipal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';
import { recordAudit } from './audit.js';

export const PLATFORM_TENANT = 'platform';

export class TenantService {
  constructor(private readonly store: Store) {}

  async createTenant(actor: Principal, name: string): Promise<{ id: string; name: string }> {
    const row = { id: newId('tn'), name, created_at: new Date().toISOString() };
    await this.store.tenants.insert(row);
    await this.audit(actor, row.id, 'tenant.create', 'tenant', row.id, { name });
    return { id: row.id, name: row.name };
  }

  /**
   * A new API key. `identity` is who the key acts as for quotas: `userId` (default the key's
   * actor, `key:<id>`) and its `groups` (default none).
   */
  async createApiKey(
    actor: Principal,
    tenantId: string,
    name: string,
    permissions: string[],
    identity: { userId?: string | undefined; groups?: readonly string[] | undefined } = {},
  ): Promise<{ id: string; key: string; user_id: string; groups: string[] }> {
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
    });
    const userId = identity.userId ?? `key:${id}`;
    await this.audit(actor, tenantId, 'api_key.create', 'api_key', id, { name, permissions, user_id: userId, groups });
    return { id, key, user_id: userId, groups };
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

  private async audit(actor: Principal, tenantId: string | null, action: string, targetType: string, targetId: string, details: object) {
    await recordAudit(this.store, actor, tenantId, action, { type: targetType, id: targetId }, details);
  }
}
