import { ApiError, type BunkerState, type schemas, TERMINAL_STATES } from '@scaibunker/core';
import type { Static } from '@sinclair/typebox';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { ControllerConfig } from '../config.js';
import type { Store } from '../store/Store.js';
import type { WorkerRow } from '../store/schema.js';
import type { Heartbeats } from './Heartbeats.js';
import type { WorkerDirectory } from './WorkerDirectory.js';

type Worker = Static<typeof schemas.Worker>;

/**
 * How often an unchanged worker's row is rewritten from its heartbeats. Between those writes a
 * heartbeat only reaches the Heartbeats store (Redis): the row's `last_heartbeat_at` is a coarse
 * copy, there for when that store was wiped.
 */
const ROW_REFRESH_MS = 30_000;

/** What one monitor tick did (for --trace-jobs and tests). */
export interface MonitorResult {
  /** Workers it marked offline (unreachable: their bunkers keep their state). */
  offline: string[];
  /** Workers silent past `workerLostAfterMs` whose active bunkers it failed `worker_lost`. */
  lost: string[];
}

/** Worker registration by heartbeat, admin drain/resume, and the offline monitor. */
export class WorkerService {
  /** Per worker, what this controller last wrote to its row, and when. */
  private readonly rowWrites = new Map<string, { fingerprint: string; at: number }>();
  /** Lost workers whose bunkers this controller already failed, by the heartbeat they were lost after. */
  private readonly lostHandled = new Map<string, number>();
  private cachedImagesListener: ((workerId: string, cached: readonly string[]) => Promise<void>) | undefined;

  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly config: ControllerConfig,
    private readonly heartbeats: Heartbeats,
    /** Told when this controller moves a worker's row online or offline (its cached reachability). */
    private readonly directory?: Pick<WorkerDirectory, 'noteState'>,
    private readonly log: (msg: string) => void = (m) => console.error(m),
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
    if (!force && last && last.fingerprint === fingerprint && now.getTime() - last.at < ROW_REFRESH_MS) {
      // Unchanged report, but the row may have gone offline meanwhile (any controller's monitor):
      // a no-op statement unless it did, so an unreachable worker is back on its first heartbeat.
      if (await this.store.workers.markOnline(hb.worker_id, now.toISOString())) this.cameBack(hb.worker_id, now);
      return;
    }
    const previous = await this.store.workers.get(hb.worker_id);
    if (previous?.state === 'offline') this.cameBack(hb.worker_id, now, previous.last_heartbeat_at);
    const written = await this.store.workers.upsertFromHeartbeat({
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
    this.directory?.noteState(hb.worker_id, written.state, written.last_heartbeat_at);
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
   * A worker that misses `missedHeartbeats` intervals is marked `offline`: unreachable, not dead.
   * Its bunkers keep their state (calls for them answer WORKER_UNAVAILABLE at once) and a
   * heartbeat puts it back `online`. Only once it has been silent for `workerLostAfterMs`, from
   * its last heartbeat, are its active bunkers failed (`BunkerService.workerLost`). Silence is
   * measured from the Heartbeats store, or the row's copy when that is newer; marking a worker
   * offline writes the store's time into the row, so the row alone carries the clock from then
   * on (another controller's monitor, or a wiped store). A worker the store has never seen (it
   * was wiped) is judged by its row's coarse copy, which may lag by ROW_REFRESH_MS: it gets that
   * much longer before it is marked offline.
   */
  async monitor(): Promise<MonitorResult> {
    const seen = await this.heartbeats.lastSeen();
    const limitMs = this.config.missedHeartbeats * this.config.heartbeatIntervalMs;
    const now = Date.now();
    const result: MonitorResult = { offline: [], lost: [] };
    for (const w of await this.store.workers.list()) {
      const live = seen.get(w.id);
      const last = Math.max(live ?? 0, w.last_heartbeat_at ? Date.parse(w.last_heartbeat_at) : 0);
      const slack = live === undefined ? ROW_REFRESH_MS : 0;
      const silentMs = now - last;
      if (w.state !== 'offline') {
        if (silentMs <= limitMs + slack) continue;
        const lastIso = new Date(last).toISOString();
        if (!(await this.store.workers.markOffline(w.id, w.last_heartbeat_at, last > 0 ? lastIso : undefined))) continue;
        // A heartbeat that landed between our read and the mark finds the row still online and
        // leaves it: look again, and undo the mark if so.
        const again = (await this.heartbeats.lastSeen().catch(() => seen)).get(w.id);
        if (again !== undefined && again > last) {
          await this.store.workers.markOnline(w.id, new Date(again).toISOString());
          continue;
        }
        this.directory?.noteState(w.id, 'offline', last > 0 ? lastIso : w.last_heartbeat_at);
        this.log(
          `[workers] worker ${w.id} (${w.name}) is unreachable: no heartbeat for ${seconds(silentMs)}; ` +
            `its bunkers are kept until ${seconds(this.config.workerLostAfterMs)} of silence`,
        );
        result.offline.push(w.id);
      }
      // No row-refresh slack here: marking it offline wrote its last heartbeat into the row.
      if (silentMs <= this.config.workerLostAfterMs) continue;
      // Lost. Its bunkers are failed once per silence (any later pass finds none active).
      if (this.lostHandled.get(w.id) === last) continue;
      const active = await this.store.bunkers.listActiveOnWorker(w.id);
      for (const row of active) await this.bunkers.workerLost(row, silentMs);
      this.lostHandled.set(w.id, last);
      if (active.length > 0) {
        this.log(`[workers] worker ${w.id} (${w.name}) is lost: no heartbeat for ${seconds(silentMs)}; ${active.length} bunker(s) failed`);
        result.lost.push(w.id);
      }
    }
    return result;
  }

  /** Logged when a heartbeat brings back a worker the monitor had marked offline. */
  private cameBack(workerId: string, now: Date, lastHeartbeatAt?: string | null): void {
    this.directory?.noteState(workerId, 'online', now.toISOString());
    const away = lastHeartbeatAt ? ` after ${seconds(now.getTime() - Date.parse(lastHeartbeatAt))} without a heartbeat` : '';
    this.log(`[workers] worker ${workerId} is reachable again${away}`);
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

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)}s`;
}

/** The row with its heartbeat time from the Heartbeats store when that is newer. */
function withLastSeen(w: WorkerRow, seen: Map<string, number>): WorkerRow {
  const live = seen.get(w.id);
  return live !== undefined && live > (w.last_heartbeat_at ? Date.parse(w.last_heartbeat_at) : 0)
    ? { ...w, last_heartbeat_at: new Date(live).toISOString() }
    : w;
}
