import {
  ApiError,
  assertTransition,
  type BunkerState,
  LIFECYCLE_DEFAULTS,
  MICROVM_MIN_MEMORY_MB,
  newId,
  RESOURCE_DEFAULTS,
  type schemas,
  TERMINAL_STATES,
  type WorkerApi,
  WorkerError,
} from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import { isStoreUnavailable } from '../health/failures.js';
import type { UsageTicker } from '../jobs/UsageTicker.js';
import type { QuotaService } from '../quotas/QuotaService.js';
import type { Store } from '../store/Store.js';
import type { BunkerRow } from '../store/schema.js';
import { recordAudit } from '../tenants/audit.js';
import type { Scheduler } from '../workers/Scheduler.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';
import { checkBridges, resolveNetwork } from './networkRequest.js';
import { RunningBunkerCache } from './RunningBunkerCache.js';
import { bunkerToApi } from './toApi.js';
import { fromWorkerError } from './workerErrors.js';

const ACTIVE: BunkerState[] = ['pending', 'provisioning', 'running', 'paused', 'snapshotting'];

/** The bunker lifecycle: create, read, terminate, fail. Every state move goes through the one table. */
export class BunkerService {
  /** last_activity_at is written at most once a second per bunker, keeping the exec hot path cheap. */
  private readonly activityWritten = new Map<string, number>();

  /** Running bunkers' rows for the exec and file paths; the controller feeds it row-change notices. */
  readonly running = new RunningBunkerCache();

  constructor(
    private readonly store: Store,
    private readonly scheduler: Scheduler,
    private readonly workers: WorkerDirectory,
    private readonly quotas: QuotaService,
    /** Takes a terminated bunker's last usage reading before its worker destroys it. */
    private readonly usage?: Pick<UsageTicker, 'sampleFinal'>,
    /** bunker.create and bunker.terminate (queued: no extra round trip). */
    private readonly audit?: AuditTrail,
  ) {}

  /** A VM's RAM holds its kernel, and its disk is a block device the image must fit on. */
  private checkMicrovmFits(body: schemas.CreateBunkerBody, imageBytes: number | null): void {
    const memory = body.memory_mb ?? RESOURCE_DEFAULTS.memoryMb;
    if (memory < MICROVM_MIN_MEMORY_MB) {
      throw new ApiError('VALIDATION_FAILED', `microvm bunkers need memory_mb >= ${MICROVM_MIN_MEMORY_MB}`, { field: 'body/memory_mb' });
    }
    const disk = body.disk_mb ?? RESOURCE_DEFAULTS.diskMb;
    const imageMb = imageBytes ? Math.ceil(imageBytes / 1048576) : 0;
    if (disk < imageMb) {
      throw new ApiError('VALIDATION_FAILED', `disk_mb must be at least the image size (${imageMb} MB) for a microvm bunker`, {
        field: 'body/disk_mb',
      });
    }
  }

