import { newId } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';
import type { AuditEventRow } from '../store/schema.js';

/** One audit event as its writer gives it; see AuditTrail. */
export interface AuditEntry {
  /** `<noun>.<verb>`: `exec.run`, `file.write`, `shell.open`… (filterable with `action=`). */
  action: string;
  target: { type: string; id: string };
  /** The bunker the event is on or inside; a `bunker` target's own id when not given. */
  bunkerId?: string | null;
  /** The action's own fields; stored as JSON, answered as an object. */
  details?: object;
}

/** The row for an event by `actor` in `tenantId` (null: a platform object's event), stamped now. */
export function auditRow(actor: Principal, tenantId: string | null, e: AuditEntry): AuditEventRow {
  return {
    id: newId('ev'),
    tenant_id: tenantId,
    actor: actor.actor,
    action: e.action,
    target_type: e.target.type,
    target_id: e.target.id,
    bunker_id: e.bunkerId ?? (e.target.type === 'bunker' ? e.target.id : null),
    details: JSON.stringify(e.details ?? {}),
    created_at: new Date().toISOString(),
  };
}

/** Records an administrative action as an audit event row, before answering (one round trip). */
export async function recordAudit(
  store: Store,
  actor: Principal,
  tenantId: string | null,
  action: string,
  target: { type: string; id: string },
  details: object,
): Promise<void> {
  await store.audit.insert(auditRow(actor, tenantId, { action, target, details }));
}
