import { ApiError } from '@scaibunker/core';
import type { Store } from '../store/Store.js';
import type { WorkerRow } from '../store/schema.js';

export interface PlacementRequest {
  isolation: string;
  networkProfile: string;
  imageSha256: string;
  cpuMillicores: number;
  memoryMb: number;
  diskMb: number;
  gpuCount: number;
}

/**
 * Places a bunker on the online worker with the most free memory that supports its isolation
 * and network profile, holds its image and has room for its CPU, memory, disk and GPUs (no worker has GPUs yet).
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
    const workers = (await this.store.workers.list()).filter((w) => w.state === 'online');
    if (workers.length === 0) throw new ApiError('WORKER_UNAVAILABLE', 'no worker is online');
    const used = await this.store.bunkers.allocationsByWorker();
    const reasons: string[] = [];
    let best: { worker: WorkerRow; freeMemory: number } | undefined;
    for (const w of workers) {
      const u = used.get(w.id) ?? { cpu: 0, memory: 0, disk: 0, count: 0 };
      const free = {
        cpu: w.capacity_cpu_millicores - u.cpu,
        memory: w.capacity_memory_mb - u.memory,
        disk: w.capacity_disk_mb - u.disk,
      };
      if (!(JSON.parse(w.isolations) as string[]).includes(req.isolation)) reasons.push(`${w.name}: no ${req.isolation} isolation`);
      else if (!(JSON.parse(w.network_profiles) as string[]).includes(req.networkProfile))
        reasons.push(`${w.name}: no ${req.networkProfile} network profile`);
      // Workers report no GPUs yet: a bunker that needs one fits nowhere.
      else if (req.gpuCount > 0) reasons.push(`${w.name}: 0 free gpus`);
      else if (!(JSON.parse(w.cached_images) as string[]).includes(req.imageSha256)) reasons.push(`${w.name}: image not cached`);
      else if (free.cpu < req.cpuMillicores) reasons.push(`${w.name}: ${free.cpu} free cpu millicores`);
      else if (free.memory < req.memoryMb) reasons.push(`${w.name}: ${free.memory} MB free memory`);
      else if (free.disk < req.diskMb) reasons.push(`${w.name}: ${free.disk} MB free disk`);
      else if (!best || free.memory > best.freeMemory) best = { worker: w, freeMemory: free.memory };
    }
    if (!best) throw new ApiError('NO_SUITABLE_WORKER', 'no online worker can take this bunker', { reasons });
    return best.worker;
  }
}
