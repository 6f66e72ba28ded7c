import type { Kysely } from 'kysely';
import type { Database } from './schema.js';
import { skipDuplicates } from './sqlDialect.js';

/**
 * Leases on background jobs, so that with several controllers on one database each tick
 * runs on one of them only. A lease is taken when free or expired, or renewed by its holder.
 */
export class JobLeaseStore {
  constructor(private readonly db: Kysely<Database>) {}

  async claim(job: string, holder: string, ttlMs: number, now = new Date()): Promise<boolean> {
    const expires = new Date(now.getTime() + ttlMs).toISOString();
    const at = now.toISOString();
    // Insert if absent; the conflict case falls through to the conditional update below. Its
    // count is of rows matched (MySQL too: mysql2 connects with CLIENT_FOUND_ROWS), so a holder
    // renewing with an unchanged expiry still reads as renewed.
    await this.db.insertInto('job_leases').values({ job, holder: '', expires_at: at }).$call(skipDuplicates(this.db, 'job')).execute();
    const r = await this.db
      .updateTable('job_leases')
      .set({ holder, expires_at: expires })
      .where('job', '=', job)
      .where((eb) => eb.or([eb('holder', '=', holder), eb('expires_at', '<=', at)]))
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async release(job: string, holder: string): Promise<void> {
    await this.db
      .updateTable('job_leases')
      .set({ expires_at: new Date(0).toISOString() })
      .where('job', '=', job)
      .where('holder', '=', holder)
      .execute();
  }
}
