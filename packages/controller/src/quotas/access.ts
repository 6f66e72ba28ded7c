import { ApiError, hasPermission } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';

/** Platform admins manage every tenant's quotas. */
export function isPlatformAdmin(p: Principal): boolean {
  return hasPermission(p.permissions, 'scaibunker:admin');
}

/** Tenant admins (and platform admins) manage their tenant's quotas and see all its buckets. */
export function isTenantAdmin(p: Principal): boolean {
  return hasPermission(p.permissions, 'scaibunker:admin:tenant');
}

/**
 * The tenant a quota request is about: the caller's own unless a platform admin names another.
 * Anyone else naming another tenant gets TENANT_NOT_FOUND, which confirms nothing.
 */
export async function resolveTenant(store: Store, p: Principal, requested: string | undefined): Promise<string> {
  if (requested === undefined || requested === p.tenantId) return p.tenantId;
  if (!isPlatformAdmin(p) || !(await store.tenants.get(requested))) {
    throw new ApiError('TENANT_NOT_FOUND', `no tenant ${requested}`, { tenant_id: requested });
  }
  return requested;
}
