import type { HttpTransport } from './HttpTransport.js';
import type { ApiKeyIdentity, CreatedApiKey, Permission, Tenant } from './types.js';

/** Platform-admin operations (need `scaibunker:admin`). */
export class AdminApi {
  constructor(private readonly transport: HttpTransport) {}

  createTenant(name: string): Promise<Tenant> {
    return this.transport.json('post', '/v1/admin/tenants', { body: { name } });
  }

  /**
   * Creates an API key for a tenant; `key` is shown only in this answer. `identity` is who the
   * key acts as for quotas: `user_id` (default `key:<id>`) and `groups` (default none).
   */
  createApiKey(tenantId: string, name: string, permissions: Permission[], identity: ApiKeyIdentity = {}): Promise<CreatedApiKey> {
    return this.transport.json('post', '/v1/admin/tenants/{id}/api-keys', {
      path: { id: tenantId },
      body: {
        name,
        permissions,
        ...(identity.user_id === undefined ? {} : { user_id: identity.user_id }),
        ...(identity.groups === undefined ? {} : { groups: identity.groups }),
      },
    });
  }
}
