import { ApiError, newId } from '@scaibunker/core';
import { generateApiKey } from '../auth/apiKeys.js';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';

export const PLATFORM_TENANT = 'platform';

export class TenantService {
  constructor(private readonly store: Store) {}

  async createTenant(actor: Principal, name: string): Promise<{ id: string; name: string }> {
    const row = { id: newId('tn'), name, created_at: new Date().toISOString() };
    await this.store.tenants.insert(row);
    await this.audit(actor, row.id, 'tenant.create', 'tenant', row.id, { name });
    return { id: row.id, name: row.name };
  }

  async createApiKey(actor: Principal, tenantId: string, name: string, permissions: string[]): Promise<{ id: string; key: string }> {
    if (!(await this.store.tenants.get(tenantId))) throw new ApiError('TENANT_NOT_FOUND', `no tenant ${tenantId}`);
    const { key, hash } = generateApiKey();
    const id = newId('ak');
    await this.store.tenants.insertApiKey({
      id,
      tenant_id: tenantId,
      user_id: null,
      name,
      key_hash: hash,
      permissions: JSON.stringify(permissions),
      created_at: new Date().toISOString(),
      revoked_at: null,
    });
    await this.audit(actor, tenantId, 'api_key.create', 'api_key', id, { name, permissions });
    return { id, key };
  }

  /**
   * First start: a `platform` tenant with one platform-admin key. Returns the key only when it
   * was created now (it is shown once), undefined when the platform tenant already exists.
   */
  async bootstrap(): Promise<string | undefined> {
    if (await this.store.tenants.findByName(PLATFORM_TENANT)) return undefined;
    const system: Principal = { kind: 'api_key', tenantId: '', actor: 'system', permissions: [] };
    const tenant = await this.createTenant(system, PLATFORM_TENANT);
    const { key } = await this.createApiKey(system, tenant.id, 'bootstrap-admin', ['scaibunker:admin']);
    return key;
  }

  private async audit(actor: Principal, tenantId: string | null, action: string, targetType: string, targetId: string, details: object) {
    await this.store.audit.insert({
      id: newId('ev'),
      tenant_id: tenantId,
      actor: actor.actor,
      action,
      target_type: targetType,
      target_id: targetId,
      details: JSON.stringify(details),
      created_at: new Date().toISOString(),
    });
  }
}
