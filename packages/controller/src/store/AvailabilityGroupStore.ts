import type { Kysely } from 'kysely';
import type { AvailabilityGroupRow, Database } from './schema.js';
import { isUniqueViolation } from './uniqueViolation.js';

/** A tenant group's name as stored (see AvailabilityGroupRow.name). */
function storedName(row: Pick<AvailabilityGroupRow, 'name' | 'tenant_id'>): string {
  return row.tenant_id ? `${row.tenant_id}/${row.name}` : row.name;
}

/** The row with its name as given. */
function bare(row: AvailabilityGroupRow): AvailabilityGroupRow {
  const tenant = row.tenant_id ?? null;
  return { ...row, tenant_id: tenant, name: tenant && row.name.startsWith(`${tenant}/`) ? row.name.slice(tenant.length + 1) : row.name };
}

/**
 * Availability groups: sets of workers that keep a set of images warm. A platform group's
 * workers are its members; a tenant group's are the workers its tenant's bunkers were placed on
 * since a given time (`since`, from the caller's rule).
 */
export class AvailabilityGroupStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** False when a group of that name exists (per tenant; platform groups among themselves). */
  async insert(row: AvailabilityGroupRow): Promise<boolean> {
    try {
      await this.db
        .insertInto('availability_groups')
        .values({ ...row, tenant_id: row.tenant_id ?? null, name: storedName(row) })
        .execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async get(id: string): Promise<AvailabilityGroupRow | undefined> {
    const row = await this.db.selectFrom('availability_groups').selectAll().where('id', '=', id).executeTakeFirst();
    return row && bare(row);
  }

  /** Every group (undefined), the platform's (null), or one tenant's. */
  async list(tenantId?: string | null): Promise<AvailabilityGroupRow[]> {
    let q = this.db.selectFrom('availability_groups').selectAll();
    if (tenantId === null) q = q.where('tenant_id', 'is', null);
    else if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId);
    return (await q.orderBy('name').execute()).map(bare);
  }

  async countOfTenant(tenantId: string): Promise<number> {
    const row = await this.db
      .selectFrom('availability_groups')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async countImages(groupId: string): Promise<number> {
    const row = await this.db
      .selectFrom('availability_group_images')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('group_id', '=', groupId)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  /** The workers a tenant's bunkers were placed on since `since` (ended ones count): its group's workers. */
  async workersOfTenant(tenantId: string, since: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('bunkers')
      .select('worker_id')
      .where('tenant_id', '=', tenantId)
      .where('created_at', '>=', since)
      .where('worker_id', 'is not', null)
      .distinct()
      .execute();
    return rows.flatMap((r) => (r.worker_id ? [r.worker_id] : [])).sort();
  }

  async members(groupId: string): Promise<{ workers: string[]; images: string[] }> {
    const [workers, images] = await Promise.all([
      this.db.selectFrom('availability_group_workers').select('worker_id').where('group_id', '=', groupId).orderBy('worker_id').execute(),
      this.db.selectFrom('availability_group_images').select('image_id').where('group_id', '=', groupId).orderBy('image_id').execute(),
    ]);
    return { workers: workers.map((w) => w.worker_id), images: images.map((i) => i.image_id) };
  }

  async delete(id: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom('availability_group_workers').where('group_id', '=', id).execute();
      await trx.deleteFrom('availability_group_images').where('group_id', '=', id).execute();
      await trx.deleteFrom('availability_groups').where('id', '=', id).execute();
    });
  }

  /** Idempotent: adding a member twice is one membership. */
  async addWorker(groupId: string, workerId: string): Promise<void> {
    try {
      await this.db.insertInto('availability_group_workers').values({ group_id: groupId, worker_id: workerId }).execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
  }

  async removeWorker(groupId: string, workerId: string): Promise<boolean> {
    const res = await this.db
      .deleteFrom('availability_group_workers')
      .where('group_id', '=', groupId)
      .where('worker_id', '=', workerId)
      .executeTakeFirst();
    return Number(res.numDeletedRows) === 1;
  }

  async addImage(groupId: string, imageId: string): Promise<void> {
    try {
      await this.db.insertInto('availability_group_images').values({ group_id: groupId, image_id: imageId }).execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
  }

  async removeImage(groupId: string, imageId: string): Promise<boolean> {
    const res = await this.db
      .deleteFrom('availability_group_images')
      .where('group_id', '=', groupId)
      .where('image_id', '=', imageId)
      .executeTakeFirst();
    return Number(res.numDeletedRows) === 1;
  }

  /**
   * The ready images (by sha256) a worker must keep warm: those of every platform group it is a
   * member of, and of every tenant group whose tenant had a bunker placed on it since `since`.
   */
  async imagesToWarm(workerId: string, since: string): Promise<string[]> {
    const member = this.db
      .selectFrom('availability_group_workers as gw')
      .innerJoin('availability_group_images as gi', 'gi.group_id', 'gw.group_id')
      .innerJoin('images as i', 'i.id', 'gi.image_id')
      .select('i.sha256')
      .where('gw.worker_id', '=', workerId)
      .where('i.state', '=', 'ready')
      .where('i.sha256', 'is not', null);
    const tenant = this.db
      .selectFrom('availability_groups as g')
      .innerJoin('availability_group_images as gi', 'gi.group_id', 'g.id')
      .innerJoin('images as i', 'i.id', 'gi.image_id')
      .select('i.sha256')
      .where('g.tenant_id', 'is not', null)
      .where('i.state', '=', 'ready')
      .where('i.sha256', 'is not', null)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('bunkers as b')
            .select('b.id')
            .whereRef('b.tenant_id', '=', 'g.tenant_id')
            .where('b.worker_id', '=', workerId)
            .where('b.created_at', '>=', since),
        ),
      );
    const rows = await member.union(tenant).execute();
    return [...new Set(rows.flatMap((r) => (r.sha256 ? [r.sha256] : [])))];
  }

  /**
   * Whether a platform group keeps the image warm (then `lazy_pull: false` means holders only).
   * A tenant group only warms: its tenant's bunkers are placed as if it did not exist.
   */
  async isWarmed(imageId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('availability_group_images as gi')
      .innerJoin('availability_groups as g', 'g.id', 'gi.group_id')
      .select('gi.image_id')
      .where('gi.image_id', '=', imageId)
      .where('g.tenant_id', 'is', null)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Workers that must hold an image: members of the platform groups it is in, and the workers of the tenant groups it is in. */
  async workersWarming(imageId: string, since: string): Promise<string[]> {
    const members = this.db
      .selectFrom('availability_group_images as gi')
      .innerJoin('availability_group_workers as gw', 'gw.group_id', 'gi.group_id')
      .select('gw.worker_id')
      .where('gi.image_id', '=', imageId);
    const tenants = this.db
      .selectFrom('availability_group_images as gi')
      .innerJoin('availability_groups as g', 'g.id', 'gi.group_id')
      .innerJoin('bunkers as b', 'b.tenant_id', 'g.tenant_id')
      .select((eb) => eb.ref('b.worker_id').$notNull().as('worker_id'))
      .where('gi.image_id', '=', imageId)
      .where('b.created_at', '>=', since)
      .where('b.worker_id', 'is not', null);
    const rows = await members.union(tenants).execute();
    return [...new Set(rows.flatMap((r) => (r.worker_id ? [r.worker_id] : [])))];
  }
}
