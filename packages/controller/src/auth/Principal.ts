import type { StorageGrant } from '../storage/StorageGrant.js';

/** Who is calling: resolved once per request by the Authenticator. */
export interface Principal {
  kind: 'api_key' | 'jwt' | 'worker' | 'storage';
  tenantId: string;
  /** Stable actor id recorded in exec logs and audit events (`key:<id>`, `jwt:<sub>`, `worker`). */
  actor: string;
  permissions: readonly string[];
  /**
   * The user this caller acts as, for quota buckets: a JWT's `sub`, or the `user_id` an API key
   * was created with (default: the key's actor, `key:<id>`).
   */
  userId: string;
  /** The user's groups: a JWT's `groups` claim, or the groups an API key was created with. */
  groups: readonly string[];
  /** On `storage` routes: what the worker token or capability token allows. */
  storage?: StorageGrant;
}

/** A caller that is nobody in particular (system tasks, public routes, the worker token). */
export function systemPrincipal(actor: string, kind: Principal['kind'] = 'api_key'): Principal {
  return { kind, tenantId: '', actor, permissions: [], userId: actor, groups: [] };
}
