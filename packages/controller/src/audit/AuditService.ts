import { ApiError, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import { resolveTenant } from '../quotas/access.js';
import type { Store } from '../store/Store.js';
import type { AuditEventRow } from '../store/schema.js';
import { parseTimestamp } from '../time/parseTimestamp.js';

/**
 * `GET /audit-events`: one tenant's audit trail, newest first. Callers see their own tenant's
 * events; platform admins another tenant's with `tenant_id` (anyone else naming another tenant
 * gets TENANT_NOT_FOUND, as for usage and quotas). A `bunker_id` not in that tenant is
 * BUNKER_NOT_FOUND, as on every bunker route, ended bunkers included.
 */
export class AuditService {
  constructor(
    private readonly store: Store,
    private readonly bunkers: Pick<BunkerService, 'get'>,
  ) {}

  async list(principal: Principal, q: schemas.AuditEventQuery): Promise<schemas.AuditEventPage> {
    const tenantId = await resolveTenant(this.store, principal, q.tenant_id);
    const from = q.from === undefined ? undefined : parseTimestamp(q.from, 'from');
    const to = q.to === undefined ? undefined : parseTimestamp(q.to, 'to');
    if (from !== undefined && to !== undefined && to < from) {
      throw new ApiError('VALIDATION_FAILED', '`to` must not be before `from`', { field: 'querystring/to' });
    }
    if (q.bunker_id !== undefined) await this.bunkers.get({ ...principal, tenantId }, q.bunker_id);
    const page = await this.store.audit.list({
      tenantId,
      bunkerId: q.bunker_id,
      action: q.action,
      actor: q.actor,
      from: from === undefined ? undefined : new Date(from).toISOString(),
      to: to === undefined ? undefined : new Date(to).toISOString(),
      limit: q.limit ?? 50,
      cursor: q.cursor,
    });
    return { items: page.items.map(auditEventToApi), next_cursor: page.nextCursor };
  }
}

export function auditEventToApi(r: AuditEventRow): schemas.AuditEvent {
  return {
    id: r.id,
    tenant_id: r.tenant_id,
    actor: r.actor,
    action: r.action,
    target_type: r.target_type,
    target_id: r.target_id,
    bunker_id: r.bunker_id,
    details: parseDetails(r.details),
    created_at: r.created_at,
  };
}

/** Rows are written as JSON objects; anything else (a hand-edited row) is answered under `raw`, not a 500. */
function parseDetails(text: string): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(text);
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  return { raw: text };
}
