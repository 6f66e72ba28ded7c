import type { HttpTransport } from './HttpTransport.js';
import { type Page, Paginator } from './Paginator.js';
import type { AuditEvent } from './types.js';

/** Filters left undefined are not applied. */
export interface AuditQueryOptions {
  /** Only events on this bunker (its execs and file changes included). */
  bunkerId?: string | undefined;
  /** Only this action: `exec.run`, `file.write`, `bunker.create`, `api_key.create`, … */
  action?: string | undefined;
  /** Only events by this actor: `key:<id>`, `jwt:<sub>`, `system`. */
  actor?: string | undefined;
  /** From (inclusive): an ISO 8601 date or date-time, or a Date. */
  from?: string | Date | undefined;
  /** To (exclusive). */
  to?: string | Date | undefined;
  /** Events per page (1–200, default 50). */
  limit?: number | undefined;
  /** Start at this page (a `nextCursor` from an earlier page). */
  cursor?: string | undefined;
  /** Platform admins: another tenant's events. */
  tenantId?: string | undefined;
}

const iso = (v: string | Date) => (v instanceof Date ? v.toISOString() : v);

/** The caller's tenant's audit trail (`scaibunker:audit:read`). */
export class AuditApi {
  constructor(private readonly transport: HttpTransport) {}

  /**
   * Events newest first, fetched a page at a time as they are iterated:
   * `for await (const e of client.audit.list({ bunkerId }))`, or `.page()` for one page.
   */
  list(opts: AuditQueryOptions = {}): Paginator<AuditEvent> {
    return new Paginator(async (cursor): Promise<Page<AuditEvent>> => {
      const page = await this.transport.json('get', '/v1/modules/scaibunker/audit-events', {
        query: {
          ...(opts.bunkerId ? { bunker_id: opts.bunkerId } : {}),
          ...(opts.action ? { action: opts.action } : {}),
          ...(opts.actor ? { actor: opts.actor } : {}),
          ...(opts.from !== undefined ? { from: iso(opts.from) } : {}),
          ...(opts.to !== undefined ? { to: iso(opts.to) } : {}),
          ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
          ...(opts.tenantId ? { tenant_id: opts.tenantId } : {}),
          ...(cursor !== undefined ? { cursor } : {}),
        },
      });
      return { items: page.items, nextCursor: page.next_cursor };
    }, opts.cursor);
  }
}
