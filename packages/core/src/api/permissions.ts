/**
 * Permission keys a caller's API key or JWT can carry. `scaibunker:network:<profile>` lets a
 * create use that network profile (`isolated` needs none); without it the create is
 * NETWORK_PROFILE_DENIED before quotas or any worker are asked. `scaibunker:l2_transparency`
 * lets a `transit` interface turn its spoof guard off (`spoof_guard: false`).
 * `scaibunker:audit:read` reads the tenant's audit trail (`GET /audit-events`): who ran what,
 * wrote which file, made which key. Kept apart from `scaibunker:read` because the trail covers
 * every caller of the tenant, keys and admin actions included; tenant admins hold it.
 * `scaibunker:preview:public` makes a preview of a bunker's port that needs no token
 * (`POST …/ports/{port}/previews` with `public: true`): anyone with the URL reaches the port.
 */
export const PERMISSIONS = [
  'scaibunker:create',
  'scaibunker:execute',
  'scaibunker:read',
  'scaibunker:network:registry',
  'scaibunker:network:allowlisted',
  'scaibunker:network:unrestricted',
  'scaibunker:network:transit',
  'scaibunker:l2_transparency',
  'scaibunker:audit:read',
  'scaibunker:preview:public',
  'scaibunker:admin:tenant',
  'scaibunker:admin',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/** The permission a network profile needs; undefined for `isolated`, which every creator may use. */
export const NETWORK_PROFILE_PERMISSIONS = {
  isolated: undefined,
  registry: 'scaibunker:network:registry',
  allowlisted: 'scaibunker:network:allowlisted',
  unrestricted: 'scaibunker:network:unrestricted',
  transit: 'scaibunker:network:transit',
} as const satisfies Record<string, Permission | undefined>;

/**
 * What a route declares: a permission key, `worker` (worker token only), `storage` (the worker
 * token or a storage capability token, whose prefix and verbs the route checks) or `public`.
 * Every route must declare one; test/routes.test.ts fails otherwise.
 */
export type RouteAuth = Permission | 'worker' | 'storage' | 'public';

/**
 * Permissions implied by holding another: admins may do what their scope covers. Platform
 * admins hold everything; tenant admins everything but platform admin (every network profile
 * included).
 */
export function hasPermission(held: readonly string[], needed: Permission): boolean {
  if (held.includes(needed)) return true;
  if (needed === 'scaibunker:admin') return false;
  if (held.includes('scaibunker:admin')) return true;
  if (needed !== 'scaibunker:admin:tenant' && held.includes('scaibunker:admin:tenant')) return true;
  return false;
}
