import type { Kysely } from 'kysely';
import type { AvailabilityGroupRow, Database } from './schema.js';
import { isUniqueViolation } from './uniqueViolation.js';

/** Availability groups: sets of workers that keep a set of images warm. */
export class AvailabilityGroupStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** False when a group of that name exists. */
  async insert(row: AvailabilityGroupRow): Promise<boolean> {
    try {
      await this.db.insertInto('availability_groups').values(row).execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async get(id: string): Promise<AvailabilityGroupRow | undefined> {
    return this.db.selectFrom('availability_groups').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(): Promise<AvailabilityGroupRow[]> {
    return this.db.selectFrom('availability_groups').selectAll().orderBy('name').execute();
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

  /** The ready images (by sha256) of every group a worker belongs to: what it must keep warm. */
  async imagesToWarm(workerId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('availability_group_workers as gw')
      .innerJoin('availability_group_images as gi', 'gi.group_id', 'gw.group_id')
      .innerJoin('images as i', 'i.id', 'gi.image_id')
      .select('i.sha256')
      .where('gw.worker_id', '=', workerId)
      .where('i.state', '=', 'ready')
      .where('i.sha256', 'is not', null)
      .distinct()
      .execute();
    return rows.flatMap((r) => (r.sha256 ? [r.sha256] : []));
  }

  /** Whether any availability group keeps the image warm. */
  async isWarmed(imageId: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('availability_group_images')
      .select('image_id')
      .where('image_id', '=', imageId)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Workers (any group) that must hold an image: members of the groups it belongs to. */
  async workersWarming(imageId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('availability_group_images as gi')
      .innerJoin('availability_group_workers as gw', 'gw.group_id', 'gi.group_id')
      .select('gw.worker_id')
      .where('gi.image_id', '=', imageId)
      .distinct()
      .execute();
    return rows.map((r) => r.worker_id);
  }
}
