import {
  ApiError,
  assertTransition,
  type BunkerState,
  type Isolation,
  LIFECYCLE_DEFAULTS,
  MICROVM_MIN_MEMORY_MB,
  newId,
  RESOURCE_DEFAULTS,
  type SnapshotRef,
  type schemas,
  TERMINAL_STATES,
  type WorkerApi,
} from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import { isStoreUnavailable } from '../health/failures.js';
import { requestTrace } from '../http/requestContext.js';
import type { UsageTicker } from '../jobs/UsageTicker.js';
import type { ControllerMetrics } from '../metrics/ControllerMetrics.js';
import type { QuotaService } from '../quotas/QuotaService.js';
import type { Store } from '../store/Store.js';
import type { BunkerRow, SnapshotRow } from '../store/schema.js';
import { recordAudit } from '../tenants/audit.js';
import type { Scheduler } from '../workers/Scheduler.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';
import { type BunkerNetwork, checkBridges, resolveNetwork } from './networkRequest.js';
import { RunningBunkerCache } from './RunningBunkerCache.js';
import { bunkerToApi } from './toApi.js';
import { fromSpawnError, fromWorkerError } from './workerErrors.js';

const ACTIVE: BunkerState[] = ['pending', 'provisioning', 'running', 'paused', 'snapshotting'];
/** How often `last_activity_at` is written, and how many bunkers one statement names at most. */
const ACTIVITY_WRITE_MS = 1000;
const ACTIVITY_BATCH = 500;

/** The bunker lifecycle: create, read, terminate, fail. Every state move goes through the one table. */
export class BunkerService {
  /**
   * Bunkers with activity (exec, files, shell) since `last_activity_at` was last written: one
   * statement writes them all, a second after the first of them (stamped with that first
   * activity's time), so under load the exec path adds at most one UPDATE a second per controller
   * rather than one per busy bunker. A bunker's recorded activity is at most a second behind.
   */
  private readonly activeSince = new Set<string>();
  private activityWrite: { timer: NodeJS.Timeout; at: string } | undefined;

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
    /** `scaibunker_create_duration_seconds`. */
    private readonly metrics?: Pick<ControllerMetrics, 'time' | 'createDuration' | 'imagePlacements'>,
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

  /** Creates a bunker and answers once it runs (timed into `scaibunker_create_duration_seconds`). */
  create(principal: Principal, body: schemas.CreateBunkerBody): Promise<BunkerRow> {
    const m = this.metrics;
    return m ? m.time(m.createDuration, () => this.createNow(principal, body)) : this.createNow(principal, body);
  }

