import type { HttpTransport } from './HttpTransport.js';
import type { Bridge } from './types.js';

const BASE = '/v1/modules/scaibunker/bridges';

/**
 * Transit bridges: layer-2 segments of the caller's tenant on one worker, which `transit`
 * bunkers attach interfaces to. Create and delete need `scaibunker:admin:tenant`; list and get
 * `scaibunker:read`.
 */
export class BridgesApi {
  constructor(private readonly transport: HttpTransport) {}

  /** Makes a bridge (on `workerId`, or the first online worker that can); answers once it is ready. */
  create(name: string, opts: { workerId?: string } = {}): Promise<Bridge> {
    return this.transport.json('post', BASE, { body: { name, ...(opts.workerId ? { worker_id: opts.workerId } : {}) } });
  }

  async list(): Promise<Bridge[]> {
    return (await this.transport.json('get', BASE, {})).items;
  }

  get(bridgeId: string): Promise<Bridge> {
    return this.transport.json('get', `${BASE}/{id}`, { path: { id: bridgeId } });
  }

  /** Removes the bridge; refused (ConflictError, BRIDGE_CONFLICT) while a bunker that has not ended is attached. */
  async delete(bridgeId: string): Promise<void> {
    await this.transport.json('delete', `${BASE}/{id}`, { path: { id: bridgeId } });
  }
}
