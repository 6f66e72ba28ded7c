import type { HttpTransport } from './HttpTransport.js';
import type { CreatedApiKey, Permission, Tenant } from './types.js';

/** Platform-admin operations (need `scaibunker:admin`). */
export class AdminApi {
  constructor(private readonly transport: HttpTransport) {}

  createTenant(name: string): Promise<Tenant> {
    return this.transport.json('post', '/v1/admin/tenants', { body: { name } });
  }

  /** Creates an API key for a tenant; `key` is shown only in this answer. */
  createApiKey(tenantId: string, name: string, permissions: Permission[]): Promise<CreatedApiKey> {
    return this.transport.json('post', '/v1/admin/tenants/{id}/api-keys', { path: { id: tenantId }, body: { name, permissions } });
  }
}
