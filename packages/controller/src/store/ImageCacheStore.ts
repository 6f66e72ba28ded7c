import type { Kysely } from 'kysely';
import type { Database, ImageCacheRow } from './schema.js';

/** The `image_cache` ledger: which worker holds which image, as its heartbeats say. */
export class ImageCacheStore {
  constructor(private readonly db: Kysely<Database>) {}

  /**
   * Makes the ledger match what a worker reports, both ways: reported images become `ready`,
   * `ready` rows the worker no longer reports are removed (a wiped cache heals with no manual
   * step). `warming` and `failed` rows of unreported images stay: the warm-up owns them.
   */
  async reconcile(workerId: string, cached: readonly string[], now: string): Promise<{ added: string[]; removed: string[] }> {
    return this.db.transaction().execute(async (trx) => {
      const rows = await trx.selectFrom('image_cache').selectAll().where('worker_id', '=', workerId).execute();
      const have = new Map(rows.map((r) => [r.sha256, r]));
      const reported = new Set(cached);
      const added: string[] = [];
      const removed: string[] = [];
      for (const sha of reported) {
        const row = have.get(sha);
        if (row?.state === 'ready') continue;
        if (row) {
          await trx
            .updateTable('image_cache')
            .set({ state: 'ready', error: null, updated_at: now })
            .where('worker_id', '=', workerId)
            .where('sha256', '=', sha)
            .execute();
        } else {
          await trx
            .insertInto('image_cache')
            .values({ worker_id: workerId, sha256: sha, state: 'ready', error: null, updated_at: now })
            .execute();
        }
        added.push(sha);
      }
      for (const row of rows) {
        if (row.state === 'ready' && !reported.has(row.sha256)) {
          await trx.deleteFrom('image_cache').where('worker_id', '=', workerId).where('sha256', '=', row.sha256).execute();
          removed.push(row.sha256);
        }
      }
      return { added, removed };
    });
  }

  /** Marks an image as being fetched by a worker, unless it is already there or on its way. */
  async startWarming(workerId: string, sha256: string, now: string, retryBefore: string): Promise<boolean> {
    const row = await this.get(workerId, sha256);
    if (row?.state === 'ready') return false;
    if (row && row.updated_at >= retryBefore) return false;
    if (row) {
      const res = await this.db
        .updateTable('image_cache')
        .set({ state: 'warming', error: null, updated_at: now })
        .where('worker_id', '=', workerId)
        .where('sha256', '=', sha256)
        .where('updated_at', '=', row.updated_at)
        .executeTakeFirst();
      return Number(res.numUpdatedRows) === 1;
    }
    try {
      await this.db
        .insertInto('image_cache')
        .values({ worker_id: workerId, sha256, state: 'warming', error: null, updated_at: now })
        .execute();
      return true;
    } catch {
      return false; // another controller started it first
    }
  }

  async finishWarming(workerId: string, sha256: string, outcome: { error?: string }, now: string): Promise<void> {
    await this.db
      .updateTable('image_cache')
      .set(outcome.error ? { state: 'failed', error: outcome.error, updated_at: now } : { state: 'ready', error: null, updated_at: now })
      .where('worker_id', '=', workerId)
      .where('sha256', '=', sha256)
      .where('state', '=', 'warming')
      .execute();
  }

  async get(workerId: string, sha256: string): Promise<ImageCacheRow | undefined> {
    return this.db.selectFrom('image_cache').selectAll().where('worker_id', '=', workerId).where('sha256', '=', sha256).executeTakeFirst();
  }

  async forImage(sha256: string): Promise<ImageCacheRow[]> {
    return this.db.selectFrom('image_cache').selectAll().where('sha256', '=', sha256).orderBy('worker_id').execute();
  }

  /**
   * Online workers that share an availability group with `workerId` and hold `sha256` ready:
   * where that worker may fetch it from instead of the storage proxy.
   */
  async peers(workerId: string, sha256: string): Promise<Array<{ worker_id: string; url: string }>> {
    return this.db
      .selectFrom('image_cache as c')
      .innerJoin('workers as w', 'w.id', 'c.worker_id')
      .select(['w.id as worker_id', 'w.url as url'])
      .where('c.sha256', '=', sha256)
      .where('c.state', '=', 'ready')
      .where('w.state', '!=', 'offline')
      .where('w.id', '!=', workerId)
      .where('w.url', '!=', '')
      .where('w.id', 'in', (eb) =>
        eb
          .selectFrom('availability_group_workers as mine')
          .innerJoin('availability_group_workers as theirs', 'theirs.group_id', 'mine.group_id')
          .select('theirs.worker_id')
          .where('mine.worker_id', '=', workerId),
      )
      .distinct()
      .orderBy('w.id')
      .execute();
  }
}