  async create(principal: Principal, body: schemas.CreateBunkerBody): Promise<BunkerRow> {
    // A microVM gets one virtio-net NIC behind the worker's host-side rules (registry,
    // allowlisted, unrestricted); transit's bridge ports are veths a VM cannot join. A body
    // check: refused before permissions, bridges, quotas or workers.
    if (body.isolation === 'microvm' && body.network_profile === 'transit') {
      throw new ApiError(
        'VALIDATION_FAILED',
        'the transit network profile is for container bunkers only (microvm bunkers support isolated, registry, allowlisted and unrestricted)',
        { field: 'body/network_profile' },
      );
    }
    // Network fields and their permission first: refused before quotas, rows or workers.
    const network = resolveNetwork(principal, body);
    if (network.interfaces) await checkBridges(this.store, principal, network.interfaces);
    const image = await this.store.images.findVisible(principal.tenantId, body.image);
    if (!image) throw new ApiError('IMAGE_NOT_FOUND', `no image named ${body.image}`, { image: body.image });
    if (image.state !== 'ready' || !image.sha256) throw new ApiError('IMAGE_NOT_READY', `image ${body.image} is ${image.state}`);
    const lifecycle = body.lifecycle ?? 'ephemeral';
    const defaults = LIFECYCLE_DEFAULTS[lifecycle];
    if (body.idle_timeout_s && body.max_lifetime_s && body.idle_timeout_s > body.max_lifetime_s) {
      throw new ApiError('VALIDATION_FAILED', 'idle_timeout_s cannot exceed max_lifetime_s', { field: 'body/idle_timeout_s' });
    }
    const isolation = body.isolation ?? 'container';
    if (isolation === 'microvm') this.checkMicrovmFits(body, image.size_bytes);
    const now = new Date().toISOString();
    const metadata = body.metadata ?? {};
    const cpuMillicores = body.cpu_millicores ?? RESOURCE_DEFAULTS.cpuMillicores;
    const memoryMb = body.memory_mb ?? RESOURCE_DEFAULTS.memoryMb;
    const diskMb = body.disk_mb ?? RESOURCE_DEFAULTS.diskMb;
    const gpuCount = body.gpu_count ?? 0;
    const networkProfile = network.profile;
    // Allow-lists refuse before anything is written; caps are charged once the row exists.
    const charges = await this.quotas.plan(principal, {
      lifecycle,
      image: image.name,
      networkProfile,
      amounts: { bunkers: 1, cpu_millicores: cpuMillicores, memory_mb: memoryMb, disk_mb: diskMb, gpu_count: gpuCount },
    });
    const row: BunkerRow = {
      id: newId('bk'),
      tenant_id: principal.tenantId,
      created_by: principal.actor,
      image: image.name,
      image_sha256: image.sha256,
      lifecycle,
      state: 'pending',
      termination_reason: null,
      worker_id: null,
      isolation,
      cpu_millicores: cpuMillicores,
      memory_mb: memoryMb,
      disk_mb: diskMb,
      gpu_count: gpuCount,
      network_profile: networkProfile,
      network_allowlist: network.allowlist ? JSON.stringify(network.allowlist) : null,
      bandwidth_mbit: network.bandwidthMbit ?? null,
      interfaces: network.interfaces ? JSON.stringify(network.interfaces) : null,
      idle_timeout_s: body.idle_timeout_s ?? defaults.idleTimeoutS,
      max_lifetime_s: body.max_lifetime_s ?? defaults.maxLifetimeS,
      env: JSON.stringify(body.env ?? {}),
      metadata: JSON.stringify(metadata),
      created_at: now,
      started_at: null,
      last_activity_at: now,
      ended_at: null,
      updated_at: now,
      quota_charges: null,
    };
    await this.store.bunkers.insert(row, metadata);
    // The row comes first: a controller that dies after charging leaves a pending row, which
    // the sweeper fails, releasing the charge. A refused create leaves no row.
    try {
      await this.quotas.charge(row.id, charges);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'QUOTA_EXCEEDED') {
        await this.store.bunkers.delete(row.id);
      } else {
        await this.fail(row.id, 'provision_failed: quota counters unavailable');
      }
      throw err;
    }
    // On record once the bunker exists (charged), whether or not it then starts.
    this.audit?.record(principal, { action: 'bunker.create', target: { type: 'bunker', id: row.id }, details: createDetails(row) });
    const unguarded = network.interfaces?.filter((i) => !i.spoof_guard) ?? [];
    if (unguarded.length > 0) {
      // Layer-2 transparency lets the bunker send as any MAC on its bridge: always on record.
      await recordAudit(
        this.store,
        principal,
        principal.tenantId,
        'bunker.l2_transparency',
        { type: 'bunker', id: row.id },
        {
          interfaces: unguarded,
        },
      );
    }

    let placed: BunkerRow;
    try {
      placed = await this.scheduler.place(
        {
          isolation,
          networkProfile,
          imageSha256: image.sha256,
          lazyPull: Number(image.lazy_pull ?? 0) === 1,
          cpuMillicores: row.cpu_millicores,
          memoryMb: row.memory_mb,
          diskMb: row.disk_mb,
          gpuCount: row.gpu_count,
          ...(network.interfaces ? { bridgeIds: [...new Set(network.interfaces.map((i) => i.bridge_id))] } : {}),
        },
        async (worker) => {
          const moved = await this.store.bunkers.transition(row.id, ['pending'], 'provisioning', { worker_id: worker.id });
          if (!moved) throw new ApiError('BUNKER_INVALID_TRANSITION', 'bunker left pending while being placed');
          return moved;
        },
      );
    } catch (err) {
      const reason = err instanceof ApiError ? err.code : 'placement error';
      await this.fail(row.id, `provision_failed: ${reason}`);
      throw err;
    }

