import type { Kysely } from 'kysely';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { AuditEventRow, Database } from './schema.js';
import { skipDuplicates } from './sqlDialect.js';

/** What `GET /audit-events` filters by; always one tenant. `from` inclusive, `to` exclusive (ISO, UTC). */
export interface AuditEventFilter {
  tenantId: string;
  bunkerId?: string | undefined;
  action?: string | undefined;
  actor?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Rows per statement: far below PostgreSQL's and MySQL's 65535 and SQLite's 32766 bound parameters (9 columns). */
export const AUDIT_INSERT_BATCH = 500;

export class AuditStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: AuditEventRow): Promise<void> {
    await this.db.insertInto('audit_events').values(row).execute();
  }

  /**
   * One statement for many rows (`AuditWriter`). A row whose id is there already is skipped, so
   * a batch retried after an ambiguous failure (the commit went through, its answer was lost)
   * does not fail on itself for ever.
   */
  async insertMany(rows: readonly AuditEventRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db
      .insertInto('audit_events')
      .values([...rows])
      .$call(skipDuplicates(this.db, 'id'))
      .execute();
  }

  async listForTarget(tenantId: string | null, targetId: string): Promise<AuditEventRow[]> {
    let q = this.db.selectFrom('audit_events').selectAll().where('target_id', '=', targetId);
    q = tenantId === null ? q.where('tenant_id', 'is', null) : q.where('tenant_id', '=', tenantId);
    return q.orderBy('created_at').orderBy('id').execute();
  }

  /** One tenant's events, newest first, keyset-paged over (created_at, id). */
  async list(f: AuditEventFilter): Promise<{ items: AuditEventRow[]; nextCursor: string | null }> {
    let q = this.db.selectFrom('audit_events').selectAll().where('tenant_id', '=', f.tenantId);
    if (f.bunkerId !== undefined) q = q.where('bunker_id', '=', f.bunkerId);
    if (f.action !== undefined) q = q.where('action', '=', f.action);
    if (f.actor !== undefined) q = q.where('actor', '=', f.actor);
    if (f.from !== undefined) q = q.where('created_at', '>=', f.from);
    if (f.to !== undefined) q = q.where('created_at', '<', f.to);
    if (f.cursor) {
      const c = decodeCursor(f.cursor);
      q = q.where((eb) => eb.or([eb('created_at', '<', c.at), eb.and([eb('created_at', '=', c.at), eb('id', '<', c.id)])]));
    }
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
    const items = rows.slice(0, f.limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > f.limit && last ? encodeCursor(last.created_at, last.id) : null };
  }
}
