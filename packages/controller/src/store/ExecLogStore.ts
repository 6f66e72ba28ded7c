import type { Kysely } from 'kysely';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Database, ExecLogRow } from './schema.js';

export class ExecLogStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: ExecLogRow): Promise<void> {
    await this.db.insertInto('exec_logs').values(row).execute();
  }

  async finish(id: string, patch: Partial<ExecLogRow>): Promise<void> {
    await this.db.updateTable('exec_logs').set(patch).where('id', '=', id).execute();
  }

  async get(tenantId: string, bunkerId: string, id: string): Promise<ExecLogRow | undefined> {
    return this.db
      .selectFrom('exec_logs')
      .selectAll()
      .where('id', '=', id)
      .where('bunker_id', '=', bunkerId)
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
  }

  async list(
    tenantId: string,
    bunkerId: string,
    limit: number,
    cursor?: string,
  ): Promise<{ items: ExecLogRow[]; nextCursor: string | null }> {
    let q = this.db.selectFrom('exec_logs').selectAll().where('tenant_id', '=', tenantId).where('bunker_id', '=', bunkerId);
    if (cursor) {
      const c = decodeCursor(cursor);
      q = q.where((eb) => eb.or([eb('started_at', '<', c.at), eb.and([eb('started_at', '=', c.at), eb('id', '<', c.id)])]));
    }
    const rows = await q
      .orderBy('started_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.started_at, last.id) : null };
  }
}