    try {
      const worker = await this.workers.get(placed.worker_id as string);
      await worker.spawn({
        bunkerId: row.id,
        imageSha256: image.sha256,
        isolation,
        cpuMillicores: row.cpu_millicores,
        memoryMb: row.memory_mb,
        diskMb: row.disk_mb,
        networkProfile,
        ...(network.allowlist ? { networkAllowlist: network.allowlist } : {}),
        ...(network.bandwidthMbit !== undefined ? { bandwidthMbit: network.bandwidthMbit } : {}),
        ...(network.interfaces
          ? {
              interfaces: network.interfaces.map((i) => ({
                bridgeId: i.bridge_id,
                tenantId: row.tenant_id,
                mac: i.mac,
                spoofGuard: i.spoof_guard,
              })),
            }
          : {}),
        hostname: row.id.replace('_', '-'),
      });
    } catch (err) {
      await this.fail(row.id, `provision_failed: ${(err as Error).message}`.slice(0, 1000));
      // A worker out of disk is an answer of its own (507, retry later); any other failure to start is the worker's.
      if (err instanceof WorkerError && err.code === 'HOST_DISK_FULL') throw fromWorkerError(err);
      throw new ApiError('WORKER_UNAVAILABLE', `bunker could not be started: ${(err as Error).message}`, { bunker_id: row.id });
    }
    const started = new Date().toISOString();
    const running = await this.store.bunkers.transition(row.id, ['provisioning'], 'running', {
      started_at: started,
      last_activity_at: started,
    });
    if (!running) {
      // Terminated while it was starting: make sure nothing is left on the worker.
      await this.destroyOnWorker(placed);
      return this.mustGet(principal.tenantId, row.id);
    }
    return running;
  }

  /** Rows as API bunkers, with `worker_reachable` from the worker directory (one row read per worker per 2 s at most). */
  async toApi(rows: BunkerRow[]): Promise<schemas.Bunker[]> {
    const reachable = await this.workers.reachable(rows.flatMap((r) => (r.worker_id ? [r.worker_id] : [])));
    // No worker yet (pending, or never placed): nothing unreachable stands between it and its caller.
    return rows.map((r) => bunkerToApi(r, r.worker_id ? (reachable.get(r.worker_id) ?? false) : true));
  }

  async toApiOne(row: BunkerRow): Promise<schemas.Bunker> {
    return (await this.toApi([row]))[0] as schemas.Bunker;
  }

  async get(principal: Principal, id: string): Promise<BunkerRow> {
    return this.mustGet(principal.tenantId, id);
  }

  private async mustGet(tenantId: string, id: string): Promise<BunkerRow> {
    const row = await this.store.bunkers.get(tenantId, id);
    if (!row) throw new ApiError('BUNKER_NOT_FOUND', `no bunker ${id}`, { bunker_id: id });
    return row;
  }

  /** Idempotent: terminating an ended bunker answers its current row. */
  async terminate(principal: Principal, id: string): Promise<BunkerRow> {
    const row = await this.mustGet(principal.tenantId, id);
    if (TERMINAL_STATES.has(row.state as BunkerState)) return row;
    const ended = await this.end(row, 'terminated', 'user');
    // Only the terminate that ended it: a repeat, or losing the race to another ender, changed nothing.
    if (ended)
      this.audit?.record(principal, { action: 'bunker.terminate', target: { type: 'bunker', id }, details: { from_state: row.state } });
    return ended ?? this.mustGet(principal.tenantId, id);
  }

  /**
   * running → paused (cgroup freezer on the worker) or back. The row moves first (so a racing
   * terminate wins cleanly), and is put back if the worker refuses.
   */
  async setPaused(principal: Principal, id: string, pause: boolean): Promise<BunkerRow> {
    const row = await this.mustGet(principal.tenantId, id);
    const [from, to] = pause ? (['running', 'paused'] as const) : (['paused', 'running'] as const);
    assertTransition(id, row.state as BunkerState, to);
    const moved = await this.store.bunkers.transition(id, [from], to, pause ? {} : { last_activity_at: new Date().toISOString() });
    if (!moved) throw new ApiError('BUNKER_INVALID_TRANSITION', `bunker ${id} changed state concurrently`, { to });
    try {
      const worker = await this.workers.get(row.worker_id as string);
      await (pause ? worker.pause(id) : worker.resume(id));
    } catch (err) {
      await this.store.bunkers.transition(id, [to], from);
      throw fromWorkerError(err);
    }
    return moved;
  }

  /**
   * Moves a bunker to `terminated` or `failed` with its reason, releases its quota charge and
   * destroys it on its worker. Every end of a bunker comes through here (terminate, sweeper,
   * worker lost, crash, provision failure). Losing the race to another ender is fine: returns
   * undefined (the winner releases).
   */
  async end(row: BunkerRow, to: 'terminated' | 'failed', reason: string): Promise<BunkerRow | undefined> {
    assertTransition(row.id, row.state as BunkerState, to);
    const ended = await this.store.bunkers.transition(row.id, ACTIVE, to, {
      termination_reason: reason,
      ended_at: new Date().toISOString(),
    });
    this.activityWritten.delete(row.id);
    if (ended) {
      await this.quotas.release(ended.id);
      // Its last usage, while the worker still has it (a failed bunker's worker may not answer:
      // its usage ends at its last tick).
      if (to === 'terminated' && (row.state === 'running' || row.state === 'paused'))
        await this.usage?.sampleFinal(ended, row.state === 'paused');
      await this.destroyOnWorker(ended);
    }
    return ended;
  }

  async fail(id: string, reason: string): Promise<void> {
    const row = await this.store.bunkers.getById(id);
    if (!row || TERMINAL_STATES.has(row.state as BunkerState)) return;
    await this.end(row, 'failed', reason);
  }

  /**
   * The bunker's worker has been silent for `silentForMs`, past `--worker-lost-after`: the one
   * place a lost worker's bunkers end (`failed`, `worker_lost: no heartbeat for …`). Before that
   * an offline worker's bunkers are only unreachable and keep their state. If the worker returns
   * later, its heartbeat is answered with these ids in `unknown_bunkers` and it destroys them.
   */
  async workerLost(row: BunkerRow, silentForMs: number): Promise<void> {
    if (TERMINAL_STATES.has(row.state as BunkerState)) return;
    await this.end(row, 'failed', `worker_lost: no heartbeat for ${formatDuration(silentForMs)}`);
  }

  /** Destroy on the worker; if it is unreachable the worker's next heartbeat reconciles it away. */
  private async destroyOnWorker(row: BunkerRow): Promise<void> {
    if (!row.worker_id) return;
    try {
      await (await this.workers.get(row.worker_id)).destroy(row.id);
    } catch {
      // Reconciled by heartbeat: the worker reports it, the controller answers unknown_bunkers.
    }
  }

  /** For exec, files and shell: the running bunker and its worker, or a clear 404/409/503. */
  async requireRunning(principal: Principal, id: string): Promise<{ row: BunkerRow; worker: WorkerApi }> {
    let row = this.running.get(id);
    if (row?.tenant_id !== principal.tenantId) {
      const version = this.running.version(id);
      try {
        row = await this.mustGet(principal.tenantId, id);
      } catch (err) {
        // Exec and files keep working through a database outage on the rows we had.
        const stale = this.running.getStale(id);
        if (!isStoreUnavailable(err) || stale?.tenant_id !== principal.tenantId) throw err;
        row = stale;
      }
      this.running.put(id, row, version);
    }
    if (row.state !== 'running') {
      throw new ApiError('BUNKER_NOT_RUNNING', `bunker ${id} is ${row.state}`, { state: row.state });
    }
    const worker = await this.workers.get(row.worker_id as string);
    this.touch(row.id);
    return { row, worker };
  }

  touch(id: string): void {
    const now = Date.now();
    if (now - (this.activityWritten.get(id) ?? 0) < 1000) return;
    this.activityWritten.set(id, now);
    this.store.bunkers.touch(id, new Date(now).toISOString()).catch(() => undefined);
  }

  mapWorkerError(err: unknown): unknown {
    return fromWorkerError(err);
  }
}

/** `45s`, `12m 5s`, `3h 2m` for a termination reason. */
function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`;
}

/** What a create asked for, as its audit event records it (the privileged parts included). */
function createDetails(row: BunkerRow): object {
  return {
    image: row.image,
    isolation: row.isolation,
    lifecycle: row.lifecycle,
    network_profile: row.network_profile,
    cpu_millicores: row.cpu_millicores,
    memory_mb: row.memory_mb,
    disk_mb: row.disk_mb,
    gpu_count: row.gpu_count,
    ...(row.interfaces ? { interfaces: JSON.parse(row.interfaces) } : {}),
  };
}
