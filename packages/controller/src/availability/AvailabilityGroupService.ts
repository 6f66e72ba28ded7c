import { ApiError, newId, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import { type ImageWarming, tenantWorkersSince } from '../images/ImageWarming.js';
import { isPlatformAdmin, resolveTenant } from '../quotas/access.js';
import type { Store } from '../store/Store.js';
import type { AvailabilityGroupRow } from '../store/schema.js';
import { recordAudit } from '../tenants/audit.js';

/** How many groups a tenant may have, and how many images a tenant group may hold. */
export const TENANT_GROUP_LIMIT = 10;
export const TENANT_GROUP_IMAGE_LIMIT = 20;

/**
 * Availability groups: workers that keep a set of images cached, and share them with each other
 * peer to peer. Adding an image warms it on every member; adding a worker warms every image of
 * the group on it.
 *
 * Platform groups (platform admins) have members a platform admin chose. A tenant group (its
 * tenant's admins, or platform admins) holds images that tenant can use, and warms them on the
 * workers its bunkers were placed on in the last 7 days; it has no members of its own and does
 * not change placement. Another tenant's group, and a platform group, are
 * AVAILABILITY_GROUP_NOT_FOUND to a tenant admin.
 */
export class AvailabilityGroupService {
  constructor(
    private readonly store: Store,
    private readonly warming: ImageWarming,
  ) {}

  async create(principal: Principal, body: schemas.CreateAvailabilityGroupBody): Promise<schemas.AvailabilityGroup> {
    // Platform admins make platform groups unless they name a tenant; tenant admins only their own tenant's.
    const tenantId =
      isPlatformAdmin(principal) && body.tenant_id === undefined ? null : await resolveTenant(this.store, principal, body.tenant_id);
    if (tenantId !== null && (await this.store.availabilityGroups.countOfTenant(tenantId)) >= TENANT_GROUP_LIMIT) {
      throw new ApiError('AVAILABILITY_GROUP_LIMIT', `a tenant may have ${TENANT_GROUP_LIMIT} availability groups; delete one first`, {
        tenant_id: tenantId,
        limit: TENANT_GROUP_LIMIT,
      });
    }
    const row: AvailabilityGroupRow = { id: newId('ag'), name: body.name, tenant_id: tenantId, created_at: new Date().toISOString() };
    if (!(await this.store.availabilityGroups.insert(row))) {
      throw new ApiError('AVAILABILITY_GROUP_CONFLICT', `an availability group named ${body.name} exists`, { name: body.name });
    }
    await recordAudit(
      this.store,
      principal,
      tenantId,
      'availability_group.create',
      { type: 'availability_group', id: row.id },
      {
        name: body.name,
      },
    );
    return this.toApi(row);
  }

  /** Platform admins: every group, or one tenant's; tenant admins: their tenant's. */
  async list(principal: Principal, tenantId?: string): Promise<schemas.AvailabilityGroup[]> {
    const scope = isPlatformAdmin(principal) && tenantId === undefined ? undefined : await resolveTenant(this.store, principal, tenantId);
    const rows = await this.store.availabilityGroups.list(scope);
    return Promise.all(rows.map((r) => this.toApi(r)));
  }

  async get(principal: Principal, id: string): Promise<schemas.AvailabilityGroup> {
    return this.toApi(await this.mustGet(principal, id));
  }

  async delete(principal: Principal, id: string): Promise<void> {
    const row = await this.mustGet(principal, id);
    await this.store.availabilityGroups.delete(id);
    await recordAudit(this.store, principal, row.tenant_id ?? null, 'availability_group.delete', { type: 'availability_group', id }, {});
  }

  async addWorker(principal: Principal, id: string, workerId: string): Promise<schemas.AvailabilityGroup> {
    mustBePlatformGroup(await this.mustGet(principal, id));
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
    return this.toApi(await this.mustGet(principal, id));
  }

  async removeWorker(principal: Principal, id: string, workerId: string): Promise<schemas.AvailabilityGroup> {
    const row = await this.mustGet(principal, id);
    mustBePlatformGroup(row);
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
    return this.toApi(row);
  }

  /** A tenant group takes only images its tenant can use (its own, shared with it, platform) and at most 20. */
  async addImage(principal: Principal, id: string, imageId: string): Promise<schemas.AvailabilityGroup> {
    const row = await this.mustGet(principal, id);
    const tenantId = row.tenant_id ?? null;
    const image = tenantId ? await this.store.images.getVisible(tenantId, imageId) : await this.store.images.getById(imageId);
    if (!image) throw new ApiError('IMAGE_NOT_FOUND', `no image ${imageId}`, { image_id: imageId });
    if (tenantId) {
      const members = await this.store.availabilityGroups.members(id);
      if (!members.images.includes(imageId) && members.images.length >= TENANT_GROUP_IMAGE_LIMIT) {
        throw new ApiError('AVAILABILITY_GROUP_LIMIT', `a tenant group may hold ${TENANT_GROUP_IMAGE_LIMIT} images; remove one first`, {
          group_id: id,
          limit: TENANT_GROUP_IMAGE_LIMIT,
        });
      }
    }
    await this.store.availabilityGroups.addImage(id, imageId);
    await recordAudit(
      this.store,
      principal,
      tenantId,
      'availability_group.add_image',
      { type: 'availability_group', id },
      { image_id: imageId },
    );
    await this.warming.warmImage(imageId);
    return this.toApi(row);
  }

  async removeImage(principal: Principal, id: string, imageId: string): Promise<schemas.AvailabilityGroup> {
    const row = await this.mustGet(principal, id);
    if (!(await this.store.availabilityGroups.removeImage(id, imageId))) {
      throw new ApiError('IMAGE_NOT_FOUND', `image ${imageId} is not in group ${id}`, { image_id: imageId });
    }
    await recordAudit(
      this.store,
      principal,
      row.tenant_id ?? null,
      'availability_group.remove_image',
      { type: 'availability_group', id },
      { image_id: imageId },
    );
    return this.toApi(row);
  }

  /** The group if the caller may see it: any for platform admins, their own tenant's for tenant admins. */
  private async mustGet(principal: Principal, id: string): Promise<AvailabilityGroupRow> {
    const row = await this.store.availabilityGroups.get(id);
    const visible = row && (isPlatformAdmin(principal) || (row.tenant_id ?? null) === principal.tenantId);
    if (!row || !visible) throw new ApiError('AVAILABILITY_GROUP_NOT_FOUND', `no availability group ${id}`, { id });
    return row;
  }

  /** The group with, per image, which of its workers hold it (from the ledger). */
  private async toApi(row: AvailabilityGroupRow): Promise<schemas.AvailabilityGroup> {
    const id = row.id;
    const tenantId = row.tenant_id ?? null;
    const members = await this.store.availabilityGroups.members(id);
    if (tenantId) members.workers = await this.store.availabilityGroups.workersOfTenant(tenantId, tenantWorkersSince());
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
    return { id: row.id, name: row.name, tenant_id: tenantId, workers: members.workers, images, created_at: row.created_at };
  }
}

/** A tenant group's workers follow its tenant's bunkers; nobody adds or removes them by hand. */
function mustBePlatformGroup(row: AvailabilityGroupRow): void {
  if (row.tenant_id) {
    throw new ApiError(
      'VALIDATION_FAILED',
      `availability group ${row.id} is a tenant group: its workers are those its tenant's bunkers were placed on in the last 7 days`,
      { field: 'params/id' },
    );
  }
}