  private async createNow(principal: Principal, body: schemas.CreateBunkerBody): Promise<BunkerRow> {
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
    // proot gives no network namespace: its only network is none at all (a seccomp filter).
    if (body.isolation === 'proot' && (body.network_profile ?? 'isolated') !== 'isolated') {
      throw new ApiError(
        'VALIDATION_FAILED',
        'proot bunkers have no network of their own: only the isolated network profile (no network at all) is offered for them',
        { field: 'body/network_profile' },
      );
    }
    // Network fields and their permission first: refused before quotas, rows or workers.
    const network = resolveNetwork(principal, body);
    if (network.interfaces) await checkBridges(this.store, principal, network.interfaces);
    const lifecycle = body.lifecycle ?? 'ephemeral';
    if (body.auto_resume && lifecycle !== 'persistent') {
      throw new ApiError('VALIDATION_FAILED', 'auto_resume is for persistent bunkers (only they are passivated)', {
        field: 'body/auto_resume',
      });
    }
    // a persistent bunker is passivated into a snapshot, which a proot bunker cannot take
    if (body.isolation === 'proot' && lifecycle === 'persistent') {
      throw new ApiError(
        'VALIDATION_FAILED',
        'proot bunkers cannot be snapshotted, so they cannot be persistent (use ephemeral or session)',
        {
          field: 'body/lifecycle',
        },
      );
    }
    const trace = requestTrace();
    const snapshot = body.snapshot_id ? await this.restorableSnapshot(principal, body) : undefined;
    const imageName = snapshot?.image ?? body.image;
    if (!imageName) throw new ApiError('VALIDATION_FAILED', 'give image or snapshot_id', { field: 'body/image' });
    const image = await this.store.images.findVisible(principal.tenantId, imageName);
    if (!image) throw new ApiError('IMAGE_NOT_FOUND', `no image named ${imageName}`, { image: imageName });
    if (image.state !== 'ready' || !image.sha256) throw new ApiError('IMAGE_NOT_READY', `image ${imageName} is ${image.state}`);
    if (snapshot && image.sha256 !== snapshot.image_sha256) {
      throw new ApiError(
        'IMAGE_NOT_READY',
        `image ${imageName} has changed since snapshot ${snapshot.id} was taken; the snapshot restores only onto its own image`,
        {
          image: imageName,
          snapshot_id: snapshot.id,
        },
      );
    }
    const defaults = LIFECYCLE_DEFAULTS[lifecycle];
    if (body.idle_timeout_s && body.max_lifetime_s && body.idle_timeout_s > body.max_lifetime_s) {
      throw new ApiError('VALIDATION_FAILED', 'idle_timeout_s cannot exceed max_lifetime_s', { field: 'body/idle_timeout_s' });
    }
    const isolation = body.isolation ?? (snapshot?.isolation as schemas.CreateBunkerBody['isolation']) ?? 'container';
    if (isolation === 'microvm') this.checkMicrovmFits(body, image.size_bytes);
    trace.mark('controller.image-lookup');
    const now = new Date().toISOString();
    const metadata = body.metadata ?? {};
    const cpuMillicores = body.cpu_millicores ?? RESOURCE_DEFAULTS.cpuMillicores;
    const memoryMb = body.memory_mb ?? RESOURCE_DEFAULTS.memoryMb;
    const diskMb = body.disk_mb ?? snapshot?.disk_mb ?? RESOURCE_DEFAULTS.diskMb;
    const gpuCount = body.gpu_count ?? 0;
    const networkProfile = network.profile;
    // Allow-lists refuse before anything is written; caps are charged once the row exists.
    const charges = await this.quotas.plan(principal, {
      lifecycle,
      image: image.name,
      networkProfile,
      amounts: { bunkers: 1, cpu_millicores: cpuMillicores, memory_mb: memoryMb, disk_mb: diskMb, gpu_count: gpuCount },
    });
    trace.mark('controller.quota-plan');
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
      snapshot_id: snapshot?.id ?? null,
      recovered_from: null,
      auto_resume: body.auto_resume ? 1 : 0,
      passivated: 0,
    };
    // Whether a group keeps the image warm (lazy fetch or not) is read while the row and the
    // charge are written: it does not depend on them.
    const warmed = Number(image.lazy_pull ?? 0) === 1 ? Promise.resolve(true) : this.store.availabilityGroups.isWarmed(image.id);
    warmed.catch(() => undefined); // awaited below, unless the create fails first
    await this.store.bunkers.insert(row, metadata);
    trace.subject = row.id;
    trace.mark('controller.row-insert');
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
    trace.mark('controller.quota-charge');
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

