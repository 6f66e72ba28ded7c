import { ApiError, type WorkerApi } from '@scaibunker/core';
import { HttpWorkerClient } from '@scaibunker/core/worker-client';
import { isStoreUnavailable } from '../health/failures.js';
import type { Store } from '../store/Store.js';

/** How long a remote worker's address is used before its row is read again. */
const ROW_TTL_MS = 2000;

/**
 * How the controller reaches a worker by id: the in-process worker of `serve`, or an HTTP
 * client to a remote `scaibunker worker`, built from the URL in its row (so any controller
 * reaches any worker, whichever controller its heartbeats go to). The row is re-read at most
 * every 2 s per worker rather than on every exec; a worker that moved to a new URL gets a new
 * client (requests in flight on the old one finish there).
 */
export class WorkerDirectory {
  private readonly local = new Map<string, WorkerApi>();
  private readonly remote = new Map<string, { url: string; client: WorkerApi; checkedAt: number }>();

  constructor(
    private readonly store: Store,
    private readonly workerToken: string | undefined,
  ) {}

  registerLocal(workerId: string, api: WorkerApi): void {
    this.local.set(workerId, api);
  }

  async get(workerId: string): Promise<WorkerApi> {
    const local = this.local.get(workerId);
    if (local) return local;
    const cached = this.remote.get(workerId);
    const now = Date.now();
    if (cached && now - cached.checkedAt < ROW_TTL_MS) return cached.client;
    let row: Awaited<ReturnType<Store['workers']['get']>>;
    try {
      row = await this.store.workers.get(workerId);
    } catch (err) {
      // The database is down: the address we had is still the best guess (the worker refuses
      // what it does not run).
      if (cached && isStoreUnavailable(err)) return cached.client;
      throw err;
    }
    if (!row?.url || !this.workerToken) throw new ApiError('WORKER_UNAVAILABLE', `worker ${workerId} is not reachable`);
    if (cached && cached.url === row.url) {
      cached.checkedAt = now;
      return cached.client;
    }
    const client = new HttpWorkerClient(row.url, this.workerToken);
    this.remote.set(workerId, { url: row.url, client, checkedAt: now });
    return client;
  }
}
