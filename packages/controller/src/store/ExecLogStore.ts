import { type Kysely, sql } from 'kysely';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Database, ExecLogRow } from './schema.js';
import { isMysql } from './sqlDialect.js';

/** The columns an exec fills in when it ends; `finished_at` last (MySQL assigns in order, and it is the guard). */
const COMPLETION_COLUMNS = [
  'exit_code',
  'signal',
  'timed_out',
  'duration_ms',
  'stdout_preview',
  'stderr_preview',
  'truncated',
  'full_output_ref',
  'output_store',
  'output_bytes',
  'state',
  'pid',
  'end_reason',
  'finished_at',
] as const;

export class ExecLogStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: ExecLogRow): Promise<void> {
    await this.db.insertInto('exec_logs').values(row).execute();
  }

  /**
   * Inserts rows, or completes those already there: the columns an exec fills in when it ends
   * are replaced, unless the row there is finished already. One statement for a whole batch
   * (`ExecLogWriter`); ids must be distinct.
   */
  async upsertMany(rows: readonly ExecLogRow[]): Promise<void> {
    if (rows.length === 0) return;
    if (isMysql(this.db)) {
      // No WHERE on MySQL's upsert: each column keeps its value once the row is finished. The
      // assignments run left to right, so `finished_at` (the guard) is assigned last.
      await this.db
        .insertInto('exec_logs')
        .values([...rows])
        .onDuplicateKeyUpdate(
          Object.fromEntries(
            COMPLETION_COLUMNS.map((c) => [c, sql`if(exec_logs.finished_at is null, values(${sql.ref(c)}), exec_logs.${sql.ref(c)})`]),
          ),
        )
        .execute();
      return;
    }
    await this.db
      .insertInto('exec_logs')
      .values([...rows])
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet((eb) => ({
            exit_code: eb.ref('excluded.exit_code'),
            signal: eb.ref('excluded.signal'),
            timed_out: eb.ref('excluded.timed_out'),
            duration_ms: eb.ref('excluded.duration_ms'),
            stdout_preview: eb.ref('excluded.stdout_preview'),
            stderr_preview: eb.ref('excluded.stderr_preview'),
            truncated: eb.ref('excluded.truncated'),
            full_output_ref: eb.ref('excluded.full_output_ref'),
            finished_at: eb.ref('excluded.finished_at'),
            output_store: eb.ref('excluded.output_store'),
            output_bytes: eb.ref('excluded.output_bytes'),
            state: eb.ref('excluded.state'),
            pid: eb.ref('excluded.pid'),
            end_reason: eb.ref('excluded.end_reason'),
          }))
          // A finished row is final: a start written late (replayed from a journal) never undoes it.
          .where('exec_logs.finished_at', 'is', null),
      )
      .execute();
  }

  /** Bytes of exec output the tenant has in the blob store now. */
  async storedOutputBytes(tenantId: string): Promise<number> {
    const r = await this.db
      .selectFrom('exec_logs')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('output_bytes'), eb.lit(0)).as('bytes'))
      .where('tenant_id', '=', tenantId)
      .where('output_bytes', '>', 0)
      .executeTakeFirst();
    return Number(r?.bytes ?? 0);
  }

  /** Execs whose stored output is older than `before` (oldest first). */
  async withOutputBefore(before: string, limit: number): Promise<Array<Pick<ExecLogRow, 'id' | 'bunker_id'>>> {
    return this.db
      .selectFrom('exec_logs')
      .select(['id', 'bunker_id'])
      .where('output_bytes', '>', 0)
      .where('started_at', '<', before)
      .orderBy('started_at')
      .limit(limit)
      .execute();
  }

  /** The stored output is gone: the row says so and no longer counts against its tenant. */
  async markOutputExpired(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .updateTable('exec_logs')
      .set({ output_store: 'expired', output_bytes: 0, full_output_ref: null })
      .where('id', 'in', [...ids])
      .execute();
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

  /** Background execs whose row has not ended (the reconciler's work), oldest first. */
  async unfinishedBackground(limit: number): Promise<ExecLogRow[]> {
    return this.db
      .selectFrom('exec_logs')
      .selectAll()
      .where('background', '=', 1)
      .where('finished_at', 'is', null)
      .orderBy('started_at')
      .limit(limit)
      .execute();
  }

  async list(
    tenantId: string,
    bunkerId: string,
    limit: number,
    cursor?: string,
    filter: { state?: string; tag?: string } = {},
  ): Promise<{ items: ExecLogRow[]; nextCursor: string | null }> {
    let q = this.db.selectFrom('exec_logs').selectAll().where('tenant_id', '=', tenantId).where('bunker_id', '=', bunkerId);
    if (filter.tag !== undefined) q = q.where('tag', '=', filter.tag);
    if (filter.state === 'running') q = q.where('finished_at', 'is', null);
    else if (filter.state !== undefined) q = q.where('state', '=', filter.state);
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
