import type { HttpTransport } from './HttpTransport.js';
import type { AvailabilityGroup } from './types.js';

const BASE = '/v1/modules/scaibunker/availability-groups';

/**
 * Availability groups: workers that keep a set of images cached and fetch them from each other.
 * Adding an image or a worker starts the fetches; `get` shows each member's copy (`ready`,
 * `warming`, `failed`, `missing`). Platform groups are for platform admins; tenant admins create
 * their tenant's groups, which warm the tenant's images on the workers its bunkers use.
 */
export class AvailabilityGroupsApi {
  constructor(private readonly transport: HttpTransport) {}

  /** `tenantId`: a tenant group (a tenant admin's group is always its own tenant's; a platform admin's without one is a platform group). */
  create(name: string, opts: { tenantId?: string } = {}): Promise<AvailabilityGroup> {
    return this.transport.json('post', BASE, { body: { name, ...(opts.tenantId ? { tenant_id: opts.tenantId } : {}) } });
  }

  /** Platform admins: every group, or one tenant's (`tenantId`); tenant admins: their tenant's. */
  async list(opts: { tenantId?: string } = {}): Promise<AvailabilityGroup[]> {
    return (await this.transport.json('get', BASE, { query: opts.tenantId ? { tenant_id: opts.tenantId } : {} })).items;
  }

  get(groupId: string): Promise<AvailabilityGroup> {
    return this.transport.json('get', `${BASE}/{id}`, { path: { id: groupId } });
  }

  async delete(groupId: string): Promise<void> {
    await this.transport.json('delete', `${BASE}/{id}`, { path: { id: groupId } });
  }

  addWorker(groupId: string, workerId: string): Promise<AvailabilityGroup> {
    return this.transport.json('post', `${BASE}/{id}/workers`, { path: { id: groupId }, body: { worker_id: workerId } });
  }

  removeWorker(groupId: string, workerId: string): Promise<AvailabilityGroup> {
    return this.transport.json('delete', `${BASE}/{id}/workers/{worker_id}`, { path: { id: groupId, worker_id: workerId } });
  }

  addImage(groupId: string, imageId: string): Promise<AvailabilityGroup> {
    return this.transport.json('post', `${BASE}/{id}/images`, { path: { id: groupId }, body: { image_id: imageId } });
  }

  removeImage(groupId: string, imageId: string): Promise<AvailabilityGroup> {
    return this.transport.json('delete', `${BASE}/{id}/images/{image_id}`, { path: { id: groupId, image_id: imageId } });
  }
}
