import type { Kysely } from 'kysely';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { Database, SnapshotRow } from './schema.js';

/** Bunker snapshots: rows only (the archives are in the blob store). */
export class SnapshotStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: SnapshotRow): Promise<void> {
    await this.db.insertInto('snapshots').values(row).execute();
  }

  /** Tenant-scoped read: another tenant's snapshot is simply not found. */
  async get(tenantId: string, id: string): Promise<SnapshotRow | undefined> {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId)
      .where('state', '!=', 'deleting')
      .executeTakeFirst();
  }

  async getById(id: string): Promise<SnapshotRow | undefined> {
    return this.db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** A tenant's snapshots (optionally one bunker's), newest first, keyset-paged. */
  async list(f: {
    tenantId: string;
    bunkerId?: string;
    limit: number;
    cursor?: string;
  }): Promise<{ items: SnapshotRow[]; nextCursor: string | null }> {
    let q = this.db.selectFrom('snapshots').selectAll().where('tenant_id', '=', f.tenantId).where('state', '!=', 'deleting');
    if (f.bunkerId) q = q.where('bunker_id', '=', f.bunkerId);
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

  /** creating → ready with what the worker stored; false when the row was no longer creating. */
  async markReady(id: string, done: { format: string; sha256: string; size_bytes: number; ready_at: string }): Promise<boolean> {
    const r = await this.db
      .updateTable('snapshots')
      .set({ ...done, state: 'ready' })
      .where('id', '=', id)
      .where('state', '=', 'creating')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** creating → failed with the reason (kept until `expires_at`); false when it was no longer creating. */
  async markFailed(id: string, error: string, expiresAt: string): Promise<boolean> {
    const r = await this.db
      .updateTable('snapshots')
      .set({ state: 'failed', error: error.slice(0, 1000), expires_at: expiresAt })
      .where('id', '=', id)
      .where('state', '=', 'creating')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Claims the row for a delete (`from` → deleting); false when it was not in `from`. */
  async claimDelete(id: string, from: readonly SnapshotRow['state'][]): Promise<boolean> {
    const r = await this.db
      .updateTable('snapshots')
      .set({ state: 'deleting' })
      .where('id', '=', id)
      .where('state', 'in', [...from])
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /** Gives a claimed row back (a restore started in between). */
  async unclaimDelete(id: string, to: SnapshotRow['state']): Promise<void> {
    await this.db.updateTable('snapshots').set({ state: to }).where('id', '=', id).where('state', '=', 'deleting').execute();
  }

  /** Passivation snapshots of a bunker other than `keep` (superseded by a newer one, or the bunker ended). */
  async passivationsOf(bunkerId: string, keep?: string): Promise<SnapshotRow[]> {
    let q = this.db.selectFrom('snapshots').selectAll().where('bunker_id', '=', bunkerId).where('source', '=', 'passivation');
    if (keep) q = q.where('id', '!=', keep);
    return q.execute();
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('snapshots').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) === 1;
  }

  /** Bytes the tenant's ready and in-progress snapshots hold. */
  async tenantBytes(tenantId: string): Promise<number> {
    const r = await this.db
      .selectFrom('snapshots')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number>('size_bytes'), eb.lit(0)).as('bytes'))
      .where('tenant_id', '=', tenantId)
      .where('state', 'in', ['creating', 'ready'])
      .executeTakeFirstOrThrow();
    return Number(r.bytes);
  }

  /** Snapshots past their expiry (`now`), oldest first. */
  async listExpired(now: string, limit: number): Promise<SnapshotRow[]> {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('expires_at', 'is not', null)
      .where('expires_at', '<=', now)
      .orderBy('expires_at')
      .limit(limit)
      .execute();
  }

  /** `creating`/`deleting` rows older than `before`: their controller died in the middle. */
  async listStale(before: string, limit: number): Promise<SnapshotRow[]> {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('state', 'in', ['creating', 'deleting'])
      .where('created_at', '<', before)
      .orderBy('created_at')
      .limit(limit)
      .execute();
  }

  /** The bunker's newest ready snapshot (for recovery after its worker was lost). */
  async latestReady(bunkerId: string): Promise<SnapshotRow | undefined> {
    return this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('bunker_id', '=', bunkerId)
      .where('state', '=', 'ready')
      .orderBy('ready_at', 'desc')
      .limit(1)
      .executeTakeFirst();
  }
}
