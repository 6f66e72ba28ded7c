import type { Store } from '../store/Store.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';

/** A warm-up that failed, or was lost with its controller, is retried after this long. */
const RETRY_MS = 5 * 60_000;

/** A tenant group's workers: those its tenant's bunkers were placed on in the last 7 days. */
export const TENANT_GROUP_WINDOW_MS = 7 * 24 * 3_600_000;

/** Since when a bunker's placement makes its worker one of its tenant's (for tenant groups). */
export function tenantWorkersSince(now = Date.now()): string {
  return new Date(now - TENANT_GROUP_WINDOW_MS).toISOString();
}

/**
 * Keeps the `image_cache` ledger true to what workers report, and the images of each
 * availability group cached on every worker of the group (a platform group's members; a tenant
 * group's: the workers its tenant's bunkers were placed on lately): a worker missing one is asked to
 * fetch it (from a peer, else the storage proxy). One path serves every trigger — an image or
 * a worker joins a group, a worker's cache was wiped — because each ends in `warmWorker`.
 */
export class ImageWarming {
  constructor(
    private readonly store: Store,
    private readonly directory: WorkerDirectory,
    private readonly log: (message: string) => void = (m) => console.error(`[images] ${m}`),
    /** Each warm-up's outcome: where the worker got the image, or `error` (`scaibunker_image_warm_fetches_total`). */
    private readonly observe: (source: 'cache' | 'peer' | 'proxy' | 'error') => void = () => undefined,
  ) {}

  /** A worker's heartbeat reported its cache: heal the ledger both ways, then warm what is missing. */
  async onCachedImages(workerId: string, cached: readonly string[]): Promise<void> {
    await this.store.imageCache.reconcile(workerId, cached, new Date().toISOString());
    await this.warmWorker(workerId, cached);
  }

  /** Asks a worker for every group image it lacks; returns the sha256s it was asked for. */
  async warmWorker(workerId: string, cached?: readonly string[]): Promise<string[]> {
    const wanted = await this.store.availabilityGroups.imagesToWarm(workerId, tenantWorkersSince());
    if (wanted.length === 0) return [];
    const worker = await this.store.workers.get(workerId);
    if (!worker || worker.state === 'offline') return [];
    const have = new Set(cached ?? (JSON.parse(worker.cached_images) as string[]));
    const asked: string[] = [];
    for (const sha of wanted) {
      if (have.has(sha)) continue;
      const now = Date.now();
      if (!(await this.store.imageCache.startWarming(workerId, sha, new Date(now).toISOString(), new Date(now - RETRY_MS).toISOString())))
        continue;
      asked.push(sha);
      void this.fetchOn(workerId, sha);
    }
    return asked;
  }

  /** Warms an image on every worker of the groups it belongs to (it was just added to one). */
  async warmImage(imageId: string): Promise<void> {
    for (const workerId of await this.store.availabilityGroups.workersWarming(imageId, tenantWorkersSince()))
      await this.warmWorker(workerId);
  }

  private async fetchOn(workerId: string, sha: string): Promise<void> {
    let error: string | undefined;
    try {
      const api = await this.directory.get(workerId);
      const r = await api.ensureImage(sha);
      this.observe(r.source);
      this.log(`worker ${workerId} warmed ${sha.slice(0, 12)} from ${r.source} (${r.bytes} bytes)`);
    } catch (err) {
      error = (err as Error).message ?? String(err);
      this.observe('error');
      this.log(`worker ${workerId} could not warm ${sha.slice(0, 12)}: ${error}`);
    }
    try {
      await this.store.imageCache.finishWarming(workerId, sha, error ? { error } : {}, new Date().toISOString());
    } catch (err) {
      this.log(`ledger not updated for ${workerId}/${sha.slice(0, 12)}: ${(err as Error).message}`);
    }
  }
}
