import { type CompiledQuery, type Kysely, type OnConflictBuilder, sql } from 'kysely';
import { allColumns } from './allColumns.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Database, ExecLogRow } from './schema.js';
import { isMysql, isPostgres, jsonRecordset } from './sqlDialect.js';
import { storableText } from './storableText.js';

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

/** Every column of a row, in the order an upsert binds them (the compiler refuses a column left out). */
const ROW_COLUMNS = allColumns<ExecLogRow>()([
  'id',
  'bunker_id',
  'tenant_id',
  'caller',
  'command',
  'exit_code',
  'signal',
  'timed_out',
  'duration_ms',
  'stdout_preview',
  'stderr_preview',
  'truncated',
  'full_output_ref',
  'started_at',
  'finished_at',
  'output_store',
  'output_bytes',
  'state',
  'tag',
  'background',
  'pid',
  'end_reason',
  'pty',
]);

/**
 * Literals, not parameters, where a query must match a partial index's predicate (migration
 * 0015): a planner proves `output_bytes > 0` from `output_bytes > 0` whatever it was bound,
 * while from `> $1` it may not (PostgreSQL's generic plan of a prepared statement does not).
 */
const STORED = sql.lit(0);
const BACKGROUND = sql.lit(1);

/** An upsert of n rows compiled once: its SQL, and where each parameter comes from (row, column) or its constant. */
interface UpsertPlan {
  compiled: CompiledQuery;
  slots: Array<{ row: number; column: (typeof ROW_COLUMNS)[number] } | { value: unknown }>;
}

export class ExecLogStore {
  /**
   * SQLite and MySQL: upserts by batch size, compiled on first use: the exec path writes a batch every few
   * milliseconds under load, and building the statement through Kysely each time cost more
   * controller CPU than sending it.
   */
  private readonly upsertPlans = new Map<number, UpsertPlan>();
  /**
   * PostgreSQL: the upsert of any number of rows as one statement with one parameter, the rows
   * as a JSON array. Compiled per batch size, a statement past PreparedWrites' 256 parameters
   * (10 rows) was parsed and planned anew each time — under load 39 % of the rows went in such
   * statements; this one text is prepared once per connection whatever the batch.
   */
  private readonly jsonUpsert: CompiledQuery | undefined;

  constructor(private readonly db: Kysely<Database>) {
    if (!isPostgres(db)) return;
    this.jsonUpsert = db
      .insertInto('exec_logs')
      .columns([...ROW_COLUMNS])
      .expression(jsonRecordset('exec_logs', ROW_COLUMNS))
      .onConflict((oc) => completeUnlessFinished(oc))
      .compile();
    if (this.jsonUpsert.parameters.length !== 1) throw new Error('exec-log JSON upsert: expected one parameter');
  }

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
    rows = rows.map((row) => storableText(row, ROW_COLUMNS));
    if (this.jsonUpsert) {
      await this.db.executeQuery({ ...this.jsonUpsert, parameters: [JSON.stringify(rows)] });
      return;
    }
    const plan = this.upsertPlan(rows.length);
    const parameters = plan.slots.map((slot) => ('value' in slot ? slot.value : (rows[slot.row] as ExecLogRow)[slot.column]));
    await this.db.executeQuery({ ...plan.compiled, parameters });
  }

  /**
   * The upsert of `n` rows, compiled from rows of markers: each parameter of the compiled
   * statement that is a marker is bound to its row's column at each use, any other is a
   * constant of the statement.
   */
  private upsertPlan(n: number): UpsertPlan {
    let plan = this.upsertPlans.get(n);
    if (plan) return plan;
    const marker = (row: number, column: string) => `\u0000execlog:${row}:${column}`;
    const rows = Array.from(
      { length: n },
      (_, row) => Object.fromEntries(ROW_COLUMNS.map((column) => [column, marker(row, column)])) as unknown as ExecLogRow,
    );
    const compiled = this.upsertQuery(rows).compile();
    const bySlot = new Map<unknown, { row: number; column: (typeof ROW_COLUMNS)[number] }>();
    rows.forEach((_, row) => {
      for (const column of ROW_COLUMNS) bySlot.set(marker(row, column), { row, column });
    });
    const slots = compiled.parameters.map((p) => bySlot.get(p) ?? { value: p });
    if (slots.filter((s) => 'row' in s).length !== n * ROW_COLUMNS.length) {
      throw new Error('exec-log upsert: a column of a row is not a parameter of the compiled statement');
    }
    plan = { compiled, slots };
    this.upsertPlans.set(n, plan);
    return plan;
  }

  /** The upsert statement (not run): insert, or complete a row that is not finished yet. */
  private upsertQuery(rows: readonly ExecLogRow[]) {
    if (isMysql(this.db)) {
      // No WHERE on MySQL's upsert: each column keeps its value once the row is finished. The
      // assignments run left to right, so `finished_at` (the guard) is assigned last.
      return this.db
        .insertInto('exec_logs')
        .values([...rows])
        .onDuplicateKeyUpdate(
          Object.fromEntries(
            COMPLETION_COLUMNS.map((c) => [c, sql`if(exec_logs.finished_at is null, values(${sql.ref(c)}), exec_logs.${sql.ref(c)})`]),
          ),
        );
    }
    return this.db
      .insertInto('exec_logs')
      .values([...rows])
      .onConflict((oc) => completeUnlessFinished(oc));
  }

  /** Bytes of exec output the tenant has in the blob store now. */
  async storedOutputBytes(tenantId: string): Promise<number> {
    const r = await this.db
      .selectFrom('exec_logs')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('output_bytes'), eb.lit(0)).as('bytes'))
      .where('tenant_id', '=', tenantId)
      .where('output_bytes', '>', STORED)
      .executeTakeFirst();
    return Number(r?.bytes ?? 0);
  }

  /** Execs whose stored output is older than `before` (oldest first). */
  async withOutputBefore(before: string, limit: number): Promise<Array<Pick<ExecLogRow, 'id' | 'bunker_id'>>> {
    return this.db
      .selectFrom('exec_logs')
      .select(['id', 'bunker_id'])
      .where('output_bytes', '>', STORED)
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
      .where('background', '=', BACKGROUND)
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

/** SQLite and PostgreSQL: an existing row gets the completion columns, unless it is finished. */
function completeUnlessFinished(oc: OnConflictBuilder<Database, 'exec_logs'>) {
  return (
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
      .where('exec_logs.finished_at', 'is', null)
  );
}
