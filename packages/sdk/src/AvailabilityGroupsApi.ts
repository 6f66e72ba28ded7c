import type { HttpTransport } from './HttpTransport.js';
import type { AvailabilityGroup } from './types.js';

const BASE = '/v1/modules/scaibunker/availability-groups';

/**
 * Availability groups (platform admins): workers that keep a set of images cached and fetch
 * them from each other. Adding an image or a worker starts the fetches; `get` shows each
 * member's copy (`ready`, `warming`, `failed`, `missing`).
 */
export class AvailabilityGroupsApi {
  constructor(private readonly transport: HttpTransport) {}

  create(name: string): Promise<AvailabilityGroup> {
    return this.transport.json('post', BASE, { body: { name } });
  }

  async list(): Promise<AvailabilityGroup[]> {
    return (await this.transport.json('get', BASE, {})).items;
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
