import type { Kysely } from 'kysely';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { BunkerRow, Database } from './schema.js';

export interface BunkerFilter {
  tenantId: string;
  state?: string;
  labels?: Array<[string, string]>;
  limit: number;
  cursor?: string;
}

const ACTIVE_STATES = ['pending', 'provisioning', 'running', 'paused', 'snapshotting'];

export class BunkerStore {
  private readonly changeListeners: Array<(id: string) => void> = [];

  constructor(private readonly db: Kysely<Database>) {}

  /** Called after every committed change to a bunker row except `touch` (activity time only). */
  onChange(listener: (id: string) => void): void {
    this.changeListeners.push(listener);
  }

  private changed(id: string): void {
    for (const l of this.changeListeners) l(id);
  }

  async insert(row: BunkerRow, labels: Record<string, string>): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.insertInto('bunkers').values(row).execute();
      const entries = Object.entries(labels);
      if (entries.length > 0) {
        await tx
          .insertInto('bunker_labels')
          .values(entries.map(([key, value]) => ({ bunker_id: row.id, tenant_id: row.tenant_id, key, value })))
          .execute();
      }
    });
  }

  /** Removes a bunker that never started (a create refused after its row was written). */
  async delete(id: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('bunker_labels').where('bunker_id', '=', id).execute();
      await tx.deleteFrom('bunkers').where('id', '=', id).execute();
    });
    this.changed(id);
  }

  /** Tenant-scoped read: another tenant's bunker is simply not found. */
  async get(tenantId: string, id: string): Promise<BunkerRow | undefined> {
    return this.db.selectFrom('bunkers').selectAll().where('id', '=', id).where('tenant_id', '=', tenantId).executeTakeFirst();
  }

  /** Unscoped read for internal callers (worker heartbeats, background jobs). */
  async getById(id: string): Promise<BunkerRow | undefined> {
    return this.db.selectFrom('bunkers').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** In chunks: both dialects cap the number of bound parameters in one statement. */
  async getByIds(ids: readonly string[]): Promise<BunkerRow[]> {
    const rows: BunkerRow[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      rows.push(
        ...(await this.db
          .selectFrom('bunkers')
          .selectAll()
          .where('id', 'in', ids.slice(i, i + 500))
          .execute()),
      );
    }
    return rows;
  }

  async list(f: BunkerFilter): Promise<{ items: BunkerRow[]; nextCursor: string | null }> {
    let q = this.db.selectFrom('bunkers').selectAll().where('tenant_id', '=', f.tenantId);
    if (f.state) q = q.where('state', '=', f.state);
    for (const [key, value] of f.labels ?? []) {
      q = q.where('id', 'in', (eb) =>
        eb
          .selectFrom('bunker_labels')
          .select('bunker_id')
          .where('tenant_id', '=', f.tenantId)
          .where('key', '=', key)
          .where('value', '=', value),
      );
    }
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

  /**
   * Compare-and-set state move: succeeds only while the row is still in one of `from`.
   * Two controllers racing on one bunker cannot both win.
   */
  async transition(id: string, from: readonly string[], to: string, patch: Partial<BunkerRow> = {}): Promise<BunkerRow | undefined> {
    const now = new Date().toISOString();
    const r = await this.db
      .updateTable('bunkers')
      .set({ ...patch, state: to, updated_at: now })
      .where('id', '=', id)
      .where('state', 'in', [...from])
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) return undefined;
    this.changed(id);
    return this.getById(id);
  }

  async update(id: string, patch: Partial<BunkerRow>): Promise<void> {
    await this.db
      .updateTable('bunkers')
      .set({ ...patch, updated_at: new Date().toISOString() })
      .where('id', '=', id)
      .execute();
    this.changed(id);
  }

  /** Activity of these bunkers at `at` (never moves a row's `last_activity_at` back); not a row change for the caches. */
  async touch(ids: readonly string[], at: string): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .updateTable('bunkers')
      .set({ last_activity_at: at })
      .where('id', 'in', [...ids])
      .where('last_activity_at', '<', at)
      .execute();
  }

  async listActive(): Promise<BunkerRow[]> {
    return this.db.selectFrom('bunkers').selectAll().where('state', 'in', ACTIVE_STATES).execute();
  }

  /** Creates still `pending`/`provisioning` that started before `before`: their controller is gone. */
  async listStuckCreating(before: string): Promise<BunkerRow[]> {
    return this.db
      .selectFrom('bunkers')
      .selectAll()
      .where('state', 'in', ['pending', 'provisioning'])
      .where('created_at', '<', before)
      .execute();
  }

  /** The quota charge sets of active bunkers (all tenants, or one): what counters are rebuilt from. */
  async listActiveQuotaCharges(tenantId?: string): Promise<Array<{ id: string; quota_charges: string }>> {
    let q = this.db
      .selectFrom('bunkers')
      .select(['id', 'quota_charges'])
      .where('state', 'in', ACTIVE_STATES)
      .where('quota_charges', 'is not', null);
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return (await q.execute()) as Array<{ id: string; quota_charges: string }>;
  }

  /** Bunkers the usage ticker meters: running or paused on a worker. */
  async listMetered(): Promise<BunkerRow[]> {
    return this.db
      .selectFrom('bunkers')
      .selectAll()
      .where('state', 'in', ['running', 'paused'])
      .where('worker_id', 'is not', null)
      .execute();
  }

  async listActiveOnWorker(workerId: string): Promise<BunkerRow[]> {
    return this.db.selectFrom('bunkers').selectAll().where('worker_id', '=', workerId).where('state', 'in', ACTIVE_STATES).execute();
  }

  /** Sum of resources held by active bunkers per worker, for placement. */
  /**
   * Bunkers that need the snapshot's archive now: being restored from it (pending/provisioning),
   * or passivated with their files in it.
   */
  async snapshotUsers(snapshotId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('bunkers')
      .select('id')
      .where('snapshot_id', '=', snapshotId)
      .where((eb) =>
        eb.or([eb('state', 'in', ['pending', 'provisioning']), eb.and([eb('passivated', '=', 1), eb('state', 'in', ACTIVE_STATES)])]),
      )
      .execute();
    return rows.map((r) => r.id);
  }

  /** Bunkers that have not ended, by state (for metrics; uses the state index). */
  async countByState(): Promise<Map<string, number>> {
    const rows = await this.db
      .selectFrom('bunkers')
      .select((eb) => ['state', eb.fn.countAll<number>().as('n')])
      .where('state', 'in', ACTIVE_STATES)
      .groupBy('state')
      .execute();
    return new Map(rows.map((r) => [r.state, Number(r.n)]));
  }

  /** What each tenant's bunkers that have not ended hold (tenants with none are absent). */
  async allocationsByTenant(): Promise<Map<string, { cpu: number; memory: number; disk: number; count: number }>> {
    const rows = await this.db
      .selectFrom('bunkers')
      .select((eb) => [
        'tenant_id',
        eb.fn.sum<number>('cpu_millicores').as('cpu'),
        eb.fn.sum<number>('memory_mb').as('memory'),
        eb.fn.sum<number>('disk_mb').as('disk'),
        eb.fn.countAll<number>().as('count'),
      ])
      .where('state', 'in', ACTIVE_STATES)
      .groupBy('tenant_id')
      .execute();
    return new Map(
      rows.map((r) => [r.tenant_id, { cpu: Number(r.cpu), memory: Number(r.memory), disk: Number(r.disk), count: Number(r.count) }]),
    );
  }

  async allocationsByWorker(): Promise<Map<string, { cpu: number; memory: number; disk: number; count: number }>> {
    const rows = await this.db
      .selectFrom('bunkers')
      .select((eb) => [
        'worker_id',
        eb.fn.sum<number>('cpu_millicores').as('cpu'),
        eb.fn.sum<number>('memory_mb').as('memory'),
        eb.fn.sum<number>('disk_mb').as('disk'),
        eb.fn.countAll<number>().as('count'),
      ])
      .where('state', 'in', ACTIVE_STATES)
      .where('worker_id', 'is not', null)
      .groupBy('worker_id')
      .execute();
    const out = new Map<string, { cpu: number; memory: number; disk: number; count: number }>();
    for (const r of rows) {
      if (r.worker_id) out.set(r.worker_id, { cpu: Number(r.cpu), memory: Number(r.memory), disk: Number(r.disk), count: Number(r.count) });
    }
    return out;
  }
}
