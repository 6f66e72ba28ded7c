import { ApiError, type BunkerState, type schemas, TERMINAL_STATES } from '@scaibunker/core';
import type { Static } from '@sinclair/typebox';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { ControllerConfig } from '../config.js';
import type { Store } from '../store/Store.js';
import type { WorkerRow } from '../store/schema.js';

type Worker = Static<typeof schemas.Worker>;

/** Worker registration by heartbeat, admin drain/resume, and the offline monitor. */
export class WorkerService {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly config: ControllerConfig,
  ) {}

  async heartbeat(hb: schemas.HeartbeatBody): Promise<{ ok: boolean; heartbeat_interval_s: number; unknown_bunkers: string[] }> {
    const now = new Date();
    await this.store.workers.upsertFromHeartbeat({
      id: hb.worker_id,
      name: hb.name,
      url: hb.url,
      state: 'online',
      isolations: JSON.stringify(hb.isolations),
      network_profiles: JSON.stringify(hb.network_profiles ?? ['isolated']),
      capacity_cpu_millicores: hb.capacity.cpu_millicores,
      capacity_memory_mb: hb.capacity.memory_mb,
      capacity_disk_mb: hb.capacity.disk_mb,
      cached_images: JSON.stringify(hb.cached_images),
      last_heartbeat_at: now.toISOString(),
      created_at: now.toISOString(),
    });
    // What the worker runs that we don't consider alive on it: it must destroy those.
    const reported = new Map(hb.bunkers.map((b) => [b.id, b.status]));
    const known = new Map((await this.store.bunkers.getByIds([...reported.keys()])).map((r) => [r.id, r]));
    const unknown = [...reported.keys()].filter((id) => {
      const row = known.get(id);
      return !row || row.worker_id !== hb.worker_id || TERMINAL_STATES.has(row.state as BunkerState);
    });
    // What we think runs there but the worker lost (or whose agent died): failed.
    const graceMs = this.config.heartbeatIntervalMs;
    for (const row of await this.store.bunkers.listActiveOnWorker(hb.worker_id)) {
      const status = reported.get(row.id);
      if (status === 'stopped') await this.bunkers.fail(row.id, 'crashed: the bunker stopped on its worker');
      else if (
        !status &&
        (row.state === 'running' || row.state === 'paused') &&
        row.started_at &&
        now.getTime() - Date.parse(row.started_at) > graceMs
      ) {
        await this.bunkers.fail(row.id, 'worker_lost: the worker no longer has this bunker');
      }
    }
    return { ok: true, heartbeat_interval_s: this.config.heartbeatIntervalMs / 1000, unknown_bunkers: unknown };
  }

  async list(): Promise<Worker[]> {
    const used = await this.store.bunkers.allocationsByWorker();
    return (await this.store.workers.list()).map((w) => this.toApi(w, used.get(w.id)));
  }

  async setDraining(id: string, draining: boolean): Promise<Worker> {
    const row = await this.store.workers.get(id);
    if (!row) throw new ApiError('WORKER_NOT_FOUND', `no worker ${id}`);
    if (row.state === 'offline' && !draining) throw new ApiError('WORKER_UNAVAILABLE', `worker ${id} is offline; it resumes by heartbeat`);
    await this.store.workers.setState(id, draining ? 'draining' : 'online');
    const used = await this.store.bunkers.allocationsByWorker();
    return this.toApi({ ...row, state: draining ? 'draining' : 'online' }, used.get(id));
  }

  /** Marks workers offline after `missedHeartbeats` intervals; their bunkers fail with worker_lost. */
  async monitor(): Promise<string[]> {
    const cutoff = new Date(Date.now() - this.config.missedHeartbeats * this.config.heartbeatIntervalMs).toISOString();
    const offline = await this.store.workers.markStaleOffline(cutoff);
    for (const workerId of offline) {
      for (const row of await this.store.bunkers.listActiveOnWorker(workerId)) {
        await this.bunkers.fail(row.id, 'worker_lost: no heartbeat');
      }
    }
    return offline;
  }

  private toApi(w: WorkerRow, used?: { cpu: number; memory: number; disk: number; count: number }): Worker {
    return {
      id: w.id,
      name: w.name,
      state: w.state,
      isolations: JSON.parse(w.isolations),
      network_profiles: JSON.parse(w.network_profiles),
      capacity: { cpu_millicores: w.capacity_cpu_millicores, memory_mb: w.capacity_memory_mb, disk_mb: w.capacity_disk_mb },
      allocated: { cpu_millicores: used?.cpu ?? 0, memory_mb: used?.memory ?? 0, disk_mb: used?.disk ?? 0 },
      bunker_count: used?.count ?? 0,
      last_heartbeat_at: w.last_heartbeat_at,
    };
  }
}
