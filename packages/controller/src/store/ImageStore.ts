import type { Kysely } from 'kysely';
import type { Database, ImageRow } from './schema.js';

const ACTIVE_BUNKER_STATES = ['pending', 'provisioning', 'running', 'paused', 'snapshotting'];

/** Images, their partner shares, bake claims and scans. */
export class ImageStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Images a tenant can use: its own, platform-scoped ones and partner images shared with it. */
  async listVisible(tenantId: string): Promise<ImageRow[]> {
    return this.visible(tenantId).orderBy('name').orderBy('created_at').execute();
  }

  async findVisible(tenantId: string, name: string): Promise<ImageRow | undefined> {
    const rows = await this.visible(tenantId).where('name', '=', name).execute();
    // A tenant's own image shadows a shared or platform image of the same name.
    return rows.find((r) => r.tenant_id === tenantId) ?? rows.find((r) => r.scope === 'partner') ?? rows[0];
  }

  async getVisible(tenantId: string, id: string): Promise<ImageRow | undefined> {
    return this.visible(tenantId).where('id', '=', id).executeTakeFirst();
  }

  async getById(id: string): Promise<ImageRow | undefined> {
    return this.db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
  }

  private visible(tenantId: string) {
    return this.db
      .selectFrom('images')
      .selectAll()
      .where((eb) =>
        eb.or([
          eb('tenant_id', '=', tenantId),
          eb('scope', '=', 'platform'),
          eb('id', 'in', eb.selectFrom('image_shares').select('image_id').where('image_shares.tenant_id', '=', tenantId)),
        ]),
      );
  }

  /** An image of that name and scope owner already (tenant: per tenant; platform: global). */
  async nameTaken(tenantId: string | null, name: string): Promise<boolean> {
    const q = this.db.selectFrom('images').select('id').where('name', '=', name);
    const row = await (tenantId === null ? q.where('scope', '=', 'platform') : q.where('tenant_id', '=', tenantId)).executeTakeFirst();
    return row !== undefined;
  }

  async insert(row: ImageRow, sharedWith: readonly string[] = []): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('images').values(row).execute();
      for (const tenantId of sharedWith) await trx.insertInto('image_shares').values({ image_id: row.id, tenant_id: tenantId }).execute();
    });
  }

  /** Register or refresh a platform image (built-in catalog entries). */
  async upsertPlatform(row: ImageRow): Promise<void> {
    const existing = await this.db
      .selectFrom('images')
      .select('id')
      .where('name', '=', row.name)
      .where('scope', '=', 'platform')
      .executeTakeFirst();
    if (existing) {
      await this.db
        .updateTable('images')
        .set({ sha256: row.sha256, size_bytes: row.size_bytes, state: row.state })
        .where('id', '=', existing.id)
        .execute();
    } else {
      await this.db.insertInto('images').values(row).execute();
    }
  }

  /**
   * Claims one image to bake: a `pending` one, or a `baking` one whose baker has not reported
   * since `staleBefore` (its controller died). Compare-and-set, so two controllers never bake
   * the same image.
   */
  async claimBake(holder: string, now: string, staleBefore: string): Promise<ImageRow | undefined> {
    const candidates = await this.db
      .selectFrom('images')
      .selectAll()
      .where((eb) => eb.or([eb('state', '=', 'pending'), eb.and([eb('state', '=', 'baking'), eb('baker_seen_at', '<', staleBefore)])]))
      .orderBy('created_at')
      .limit(5)
      .execute();
    for (const c of candidates) {
      const res = await this.db
        .updateTable('images')
        .set({ state: 'baking', baker: holder, baker_seen_at: now, updated_at: now })
        .where('id', '=', c.id)
        .where('state', '=', c.state)
        .where((eb) => (c.baker_seen_at ? eb('baker_seen_at', '=', c.baker_seen_at) : eb('baker_seen_at', 'is', null)))
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) return { ...c, state: 'baking', baker: holder, baker_seen_at: now, updated_at: now };
    }
    return undefined;
  }

  /** False when the claim was lost (taken over, or the image deleted): the baker stops. */
  async reportProgress(id: string, holder: string, progress: string, now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('images')
      .set({ progress, baker_seen_at: now, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'baking')
      .where('baker', '=', holder)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async finishBake(id: string, holder: string, result: { sha256: string; size_bytes: number }, now: string): Promise<boolean> {
    const res = await this.db
      .updateTable('images')
      .set({ state: 'ready', ...result, progress: null, baker: null, scan_state: 'pending', updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'baking')
      .where('baker', '=', holder)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  async failBake(id: string, holder: string, failure: string, now: string): Promise<void> {
    await this.db
      .updateTable('images')
      .set({ state: 'failed', failure, baker: null, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'baking')
      .where('baker', '=', holder)
      .execute();
  }

  /**
   * Claims an image to scan (`onlyId`: that one only): ready, with a scan pending, or stuck
   * `scanning` since `staleBefore`.
   */
  async claimScan(now: string, staleBefore: string, onlyId?: string): Promise<ImageRow | undefined> {
    let q = this.db.selectFrom('images').selectAll();
    if (onlyId) q = q.where('id', '=', onlyId);
    const candidates = await q
      .where('state', '=', 'ready')
      .where('sha256', 'is not', null)
      .where((eb) =>
        eb.or([eb('scan_state', '=', 'pending'), eb.and([eb('scan_state', '=', 'scanning'), eb('updated_at', '<', staleBefore)])]),
      )
      .orderBy('created_at')
      .limit(5)
      .execute();
    for (const c of candidates) {
      const res = await this.db
        .updateTable('images')
        .set({ scan_state: 'scanning', updated_at: now })
        .where('id', '=', c.id)
        .where('scan_state', '=', c.scan_state ?? 'pending')
        .where((eb) => (c.updated_at ? eb('updated_at', '=', c.updated_at) : eb('updated_at', 'is', null)))
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 1) return { ...c, scan_state: 'scanning', updated_at: now };
    }
    return undefined;
  }

  async finishScan(id: string, state: 'done' | 'failed', result: string, now: string): Promise<void> {
    await this.db
      .updateTable('images')
      .set({ scan_state: state, scan_result: result, scanned_at: now, updated_at: now })
      .where('id', '=', id)
      .execute();
  }

  /**
   * The daily rescan: ready images last scanned before `scannedBefore` (or never) go back to
   * pending. Idempotent, so it can run on every tick after the daily boundary. Returns how many.
   */
  async requestRescans(scannedBefore: string, now: string): Promise<number> {
    const res = await this.db
      .updateTable('images')
      .set({ scan_state: 'pending', updated_at: now })
      .where('state', '=', 'ready')
      .where('sha256', 'is not', null)
      .where((eb) =>
        eb.or([
          eb('scan_state', 'is', null),
          eb.and([eb('scan_state', 'in', ['done', 'failed']), eb.or([eb('scanned_at', 'is', null), eb('scanned_at', '<', scannedBefore)])]),
        ]),
      )
      .executeTakeFirst();
    return Number(res.numUpdatedRows);
  }

  /** Bunkers that have not ended running this image (by name and content; any tenant for shared images). */
  async activeBunkerCount(image: ImageRow): Promise<number> {
    let q = this.db
      .selectFrom('bunkers')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('image', '=', image.name)
      .where('state', 'in', ACTIVE_BUNKER_STATES);
    if (image.sha256) q = q.where('image_sha256', '=', image.sha256);
    if (image.scope === 'tenant' && image.tenant_id) q = q.where('tenant_id', '=', image.tenant_id);
    const row = await q.executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** Other image rows with the same content (their bytes must stay). */
  async othersWithSha(id: string, sha256: string): Promise<number> {
    const row = await this.db
      .selectFrom('images')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('sha256', '=', sha256)
      .where('id', '!=', id)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async delete(id: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('image_shares').where('image_id', '=', id).execute();
      await trx.deleteFrom('availability_group_images').where('image_id', '=', id).execute();
      await trx.deleteFrom('images').where('id', '=', id).execute();
    });
  }
}
