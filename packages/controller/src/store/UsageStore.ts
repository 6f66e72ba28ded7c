import { type Kysely, sql } from 'kysely';
import type { Database, UsageFinalSampleRow, UsageRow } from './schema.js';
import { isMysql, skipDuplicates } from './sqlDialect.js';
import { isUniqueViolation } from './uniqueViolation.js';

/** How `GET /usage` groups rows; `none` sums everything into one item. */
export type UsageGroupBy = 'bunker' | 'day' | 'hour' | 'image' | 'none';

export interface UsageTotals {
  /** The group: a bunker id, a day `YYYY-MM-DD`, an hour `YYYY-MM-DDTHH`, an image name; null for `none`. */
  key: string | null;
  cpu_seconds: number;
  memory_mb_minutes: number;
  disk_mb_minutes: number;
  wall_seconds: number;
}

/** Where a bunker's next usage row starts: its latest row's reading. */
export interface LastSample {
  sampled_at: string;
  cpu_usage_ns: number;
}

/** Rows per statement: well under every dialect's bound-parameter limit. */
const CHUNK = 200;

/** The usage ledger: one row per bunker per minute, and terminated bunkers' last readings. */
export class UsageStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** The latest row's reading of each bunker that has one. */
  async lastSamples(bunkerIds: readonly string[]): Promise<Map<string, LastSample>> {
    const out = new Map<string, LastSample>();
    for (let i = 0; i < bunkerIds.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('usage as u')
        .select(['u.bunker_id', 'u.sampled_at', 'u.cpu_usage_ns'])
        .where('u.bunker_id', 'in', bunkerIds.slice(i, i + CHUNK))
        // (bunker_id, minute_start) is unique and indexed; the latest minute is the latest sample.
        .where('u.minute_start', '=', (eb) =>
          eb
            .selectFrom('usage as v')
            .select((e) => e.fn.max('v.minute_start').as('m'))
            .whereRef('v.bunker_id', '=', 'u.bunker_id'),
        )
        .execute();
      for (const r of rows) out.set(r.bunker_id, { sampled_at: r.sampled_at, cpu_usage_ns: Number(r.cpu_usage_ns) });
    }
    return out;
  }

  /**
   * Records samples. A bunker's first sample in a minute inserts its row; a later one in the same
   * minute is added to that row, but only if the row still ends where the sample's deltas start
   * (`sampled_at = since_at`): a tick that runs twice counts once. `since_at` (the reading a row's
   * last sample counted from) is unique per bunker, so two ticks that computed deltas from the
   * same reading cannot both count them, in the same minute or not (the second one's statement
   * fails). Returns how many samples were counted.
   */
  async record(rows: readonly UsageRow[]): Promise<number> {
    if (isMysql(this.db)) return this.recordEach(rows);
    let counted = 0;
    for (let i = 0; i < rows.length; i += CHUNK) {
      const r = await this.db
        .insertInto('usage')
        .values(rows.slice(i, i + CHUNK))
        .onConflict((oc) =>
          oc
            .columns(['bunker_id', 'minute_start'])
            .doUpdateSet((eb) => ({
              cpu_seconds: eb('usage.cpu_seconds', '+', eb.ref('excluded.cpu_seconds')),
              memory_mb_minutes: eb('usage.memory_mb_minutes', '+', eb.ref('excluded.memory_mb_minutes')),
              disk_mb_minutes: eb('usage.disk_mb_minutes', '+', eb.ref('excluded.disk_mb_minutes')),
              wall_seconds: eb('usage.wall_seconds', '+', eb.ref('excluded.wall_seconds')),
              cpu_usage_ns: eb.ref('excluded.cpu_usage_ns'),
              sampled_at: eb.ref('excluded.sampled_at'),
              // The row now ends with a sample counted from `since_at`: no other row may count from it.
              since_at: eb.ref('excluded.since_at'),
            }))
            .whereRef('usage.sampled_at', '=', 'excluded.since_at'),
        )
        .executeTakeFirst();
      counted += Number(r.numInsertedOrUpdatedRows ?? 0);
    }
    return counted;
  }

  /**
   * `record` on MySQL/MariaDB, one sample at a time: `ON DUPLICATE KEY UPDATE` has no `WHERE`, and
   * its affected-row count cannot tell a skipped sample from an inserted one. The guarded update
   * adds a sample to its minute's row when that row ends where the sample starts; otherwise the
   * insert makes the minute's row. A duplicate minute (its row ends elsewhere: counted already) is
   * skipped, as the guarded upsert does; a duplicate `since_at` fails, as it does there.
   */
  private async recordEach(rows: readonly UsageRow[]): Promise<number> {
    let counted = 0;
    for (const row of rows) {
      const r = await this.db
        .updateTable('usage')
        .set((eb) => ({
          cpu_seconds: eb('cpu_seconds', '+', row.cpu_seconds),
          memory_mb_minutes: eb('memory_mb_minutes', '+', row.memory_mb_minutes),
          disk_mb_minutes: eb('disk_mb_minutes', '+', row.disk_mb_minutes),
          wall_seconds: eb('wall_seconds', '+', row.wall_seconds),
          cpu_usage_ns: row.cpu_usage_ns,
          since_at: row.since_at,
          sampled_at: row.sampled_at,
        }))
        .where('bunker_id', '=', row.bunker_id)
        .where('minute_start', '=', row.minute_start)
        .where('sampled_at', '=', row.since_at)
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) === 1) {
        counted++;
        continue;
      }
      try {
        await this.db.insertInto('usage').values(row).execute();
        counted++;
      } catch (err) {
        if (!isUniqueViolation(err) || /usage_bunker_since/.test((err as Error).message)) throw err;
      }
    }
    return counted;
  }

  /** Keeps a terminated bunker's last reading for the next tick (a second one for the bunker is ignored). */
  async stashFinal(row: UsageFinalSampleRow): Promise<void> {
    await this.db.insertInto('usage_final_samples').values(row).$call(skipDuplicates(this.db, 'bunker_id')).execute();
  }

  async listFinals(limit: number): Promise<UsageFinalSampleRow[]> {
    const rows = await this.db.selectFrom('usage_final_samples').selectAll().orderBy('sampled_at').limit(limit).execute();
    return rows.map((r) => ({
      ...r,
      cpu_usage_ns: Number(r.cpu_usage_ns),
      memory_bytes: Number(r.memory_bytes),
      disk_used_bytes: r.disk_used_bytes === null ? null : Number(r.disk_used_bytes),
    }));
  }

  async deleteFinals(bunkerIds: readonly string[]): Promise<void> {
    for (let i = 0; i < bunkerIds.length; i += CHUNK) {
      await this.db
        .deleteFrom('usage_final_samples')
        .where('bunker_id', 'in', bunkerIds.slice(i, i + CHUNK))
        .execute();
    }
  }

  /** A tenant's usage in minutes [from, to) (ISO timestamps as stored), summed per group. */
  async totals(tenantId: string, from: string, to: string, groupBy: UsageGroupBy): Promise<UsageTotals[]> {
    const key =
      groupBy === 'bunker'
        ? sql<string>`bunker_id`
        : groupBy === 'image'
          ? sql<string>`image`
          : groupBy === 'day'
            ? sql<string>`substr(minute_start, 1, 10)`
            : groupBy === 'hour'
              ? sql<string>`substr(minute_start, 1, 13)`
              : sql<string | null>`null`;
    let q = this.db
      .selectFrom('usage')
      .select((eb) => [
        key.as('key'),
        eb.fn.sum<number>('cpu_seconds').as('cpu_seconds'),
        eb.fn.sum<number>('memory_mb_minutes').as('memory_mb_minutes'),
        eb.fn.sum<number>('disk_mb_minutes').as('disk_mb_minutes'),
        eb.fn.sum<number>('wall_seconds').as('wall_seconds'),
      ])
      .where('tenant_id', '=', tenantId)
      .where('minute_start', '>=', from)
      .where('minute_start', '<', to);
    if (groupBy !== 'none') q = q.groupBy(key).orderBy(key);
    const rows = await q.execute();
    return rows.map((r) => ({
      key: r.key === null ? null : String(r.key),
      cpu_seconds: Number(r.cpu_seconds ?? 0),
      memory_mb_minutes: Number(r.memory_mb_minutes ?? 0),
      disk_mb_minutes: Number(r.disk_mb_minutes ?? 0),
      wall_seconds: Number(r.wall_seconds ?? 0),
    }));
  }
}
