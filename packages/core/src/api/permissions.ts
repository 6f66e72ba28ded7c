/** Permission keys a caller's API key or JWT can carry. */
export const PERMISSIONS = [
  'scaibunker:create',
  'scaibunker:execute',
  'scaibunker:read',
  'scaibunker:admin:tenant',
  'scaibunker:admin',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * What a route declares: a permission key, `worker` (worker token only) or `public`.
 * Every route must declare one; test/routes.test.ts fails otherwise.
 */
export type RouteAuth = Permission | 'worker' | 'public';

/** Permissions implied by holding another: admins may do what their scope covers. */
export function hasPermission(held: readonly string[], needed: Permission): boolean {
  if (held.includes(needed)) return true;
  if (needed === 'scaibunker:admin') return false;
  if (held.includes('scaibunker:admin')) return true;
  if (needed !== 'scaibunker:admin:tenant' && held.includes('scaibunker:admin:tenant')) return true;
  return false;
}
