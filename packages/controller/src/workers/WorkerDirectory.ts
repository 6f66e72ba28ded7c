import { ApiError } from '@scaibunker/core';
import { HttpWorkerClient, type WorkerApi } from '@scaibunker/worker';
import type { Store } from '../store/Store.js';

/**
 * How the controller reaches a worker by id: the in-process worker of `serve`, or an HTTP
 * client to a remote `scaibunker worker` (built from the URL it reports in heartbeats).
 */
export class WorkerDirectory {
  private readonly local = new Map<string, WorkerApi>();
  private readonly remote = new Map<string, { url: string; client: WorkerApi }>();

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
    const row = await this.store.workers.get(workerId);
    if (!row || !row.url || !this.workerToken) throw new ApiError('WORKER_UNAVAILABLE', `worker ${workerId} is not reachable`);
    const cached = this.remote.get(workerId);
    if (cached && cached.url === row.url) return cached.client;
    const client = new HttpWorkerClient(row.url, this.workerToken);
    this.remote.set(workerId, { url: row.url, client });
    return client;
  }
}
