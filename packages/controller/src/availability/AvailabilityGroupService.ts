import { ApiError, newId, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { ImageWarming } from '../images/ImageWarming.js';
import type { Store } from '../store/Store.js';
import { recordAudit } from '../tenants/audit.js';

/**
 * Availability groups (platform admins): workers that keep a set of images cached, and share
 * them with each other peer to peer. Adding an image warms it on every member; adding a worker
 * warms every image of the group on it.
 */
export class AvailabilityGroupService {
  constructor(
    private readonly store: Store,
    private readonly warming: ImageWarming,
  ) {}

  async create(principal: Principal, name: string): Promise<schemas.AvailabilityGroup> {
    const row = { id: newId('ag'), name, created_at: new Date().toISOString() };
    if (!(await this.store.availabilityGroups.insert(row))) {
      throw new ApiError('AVAILABILITY_GROUP_CONFLICT', `an availability group named ${name} exists`, { name });
    }
    await recordAudit(this.store, principal, null, 'availability_group.create', { type: 'availability_group', id: row.id }, { name });
    return this.toApi(row.id);
  }

  async list(): Promise<schemas.AvailabilityGroup[]> {
    const rows = await this.store.availabilityGroups.list();
    return Promise.all(rows.map((r) => this.toApi(r.id)));
  }

  async get(id: string): Promise<schemas.AvailabilityGroup> {
    return this.toApi(id);
  }

  async delete(principal: Principal, id: string): Promise<void> {
    await this.mustGet(id);
    await this.store.availabilityGroups.delete(id);
    await recordAudit(this.store, principal, null, 'availability_group.delete', { type: 'availability_group', id }, {});
  }

  async addWorker(principal: Principal, id: string, workerId: string): Promise<schemas.AvailabilityGroup> {
    await this.mustGet(id);
    if (!(await this.store.workers.get(workerId))) throw new ApiError('WORKER_NOT_FOUND', `no worker ${workerId}`, { worker_id: workerId });
    await this.store.availabilityGroups.addWorker(id, workerId);
    await recordAudit(
      this.store,
      principal,
      null,
      'availability_group.add_worker',
      { type: 'availability_group', id },
      { worker_id: workerId },
    );
    await this.warming.warmWorker(workerId);
    return this.toApi(id);
  }

  async removeWorker(principal: Principal, id: string, workerId: string): Promise<schemas.AvailabilityGroup> {
    await this.mustGet(id);
    if (!(await this.store.availabilityGroups.removeWorker(id, workerId))) {
      throw new ApiError('WORKER_NOT_FOUND', `worker ${workerId} is not in group ${id}`, { worker_id: workerId });
    }
    await recordAudit(
      this.store,
      principal,
      null,
      'availability_group.remove_worker',
      { type: 'availability_group', id },
      { worker_id: workerId },
    );
    return this.toApi(id);
  }

  /** Platform and partner images only: a group is shared by every tenant whose bunkers land on it. */
  async addImage(principal: Principal, id: string, imageId: string): Promise<schemas.AvailabilityGroup> {
    await this.mustGet(id);
    const image = await this.store.images.getById(imageId);
    if (!image) throw new ApiError('IMAGE_NOT_FOUND', `no image ${imageId}`, { image_id: imageId });
    await this.store.availabilityGroups.addImage(id, imageId);
    await recordAudit(
      this.store,
      principal,
      null,
      'availability_group.add_image',
      { type: 'availability_group', id },
      { image_id: imageId },
    );
    await this.warming.warmImage(imageId);
    return this.toApi(id);
  }

  async removeImage(principal: Principal, id: string, imageId: string): Promise<schemas.AvailabilityGroup> {
    await this.mustGet(id);
    if (!(await this.store.availabilityGroups.removeImage(id, imageId))) {
      throw new ApiError('IMAGE_NOT_FOUND', `image ${imageId} is not in group ${id}`, { image_id: imageId });
    }
    await recordAudit(
      this.store,
      principal,
      null,
      'availability_group.remove_image',
      { type: 'availability_group', id },
      { image_id: imageId },
    );
    return this.toApi(id);
  }

  private async mustGet(id: string) {
    const row = await this.store.availabilityGroups.get(id);
    if (!row) throw new ApiError('AVAILABILITY_GROUP_NOT_FOUND', `no availability group ${id}`, { id });
    return row;
  }

  /** The group with, per image, which members hold it (from the ledger). */
  private async toApi(id: string): Promise<schemas.AvailabilityGroup> {
    const row = await this.mustGet(id);
    const members = await this.store.availabilityGroups.members(id);
    const images = [];
    for (const imageId of members.images) {
      const image = await this.store.images.getById(imageId);
      const ledger = image?.sha256 ? await this.store.imageCache.forImage(image.sha256) : [];
      const byWorker = new Map(ledger.map((l) => [l.worker_id, l]));
      images.push({
        id: imageId,
        name: image?.name ?? '',
        sha256: image?.sha256 ?? null,
        workers: members.workers.map((w) => {
          const l = byWorker.get(w);
          const state: 'ready' | 'warming' | 'failed' | 'missing' = l?.state ?? 'missing';
          return { worker_id: w, state, ...(l?.error ? { error: l.error } : {}) };
        }),
      });
    }
    return { id: row.id, name: row.name, workers: members.workers, images, created_at: row.created_at };
  }
}
