import type { HttpTransport } from './HttpTransport.js';
import type { ApiKeyInfo, ApiKeyOptions, CreatedApiKey, Permission, Tenant } from './types.js';

/**
 * Tenants and API keys. Creating needs `scaibunker:admin`; listing and revoking a tenant's keys
 * `scaibunker:admin` (any tenant) or `scaibunker:admin:tenant` (the caller's own tenant).
 */
export class AdminApi {
  constructor(private readonly transport: HttpTransport) {}

  createTenant(name: string): Promise<Tenant> {
    return this.transport.json('post', '/v1/admin/tenants', { body: { name } });
  }

  /**
   * Creates an API key for a tenant; `key` is shown only in this answer. `identity` is who the
   * key acts as for quotas: `user_id` (default `key:<id>`) and `groups` (default none);
   * `expires_at` (ISO date-time, in the future) when it stops working (default never).
   */
  createApiKey(tenantId: string, name: string, permissions: Permission[], identity: ApiKeyOptions = {}): Promise<CreatedApiKey> {
    return this.transport.json('post', '/v1/admin/tenants/{id}/api-keys', {
      path: { id: tenantId },
      body: {
        name,
        permissions,
        ...(identity.user_id === undefined ? {} : { user_id: identity.user_id }),
        ...(identity.groups === undefined ? {} : { groups: identity.groups }),
        ...(identity.expires_at === undefined ? {} : { expires_at: identity.expires_at }),
      },
    });
  }

  /** A tenant's API keys, revoked and expired ones included; never their secrets. */
  async listApiKeys(tenantId: string): Promise<ApiKeyInfo[]> {
    const r = await this.transport.json('get', '/v1/admin/tenants/{id}/api-keys', { path: { id: tenantId } });
    return r.items;
  }

  /** Revokes a key: every controller refuses it (401) within a second. Idempotent; answers the key. */
  revokeApiKey(tenantId: string, keyId: string): Promise<ApiKeyInfo> {
    return this.transport.json('delete', '/v1/admin/tenants/{id}/api-keys/{key_id}', { path: { id: tenantId, key_id: keyId } });
  }
}
