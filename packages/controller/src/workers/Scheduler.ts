import { ApiError } from '@scaibunker/core';
import type { Store } from '../store/Store.js';
import type { WorkerRow } from '../store/schema.js';

export interface PlacementRequest {
  isolation: string;
  networkProfile: string;
  imageSha256: string;
  /** The image may be fetched at spawn: workers without it qualify, after those with it. */
  lazyPull?: boolean;
  cpuMillicores: number;
  memoryMb: number;
  diskMb: number;
  gpuCount: number;
  /** A `transit` bunker's bridges: it goes only to the worker that has every one of them. */
  bridgeIds?: string[];
}

/**
 * Places a bunker on the online worker with the most free memory that supports its isolation
 * and network profile, holds its image (unless the image is `lazy_pull`; then holders come
 * first) and has room for its CPU, memory, disk and GPUs (no worker has GPUs yet).
 *
 * Choosing reads every worker's allocations from the rows and committing writes one, so the two
 * must not interleave with another placement, or two creates could both take the last slot of a
 * worker. Placements are serialized in this process (a promise chain, so at most one waits on
 * the database per controller) and, on PostgreSQL, across controllers by the `placement`
 * advisory lock (`LockStore`), held from before the choice until the commit is written.
 */
export class Scheduler {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly store: Store) {}

  /** Runs `commit(worker)` (which must record the allocation) under the placement lock. */
  async place<T>(req: PlacementRequest, commit: (worker: WorkerRow) => Promise<T>): Promise<T> {
    const run = this.chain.then(() => this.store.locks.with('placement', async () => commit(await this.choose(req))));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async choose(req: PlacementRequest): Promise<WorkerRow> {
    const all = await this.store.workers.list();
    const workers = all.filter((w) => w.state === 'online');
    if (workers.length === 0) throw new ApiError('WORKER_UNAVAILABLE', 'no worker is online');
    const used = await this.store.bunkers.allocationsByWorker();
    const reasons: string[] = [];
    // A transit bunker's bridges pin it: each lives on one worker (its row), which must still
    // report it. Read under the placement lock, so a bridge deleted meanwhile is seen gone.
    let bridgeWorker: string | undefined;
    if (req.bridgeIds?.length) {
      const rows = await this.store.bridges.getByIds(req.bridgeIds);
      const ready = rows.filter((b) => b.state === 'ready');
      if (ready.length !== req.bridgeIds.length) throw new ApiError('BRIDGE_NOT_FOUND', 'a bridge of this bunker no longer exists');
      const owners = new Set(ready.map((b) => b.worker_id));
      if (owners.size > 1)
        throw new ApiError('NO_SUITABLE_WORKER', "the bunker's bridges are on different workers", {
          reasons: ready.map((b) => `${b.id}: on worker ${b.worker_id}`),
        });
      bridgeWorker = [...owners][0];
      const owner = all.find((w) => w.id === bridgeWorker);
      if (owner?.state !== 'online')
        reasons.push(`${owner?.name ?? bridgeWorker}: holds the bunker's bridges but is ${owner?.state ?? 'gone'}`);
    }
    let best: { worker: WorkerRow; freeMemory: number; cached: boolean } | undefined;
    for (const w of workers) {
      const u = used.get(w.id) ?? { cpu: 0, memory: 0, disk: 0, count: 0 };
      const free = {
        cpu: w.capacity_cpu_millicores - u.cpu,
        memory: w.capacity_memory_mb - u.memory,
        disk: w.capacity_disk_mb - u.disk,
      };
      const missingBridges = req.bridgeIds?.filter((id) => !(JSON.parse(w.bridges ?? '[]') as string[]).includes(id)) ?? [];
      if (bridgeWorker !== undefined && w.id !== bridgeWorker) reasons.push(`${w.name}: not the worker of the bunker's bridges`);
      else if (missingBridges.length > 0) reasons.push(`${w.name}: does not report bridge ${missingBridges.join(', ')}`);
      else if (!(JSON.parse(w.isolations) as string[]).includes(req.isolation)) reasons.push(`${w.name}: no ${req.isolation} isolation`);
      else if (!(JSON.parse(w.network_profiles) as string[]).includes(req.networkProfile))
        reasons.push(`${w.name}: no ${req.networkProfile} network profile`);
      // Workers report no GPUs yet: a bunker that needs one fits nowhere.
      else if (req.gpuCount > 0) reasons.push(`${w.name}: 0 free gpus`);
      else if (!req.lazyPull && !(JSON.parse(w.cached_images) as string[]).includes(req.imageSha256))
        reasons.push(`${w.name}: image not cached`);
      else if (free.cpu < req.cpuMillicores) reasons.push(`${w.name}: ${free.cpu} free cpu millicores`);
      else if (free.memory < req.memoryMb) reasons.push(`${w.name}: ${free.memory} MB free memory`);
      else if (free.disk < req.diskMb) reasons.push(`${w.name}: ${free.disk} MB free disk`);
      else {
        const cached = (JSON.parse(w.cached_images) as string[]).includes(req.imageSha256);
        if (!best || (cached && !best.cached) || (cached === best.cached && free.memory > best.freeMemory)) {
          best = { worker: w, freeMemory: free.memory, cached };
        }
      }
    }
    if (!best) throw new ApiError('NO_SUITABLE_WORKER', 'no online worker can take this bunker', { reasons });
    return best.worker;
  }
}
