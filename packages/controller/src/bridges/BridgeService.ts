/**
 * Tenants' transit bridges: a layer-2 bridge made on one worker, which `transit` bunkers of the
 * same tenant attach interfaces to (and which pins them to that worker).
 */
import { ApiError, newId, type schemas, WorkerError } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';
import type { BridgeRow, WorkerRow } from '../store/schema.js';
import { recordAudit } from '../tenants/audit.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';

export function bridgeToApi(r: BridgeRow): schemas.Bridge {
  return { id: r.id, tenant_id: r.tenant_id, name: r.name, worker_id: r.worker_id, state: r.state, created_at: r.created_at };
}

function canMakeBridges(w: WorkerRow): boolean {
  return (JSON.parse(w.network_profiles) as string[]).includes('transit');
}

/**
 * Create is two-phase: the row is inserted `reserved` (which claims the name), the worker is
 * asked to make the bridge, and the row becomes `ready`; a worker that refuses or cannot be
 * reached gets the row deleted, so nothing half-made is left. Another tenant's bridge is
 * BRIDGE_NOT_FOUND, never a 403 that would confirm it exists.
 */
export class BridgeService {
  constructor(
    private readonly store: Store,
    private readonly workers: WorkerDirectory,
  ) {}

  private async mustGet(p: Principal, id: string): Promise<BridgeRow> {
    const row = await this.store.bridges.get(p.tenantId, id);
    if (!row) throw new ApiError('BRIDGE_NOT_FOUND', `no bridge ${id}`, { bridge_id: id });
    return row;
  }

  private async chooseWorker(workerId: string | undefined): Promise<WorkerRow> {
    if (workerId !== undefined) {
      const w = await this.store.workers.get(workerId);
      if (!w) throw new ApiError('WORKER_NOT_FOUND', `no worker ${workerId}`, { worker_id: workerId });
      if (w.state !== 'online') throw new ApiError('WORKER_UNAVAILABLE', `worker ${workerId} is ${w.state}`, { worker_id: workerId });
      if (!canMakeBridges(w))
        throw new ApiError('NO_SUITABLE_WORKER', `worker ${workerId} cannot make transit bridges`, {
          reasons: [`${w.name}: no transit network profile`],
        });
      return w;
    }
    const online = (await this.store.workers.list()).filter((w) => w.state === 'online');
    if (online.length === 0) throw new ApiError('WORKER_UNAVAILABLE', 'no worker is online');
    const able = online.find(canMakeBridges);
    if (!able)
      throw new ApiError('NO_SUITABLE_WORKER', 'no online worker can make transit bridges', {
        reasons: online.map((w) => `${w.name}: no transit network profile`),
      });
    return able;
  }

  async create(p: Principal, body: schemas.CreateBridgeBody): Promise<schemas.Bridge> {
    const worker = await this.chooseWorker(body.worker_id);
    const row: BridgeRow = {
      id: newId('br'),
      tenant_id: p.tenantId,
      name: body.name,
      worker_id: worker.id,
      state: 'reserved',
      created_at: new Date().toISOString(),
    };
    if (!(await this.store.bridges.insert(row)))
      throw new ApiError('BRIDGE_CONFLICT', `the tenant already has a bridge named ${body.name}`, { name: body.name });
    try {
      const api = await this.workers.get(worker.id);
      await api.createBridge({ bridgeId: row.id, tenantId: row.tenant_id });
    } catch (err) {
      await this.store.bridges.delete(row.id);
      // The worker may have made it before failing to answer: ask it to drop it (best effort;
      // otherwise its next heartbeat reports an unknown bridge, which it is told to remove).
      await this.workers
        .get(worker.id)
        .then((api) => api.deleteBridge(row.id))
        .catch(() => undefined);
      throw bridgeCreateError(err, worker.id);
    }
    const ready = (await this.store.bridges.markReady(row.id)) ?? { ...row, state: 'ready' };
    // Placeable at once, not only after the worker's next heartbeat lists it.
    await this.store.workers.addBridge(worker.id, row.id);
    await recordAudit(this.store, p, p.tenantId, 'bridge.create', { type: 'bridge', id: row.id }, { name: row.name, worker_id: worker.id });
    return bridgeToApi(ready);
  }

  /**
   * A create whose controller died between reserving the row and marking it ready leaves a
   * `reserved` row (which holds the name): the sweeper removes such rows older than `before` and
   * asks their worker, best effort, to drop the bridge.
   */
  async sweepReserved(before: string): Promise<string[]> {
    const removed: string[] = [];
    for (const row of await this.store.bridges.listReservedBefore(before)) {
      if (!(await this.store.bridges.delete(row.id))) continue;
      removed.push(row.id);
      await this.workers
        .get(row.worker_id)
        .then((api) => api.deleteBridge(row.id))
        .catch(() => undefined);
    }
    return removed;
  }

  async list(p: Principal): Promise<schemas.Bridge[]> {
    return (await this.store.bridges.list(p.tenantId)).map(bridgeToApi);
  }

  async get(p: Principal, id: string): Promise<schemas.Bridge> {
    return bridgeToApi(await this.mustGet(p, id));
  }

  /**
   * Refused (BRIDGE_CONFLICT) while a bunker that has not ended is attached. The check and the
   * row's removal run under the placement lock, so no create can be placed on the bridge in
   * between (placement re-reads the bridge rows). The worker is then told to remove it; if it
   * cannot be reached, its next heartbeat reports a bridge without a row and is told to drop it.
   */
  async remove(p: Principal, id: string): Promise<void> {
    const row = await this.mustGet(p, id);
    await this.store.locks.with('placement', async () => {
      const attached = await this.store.bridges.attachedBunkers(p.tenantId, id);
      if (attached.length > 0)
        throw new ApiError('BRIDGE_CONFLICT', `bridge ${id} has ${attached.length} attached bunker(s); terminate them first`, {
          bridge_id: id,
          bunker_ids: attached,
        });
      await this.store.bridges.delete(id);
    });
    await recordAudit(this.store, p, p.tenantId, 'bridge.delete', { type: 'bridge', id }, { name: row.name, worker_id: row.worker_id });
    try {
      await (await this.workers.get(row.worker_id)).deleteBridge(id);
    } catch {
      // Reconciled by heartbeat (unknown_bridges).
    }
  }
}

/** A worker's refusal is BRIDGE_REJECTED; not reaching it at all is WORKER_UNAVAILABLE. */
function bridgeCreateError(err: unknown, workerId: string): ApiError {
  const message = (err as Error)?.message ?? String(err);
  if (err instanceof ApiError && err.code === 'WORKER_UNAVAILABLE') return err;
  if (err instanceof WorkerError && !['WORKER_UNAVAILABLE', 'CHANNEL_CLOSED', 'IO_ERROR'].includes(err.code))
    return new ApiError('BRIDGE_REJECTED', `worker ${workerId} refused the bridge: ${message}`, {
      worker_id: workerId,
      worker_code: err.code,
    });
  if (err instanceof WorkerError)
    return new ApiError('WORKER_UNAVAILABLE', `worker ${workerId} is not reachable: ${message}`, { worker_id: workerId });
  return new ApiError('WORKER_UNAVAILABLE', `worker ${workerId} did not make the bridge: ${message}`, { worker_id: workerId });
}
