import { ApiError, type BunkerState, type schemas, TERMINAL_STATES } from '@scaibunker/core';
import type { Static } from '@sinclair/typebox';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { ControllerConfig } from '../config.js';
import type { Store } from '../store/Store.js';
import type { WorkerRow } from '../store/schema.js';
import type { Heartbeats } from './Heartbeats.js';

type Worker = Static<typeof schemas.Worker>;

/**
 * How often an unchanged worker's row is rewritten from its heartbeats. Between those writes a
 * heartbeat only reaches the Heartbeats store (Redis): the row's `last_heartbeat_at` is a coarse
 * copy, there for when that store was wiped.
 */
const ROW_REFRESH_MS = 30_000;

/** Worker registration by heartbeat, admin drain/resume, and the offline monitor. */
export class WorkerService {
  /** Per worker, what this controller last wrote to its row, and when. */
  private readonly rowWrites = new Map<string, { fingerprint: string; at: number }>();
  private cachedImagesListener: ((workerId: string, cached: readonly string[]) => Promise<void>) | undefined;

  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly config: ControllerConfig,
    private readonly heartbeats: Heartbeats,
  ) {}

  /**
   * Called with a worker's cached images whenever its row is rewritten (they changed, or every
   * 30 s): the image-cache ledger and availability-group warm-up hang off it.
   */
  onCachedImages(listener: (workerId: string, cached: readonly string[]) => Promise<void>): void {
    this.cachedImagesListener = listener;
  }

  async heartbeat(
    hb: schemas.HeartbeatBody,
  ): Promise<{ ok: boolean; heartbeat_interval_s: number; unknown_bunkers: string[]; unknown_bridges: string[] }> {
    const now = new Date();
    // Without Redis the row's copy of the heartbeat is all the monitor will have: keep it fresh.
    const recorded = await this.heartbeats.record(hb.worker_id, now.getTime()).then(
      () => true,
      (err: unknown) => {
        if (err instanceof ApiError && err.code === 'LIVE_STATE_UNAVAILABLE') return false;
        throw err;
      },
    );
    await this.writeRow(hb, now, !recorded);
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
    // Bridges it has that no row puts there (deleted while it was unreachable): it removes them.
    const reportedBridges = hb.bridges ?? [];
    const bridgeRows = new Map((await this.store.bridges.getByIds(reportedBridges)).map((b) => [b.id, b]));
    const unknownBridges = reportedBridges.filter((id) => bridgeRows.get(id)?.worker_id !== hb.worker_id);
    return {
      ok: true,
      heartbeat_interval_s: this.config.heartbeatIntervalMs / 1000,
      unknown_bunkers: unknown,
      unknown_bridges: unknownBridges,
    };
  }

  /** Registers the worker, or refreshes its row when what it reports changed or the row's copy of its heartbeat is old. */
  private async writeRow(hb: schemas.HeartbeatBody, now: Date, force = false): Promise<void> {
    const fingerprint = JSON.stringify([
      hb.name,
      hb.url,
      hb.isolations,
      hb.network_profiles,
      hb.capacity,
      hb.cached_images,
      hb.bridges ?? [],
    ]);
    const last = this.rowWrites.get(hb.worker_id);
    if (!force && last && last.fingerprint === fingerprint && now.getTime() - last.at < ROW_REFRESH_MS) return;
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
      bridges: JSON.stringify(hb.bridges ?? []),
      last_heartbeat_at: now.toISOString(),
      created_at: now.toISOString(),
    });
    this.rowWrites.set(hb.worker_id, { fingerprint, at: now.getTime() });
    // The ledger is a convenience (peers, group status): a failure there never fails the heartbeat.
    await this.cachedImagesListener?.(hb.worker_id, hb.cached_images).catch((err: Error) =>
      console.error(`[images] ledger for ${hb.worker_id} not reconciled: ${err.message}`),
    );
  }

  async list(): Promise<Worker[]> {
    const [used, seen] = await Promise.all([this.store.bunkers.allocationsByWorker(), this.heartbeats.lastSeen()]);
    return (await this.store.workers.list()).map((w) => this.toApi(withLastSeen(w, seen), used.get(w.id)));
  }

  async setDraining(id: string, draining: boolean): Promise<Worker> {
    const row = await this.store.workers.get(id);
    if (!row) throw new ApiError('WORKER_NOT_FOUND', `no worker ${id}`);
    if (row.state === 'offline' && !draining) throw new ApiError('WORKER_UNAVAILABLE', `worker ${id} is offline; it resumes by heartbeat`);
    await this.store.workers.setState(id, draining ? 'draining' : 'online');
    const used = await this.store.bunkers.allocationsByWorker();
    return this.toApi({ ...row, state: draining ? 'draining' : 'online' }, used.get(id));
  }

  /**
   * Marks workers offline after `missedHeartbeats` intervals; their bunkers fail with worker_lost.
   * A worker the Heartbeats store has never seen (it was wiped) is judged by its row's coarse
   * copy, which may lag by ROW_REFRESH_MS: it gets that much longer.
   */
  async monitor(): Promise<string[]> {
    const seen = await this.heartbeats.lastSeen();
    const limitMs = this.config.missedHeartbeats * this.config.heartbeatIntervalMs;
    const now = Date.now();
    const offline: string[] = [];
    for (const w of await this.store.workers.list()) {
      if (w.state === 'offline') continue;
      const live = seen.get(w.id);
      const last = Math.max(live ?? 0, w.last_heartbeat_at ? Date.parse(w.last_heartbeat_at) : 0);
      if (now - last <= limitMs + (live === undefined ? ROW_REFRESH_MS : 0)) continue;
      if (!(await this.store.workers.markOffline(w.id, w.last_heartbeat_at))) continue;
      offline.push(w.id);
      for (const row of await this.store.bunkers.listActiveOnWorker(w.id)) {
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

/** The row with its heartbeat time from the Heartbeats store when that is newer. */
function withLastSeen(w: WorkerRow, seen: Map<string, number>): WorkerRow {
  const live = seen.get(w.id);
  return live !== undefined && live > (w.last_heartbeat_at ? Date.parse(w.last_heartbeat_at) : 0)
    ? { ...w, last_heartbeat_at: new Date(live).toISOString() }
    : w;
}