    // The row names the snapshot before this re-read, and a delete claims the snapshot before it
    // looks for such rows: one of the two always sees the other.
    if (snapshot && (await this.store.snapshots.getById(snapshot.id))?.state !== 'ready') {
      await this.fail(row.id, `provision_failed: snapshot ${snapshot.id} was deleted`);
      throw new ApiError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshot.id} was deleted`, { snapshot_id: snapshot.id });
    }
    // An image no availability group keeps warm is fetched where the bunker lands (holders
    // first); `lazy_pull: false` keeps its meaning for images a group does warm.
    const lazy = Number(image.lazy_pull ?? 0) === 1 || !(await warmed);
    trace.mark('controller.audit+warm-check');
    return this.startOnWorker(row, {
      isolation,
      networkProfile,
      network,
      image: { sha256: image.sha256, lazy_pull: lazy ? 1 : 0 },
      restore: snapshot,
    });
  }

  /**
   * Starts a passivated bunker again from its snapshot, on any worker that takes it (its old
   * one may be gone or full). The same id, row and quota charge; only one resume runs at a time
   * (the compare-and-set out of `paused`). If no worker takes it the row goes back to
   * passivated, its files still in the snapshot, and the error is the caller's.
   */
  async resumePassivated(row: BunkerRow): Promise<BunkerRow> {
    const snapshot = row.snapshot_id ? await this.store.snapshots.getById(row.snapshot_id) : undefined;
    if (!snapshot || snapshot.state !== 'ready') {
      throw new ApiError('SNAPSHOT_NOT_FOUND', `bunker ${row.id} is passivated but its snapshot ${row.snapshot_id} is gone`, {
        bunker_id: row.id,
      });
    }
    const claimed = await this.store.bunkers.transition(row.id, ['paused'], 'provisioning', {});
    if (!claimed || Number(claimed.passivated) !== 1) {
      if (claimed) await this.store.bunkers.transition(row.id, ['provisioning'], 'paused');
      throw new ApiError('BUNKER_INVALID_TRANSITION', `bunker ${row.id} is not passivated any more`, { bunker_id: row.id });
    }
    const image = { sha256: row.image_sha256, lazy_pull: (await this.store.images.findVisible(row.tenant_id, row.image))?.lazy_pull ?? 0 };
    const network: BunkerNetwork = {
      profile: row.network_profile as BunkerNetwork['profile'],
      allowlist: row.network_allowlist ? (JSON.parse(row.network_allowlist) as string[]) : undefined,
      bandwidthMbit: row.bandwidth_mbit ?? undefined,
      interfaces: row.interfaces ? JSON.parse(row.interfaces) : undefined,
    };
    try {
      return await this.startOnWorker(claimed, {
        isolation: row.isolation,
        networkProfile: row.network_profile,
        network,
        image,
        restore: snapshot,
        keepOnFailure: true,
      });
    } catch (err) {
      await this.store.bunkers.transition(row.id, ['provisioning'], 'paused', { worker_id: null });
      throw err;
    }
  }

  /**
   * The hook passivation registers: resumes a passivated `auto_resume` bunker for a call that
   * needs it running (concurrent calls share one resume).
   */
  private autoResumer: ((row: BunkerRow) => Promise<BunkerRow>) | undefined;
  onAutoResume(resume: (row: BunkerRow) => Promise<BunkerRow>): void {
    this.autoResumer = resume;
  }

  /** Snapshots this controller is writing, by bunker: a call that needs the bunker running waits for them. */
  private readonly snapshotting = new Map<string, Promise<unknown>>();
  whileSnapshotting(bunkerId: string, done: Promise<unknown>): void {
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    this.snapshotting.set(bunkerId, settled);
    void settled.then(() => {
      if (this.snapshotting.get(bunkerId) === settled) this.snapshotting.delete(bunkerId);
    });
  }

  /** A snapshot a create may restore from, checked against the rest of the body. */
  private async restorableSnapshot(principal: Principal, body: schemas.CreateBunkerBody): Promise<SnapshotRow> {
    const id = body.snapshot_id as string;
    const snapshot = await this.store.snapshots.get(principal.tenantId, id);
    if (!snapshot) throw new ApiError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`, { snapshot_id: id });
    if (snapshot.state !== 'ready')
      throw new ApiError('SNAPSHOT_NOT_READY', `snapshot ${id} is ${snapshot.state}`, { snapshot_id: id, state: snapshot.state });
    if (body.image && body.image !== snapshot.image) {
      throw new ApiError('VALIDATION_FAILED', `snapshot ${id} is of image ${snapshot.image}, not ${body.image}`, { field: 'body/image' });
    }
    if (body.isolation && body.isolation !== snapshot.isolation) {
      throw new ApiError('VALIDATION_FAILED', `snapshot ${id} is of a ${snapshot.isolation} bunker; it restores only as one`, {
        field: 'body/isolation',
      });
    }
    if (body.disk_mb !== undefined && body.disk_mb < snapshot.disk_mb) {
      throw new ApiError('VALIDATION_FAILED', `snapshot ${id} needs disk_mb >= ${snapshot.disk_mb}`, { field: 'body/disk_mb' });
    }
    return snapshot;
  }

  /**
   * Places a `pending` row (or a passivated one being resumed, already `provisioning`) and
   * spawns it, from its snapshot when `restore` is given. A failure fails a new bunker; a
   * resume's caller puts its row back instead (`keepOnFailure`).
   */
  private async startOnWorker(
    row: BunkerRow,
    opts: {
      isolation: string;
      networkProfile: string;
      network: BunkerNetwork;
      image: { sha256: string | null; lazy_pull?: number | null };
      restore: SnapshotRow | undefined;
      keepOnFailure?: boolean;
    },
  ): Promise<BunkerRow> {
    const { isolation, networkProfile, network, image } = opts;
    const trace = requestTrace();
    const imageSha256 = image.sha256 as string;
    const from = opts.keepOnFailure ? ['provisioning'] : ['pending'];
    const failWith = async (reason: string) => {
      if (!opts.keepOnFailure) await this.fail(row.id, reason);
    };
    let placed: BunkerRow;
    let held = false;
    try {
      placed = await this.scheduler.place(
        {
          isolation: isolation as Isolation,
          networkProfile: networkProfile as schemas.CreateBunkerBody['network_profile'] & string,
          imageSha256,
          lazyPull: Number(image.lazy_pull ?? 0) === 1,
          cpuMillicores: row.cpu_millicores,
          memoryMb: row.memory_mb,
          diskMb: row.disk_mb,
          gpuCount: row.gpu_count,
          ...(network.interfaces ? { bridgeIds: [...new Set(network.interfaces.map((i) => i.bridge_id))] } : {}),
        },
        async (worker) => {
          const moved = await this.store.bunkers.transition(row.id, from, 'provisioning', { worker_id: worker.id });
          if (!moved) throw new ApiError('BUNKER_INVALID_TRANSITION', `bunker left ${from[0]} while being placed`);
          held = (JSON.parse(worker.cached_images) as string[]).includes(imageSha256);
          return moved;
        },
      );
    } catch (err) {
      const reason = err instanceof ApiError ? err.code : 'placement error';
      await failWith(`provision_failed: ${reason}`);
      throw err;
    }
    // A miss is a fetch at spawn (lazy): what warming the image in a group would have saved.
    this.metrics?.imagePlacements.inc({ result: held ? 'hit' : 'miss' });

    trace.mark('controller.placed');
    try {
      const worker = await this.workers.get(placed.worker_id as string);
      trace.mark('controller.worker-client');
      await worker.spawn({
        bunkerId: row.id,
        imageSha256,
        isolation: isolation as Isolation,
        cpuMillicores: row.cpu_millicores,
        memoryMb: row.memory_mb,
        diskMb: row.disk_mb,
        networkProfile: networkProfile as schemas.CreateBunkerBody['network_profile'] & string,
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
        ...(opts.restore ? { restore: snapshotRef(opts.restore) } : {}),
      });
    } catch (err) {
      await failWith(`provision_failed: ${(err as Error).message}`.slice(0, 1000));
      if (opts.keepOnFailure) await this.destroyOnWorker(placed);
      throw fromSpawnError(err, row.id);
    }
    trace.mark('controller.spawned');
    const started = new Date().toISOString();
    const running = await this.store.bunkers.transition(row.id, ['provisioning'], 'running', {
      started_at: started,
      last_activity_at: started,
      passivated: 0,
      ...(opts.restore ? { snapshot_id: opts.restore.id } : {}),
    });
    if (!running) {
      // Terminated while it was starting: make sure nothing is left on the worker.
      await this.destroyOnWorker(placed);
      return this.mustGet(row.tenant_id, row.id);
    }
    // The caller's first exec is served without reading the row back. The version is taken now,
    // after this write's own notice dropped the entry: a later change (another controller's
    // notice arrives on a later turn of the event loop) still drops it.
    this.running.put(running.id, running, this.running.version(running.id));
    trace.mark('controller.running-row');
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
    if (!pause && row.state === 'paused' && Number(row.passivated) === 1) return this.resumePassivated(row);
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
    this.activeSince.delete(row.id);
    if (ended) {
      await this.quotas.release(ended.id);
      // Its last usage, while the worker still has it (a failed bunker's worker may not answer:
      // its usage ends at its last tick).
      if (to === 'terminated' && (row.state === 'running' || row.state === 'paused') && Number(row.passivated) !== 1)
        await this.usage?.sampleFinal(ended, row.state === 'paused');
      await this.destroyOnWorker(ended);
      for (const listener of this.endListeners) await listener(ended).catch(() => undefined);
    }
    return ended;
  }

  private readonly endListeners: Array<(row: BunkerRow) => Promise<void>> = [];
  /** Called once per bunker that ended, after its worker was asked to destroy it (best effort). */
  onEnded(listener: (row: BunkerRow) => Promise<void>): void {
    this.endListeners.push(listener);
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
    if (await this.recoverElsewhere(row)) return;
    await this.end(row, 'failed', `worker_lost: no heartbeat for ${formatDuration(silentForMs)}`);
  }

  /**
   * A persistent bunker with a ready snapshot outlives its lost worker: it becomes passivated on
   * its newest snapshot (`recovered_from` names the lost worker) and is restored elsewhere at
   * once; if no worker takes it now, it stays passivated for `resume`. Files written after that
   * snapshot are lost with the worker. False when there is nothing to recover from.
   */
  private async recoverElsewhere(row: BunkerRow): Promise<boolean> {
    if (row.lifecycle !== 'persistent' || !row.worker_id) return false;
    const snapshot = await this.store.snapshots.latestReady(row.id);
    if (!snapshot) return false;
    const parked = await this.store.bunkers.transition(row.id, ['running', 'paused', 'snapshotting'], 'paused', {
      passivated: 1,
      worker_id: null,
      snapshot_id: snapshot.id,
      recovered_from: row.worker_id,
    });
    if (!parked) return false;
    this.activeSince.delete(row.id);
    await this.resumePassivated(parked).catch((err: Error) =>
      console.error(`[bunkers] ${row.id} recovered from ${snapshot.id} stays passivated: ${err.message}`),
    );
    return true;
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
    if (row.state !== 'running') row = await this.untilRunning(row);
    const worker = await this.workers.get(row.worker_id as string);
    this.touch(row.id);
    return { row, worker };
  }

  /**
   * A bunker a call needs running that is not: one being snapshotted by this controller is
   * waited for (its files are frozen for a moment, not gone), a passivated `auto_resume` one is
   * resumed; anything else is BUNKER_NOT_RUNNING.
   */
  private async untilRunning(row: BunkerRow): Promise<BunkerRow> {
    const pending = this.snapshotting.get(row.id);
    if (row.state === 'snapshotting' && pending) {
      await pending;
      row = await this.mustGet(row.tenant_id, row.id);
    } else if (row.state === 'paused' && Number(row.passivated) === 1 && Number(row.auto_resume) === 1 && this.autoResumer) {
      row = await this.autoResumer(row);
    }
    if (row.state !== 'running') {
      throw new ApiError('BUNKER_NOT_RUNNING', `bunker ${row.id} is ${row.state}${Number(row.passivated) === 1 ? ' (passivated)' : ''}`, {
        state: row.state,
        passivated: Number(row.passivated) === 1,
      });
    }
    return row;
  }

  touch(id: string): void {
    this.activeSince.add(id);
    if (this.activityWrite) return;
    const timer = setTimeout(() => void this.writeActivity(), ACTIVITY_WRITE_MS);
    timer.unref();
    this.activityWrite = { timer, at: new Date().toISOString() };
  }

  /** Writes the activity gathered so far now (the timer's work; also at close). */
  async writeActivity(): Promise<void> {
    const pending = this.activityWrite;
    if (!pending) return;
    clearTimeout(pending.timer);
    this.activityWrite = undefined;
    const ids = [...this.activeSince];
    this.activeSince.clear();
    for (let i = 0; i < ids.length; i += ACTIVITY_BATCH) {
      await this.store.bunkers.touch(ids.slice(i, i + ACTIVITY_BATCH), pending.at).catch(() => undefined);
    }
  }

  mapWorkerError(err: unknown): unknown {
    return fromWorkerError(err);
  }
}

/** The worker's view of a stored snapshot (SpawnRequest.restore). */
export function snapshotRef(s: SnapshotRow): SnapshotRef {
  return {
    snapshotId: s.id,
    sha256: s.sha256 as string,
    sizeBytes: Number(s.size_bytes),
    format: s.format as SnapshotRef['format'],
  };
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
