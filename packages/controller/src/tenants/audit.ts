import { newId } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';

/** Records an administrative action as an audit event row. */
export async function recordAudit(
  store: Store,
  actor: Principal,
  tenantId: string | null,
  action: string,
  target: { type: string; id: string },
  details: object,
): Promise<void> {
  await store.audit.insert({
    id: newId('ev'),
    tenant_id: tenantId,
    actor: actor.actor,
    action,
    target_type: target.type,
    target_id: target.id,
    details: JSON.stringify(details),
    created_at: new Date().toISOString(),
  });
}
