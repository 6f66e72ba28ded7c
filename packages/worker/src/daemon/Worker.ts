/**
 * The worker daemon's core: runs bunkers through a Provider, reaches their insides through
 * one AgentClient per bunker, and keeps the controller informed by heartbeat.
 *
 * Bunkers outlive this object: stop() only drops connections, and start() reconnects to
 * whatever the provider still runs — so a worker or controller restart never kills tenant work.
 *
 * This class is the WorkerApi: it checks and routes each verb. The parts it composes, one job
 * each: BunkerRegistry (known bunkers, their channels and status), HeartbeatLoop,
 * HostCapacity (capacity offered, disk reserve), TunnelTable (port tunnels and their cap),
 * workerIdentity (the persisted id), reconnectSurvivors (after a restart), agentErrors
 * (AgentError → WorkerError) and fileStreams (capped uploads, mapped downloads).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Duplex, Readable } from 'node:stream';
import { newId, PhaseTrace, SHA256_HEX } from '@scaibunker/core';
import { AgentClient } from '../agent/AgentClient.js';
import { ImageCache } from '../images/ImageCache.js';
import { LinkImageOrigins } from '../images/LinkImageOrigins.js';
import { ProcessTable } from '../processes/ProcessTable.js';
import { type BunkerStats, LAYER_FORMAT, ProviderError } from '../providers/Provider.js';
import { archiveLayer, syncGuest } from '../snapshots/SnapshotArchiver.js';
import { fetchArchive } from '../snapshots/SnapshotRestorer.js';
import { withTimeout } from '../util/withTimeout.js';
import type {
  CachedImage,
  CachedImageSource,
  EventHandlers,
  ExecHandlers,
  ExecOutcome,
  ExecRequest,
  FileStatInfo,
  Heartbeat,
  HeartbeatReply,
  ProcessInfo,
  ProcessOutput,
  SnapshotRequest,
  SnapshotResult,
  SpawnRequest,
  StartProcessRequest,
  WatchEvent,
  WorkerApi,
} from '../WorkerApi.js';
import { WorkerError } from '../WorkerApi.js';
import { messageOf, toWorkerError } from './agentErrors.js';
import { BunkerRegistry } from './BunkerRegistry.js';
import { capBytes, continueIteration } from './fileStreams.js';
import { HeartbeatLoop } from './HeartbeatLoop.js';
import { HostCapacity } from './HostCapacity.js';
import { reconnectSurvivors } from './reconnectSurvivors.js';
import { TunnelTable } from './TunnelTable.js';
import { defaultLogger, type WorkerCapacity, type WorkerLogger, type WorkerOptions } from './WorkerOptions.js';
import { loadOrCreateWorkerId } from './workerIdentity.js';

export { MAX_TUNNELS_PER_BUNKER } from './TunnelTable.js';
export type { WorkerCapacity, WorkerLogger, WorkerNetworking, WorkerOptions } from './WorkerOptions.js';

export class Worker implements WorkerApi, CachedImageSource {
  private readonly bunkers: BunkerRegistry;
  /** Spawns in flight, so a retried spawn of the same id joins the first one. */
  private readonly spawning = new Map<string, Promise<void>>();
  /** Open port tunnels per bunker (the cap; destroy ends them). */
  private readonly tunnels = new TunnelTable();
  /** The snapshot in flight per bunker (one at a time): pause/resume wait for it, destroy aborts it. */
  private readonly snapshotting = new Map<string, { done: Promise<unknown>; abort: AbortController }>();
  private readonly logger: WorkerLogger;
  private readonly agentConnectTimeoutMs: number;
  /** Owns imageDir: what is cached, fetching what is not, serving peers. */
  readonly images: ImageCache;
  /** Every exec's journaled output, and the background processes to steer. */
  private readonly processes: ProcessTable;
  private readonly heartbeat: HeartbeatLoop;
  private readonly host: HostCapacity;
  private capacity: WorkerCapacity | null;
  private workerId: string | null = null;
  private started = false;

  constructor(private readonly opts: WorkerOptions) {
    this.logger = opts.logger ?? defaultLogger;
    this.heartbeat = new HeartbeatLoop(() => this.sendHeartbeat(), opts.heartbeatIntervalMs ?? 10_000, this.logger);
    this.host = new HostCapacity(opts.dataDir, opts);
    this.bunkers = new BunkerRegistry((id) => this.onBunkerDied(id));
    this.agentConnectTimeoutMs = opts.agentConnectTimeoutMs ?? 10_000;
    this.capacity = opts.capacity ?? null;
    this.processes = new ProcessTable({
      ...opts.processes,
      spillDir: join(opts.dataDir, 'journals'),
      // Journals never take the disk below the reserve that keeps bunkers and images going.
      canSpill: (bytes) => this.host.hasRoomFor(bytes),
    });
    this.images = new ImageCache({
      imageDir: opts.imageDir,
      origins: new LinkImageOrigins(opts.controller, () => this.id),
      ...(opts.token ? { token: opts.token } : {}),
      selfUrl: opts.url,
      stallTimeoutMs: opts.imageStallTimeoutMs,
      logger: this.logger,
    });
  }

  /** Where snapshot archives are unpacked for a spawn (outside every bunker), each removed after its spawn. */
  get restoresDir(): string {
    return join(this.opts.dataDir, 'restores');
  }

  /** The persisted worker id (available after init() or start()). */
  get id(): string {
    if (!this.workerId) throw new Error('Worker.id read before init()');
    return this.workerId;
  }

  /**
   * Loads (or creates) the worker's identity and measures capacity, without touching the
   * provider or the controller — so an embedded controller can register this worker under
   * its id before the first heartbeat. Idempotent; start() calls it.
   */
  async init(): Promise<void> {
    if (this.workerId) return;
    await mkdir(this.opts.dataDir, { recursive: true });
    this.capacity ??= await this.host.measure();
    this.workerId = await loadOrCreateWorkerId(this.opts.dataDir);
    // A previous run's journals belong to processes its agent connections took with them.
    await rm(join(this.opts.dataDir, 'journals'), { recursive: true, force: true });
    // Snapshot archives unpacked for spawns a previous run did not finish.
    await rm(this.restoresDir, { recursive: true, force: true });
    await this.images.start();
  }

  async start(): Promise<void> {
    if (this.started) return;
    await this.init();
    for (const p of this.opts.providers) await p.init();
    await reconnectSurvivors(this.opts.providers, this.bunkers, this.agentConnectTimeoutMs, this.logger);
    // Before any new work: the surviving bunkers' network rules are back, everything else gone.
    if (this.opts.networking) {
      const { restored, removed } = await this.opts.networking.reconcile(this.bunkers.ids());
      if (restored.length || removed.length) this.logger.info(`networks: restored ${restored.length}, removed ${removed.length}`);
    }
    this.started = true;
    await this.heartbeat.start();
  }

  /** Stops heartbeats and drops agent connections; bunkers keep running. */
  async stop(): Promise<void> {
    this.started = false;
    await this.heartbeat.stop();
    for (const agent of this.bunkers.forgetAll()) agent.close();
    for (const p of this.opts.providers) await p.shutdown();
  }

  /**
   * Sends one heartbeat now (serialised with the periodic ones) and applies the reply:
   * bunkers the controller no longer considers alive are destroyed. Rejects if the
   * controller could not be reached; the periodic loop logs and retries instead.
   */
  heartbeatNow(): Promise<HeartbeatReply> {
    return this.heartbeat.now();
  }

  /** What the next heartbeat will carry (exposed for diagnostics and tests). */
  async buildHeartbeat(): Promise<Heartbeat> {
    return {
      worker_id: this.id,
      name: this.opts.name,
      url: this.opts.url,
      isolations: this.opts.providers.map((p) => p.isolation),
      network_profiles: ['isolated', ...(this.opts.networking?.profiles ?? [])],
      capacity: this.capacity ?? (await this.host.measure()),
      cached_images: await this.images.list(),
      bridges: this.opts.networking?.bridgeIds?.() ?? [],
      bunkers: this.bunkers.all().map((b) => ({ id: b.id, status: b.status })),
    };
  }

  // ---------------------------------------------------------------- WorkerApi

  async spawn(req: SpawnRequest): Promise<void> {
    const inFlight = this.spawning.get(req.bunkerId);
    if (inFlight) return inFlight;
    const existing = this.bunkers.get(req.bunkerId);
    // A retried spawn (the controller lost our first answer) is a success, not a duplicate.
    if (existing?.status === 'running') return;
    const run = this.doSpawn(req).finally(() => this.spawning.delete(req.bunkerId));
    this.spawning.set(req.bunkerId, run);
    return run;
  }

  async createBridge(req: { bridgeId: string; tenantId: string }): Promise<void> {
    const net = this.opts.networking;
    if (!net?.createBridge || !net.profiles.includes('transit'))
      throw new WorkerError('BRIDGE_FAILED', 'this worker cannot make transit bridges');
    try {
      await net.createBridge(req.bridgeId, req.tenantId);
    } catch (err) {
      throw new WorkerError('BRIDGE_FAILED', messageOf(err));
    }
  }

  async deleteBridge(bridgeId: string): Promise<void> {
    await this.opts.networking?.deleteBridge?.(bridgeId);
  }

  async ensureImage(sha256: string): Promise<{ source: 'cache' | 'peer' | 'proxy'; bytes: number }> {
    const { source, bytes } = await this.fetchImage(sha256);
    return { source, bytes };
  }

  /** Serves a cached image to a peer worker (`GET /v1/images/{sha256}`), from byte `from` on. */
  openCachedImage(sha256: string, from?: number): Promise<CachedImage> {
    return this.images.openCached(sha256, from);
  }

  async destroy(bunkerId: string): Promise<void> {
    await this.spawning.get(bunkerId)?.catch(() => {});
    // A snapshot in flight fails (nothing stored) and thaws the bunker before it goes.
    const snap = this.snapshotting.get(bunkerId);
    if (snap) {
      snap.abort.abort(new Error(`bunker ${bunkerId} is being destroyed`));
      await snap.done.catch(() => {});
    }
    // Forget it first so the channel closing below is not mistaken for the bunker dying.
    const tracked = this.bunkers.forget(bunkerId);
    tracked?.agent?.close();
    // Closing the channel already fails every tunnel (CHANNEL_CLOSED); this also covers one
    // whose connect was still in flight.
    this.tunnels.closeAll(bunkerId);
    await this.processes.dropBunker(bunkerId);
    // Always ask the providers (destroy is idempotent): one may hold a bunker we never
    // managed to reconnect to.
    try {
      for (const p of tracked ? [tracked.provider] : this.opts.providers) await p.destroy(bunkerId);
    } catch (err) {
      throw new WorkerError('IO_ERROR', `destroying ${bunkerId}: ${messageOf(err)}`);
    }
  }

  async pause(bunkerId: string): Promise<void> {
    await this.snapshotting.get(bunkerId)?.done.catch(() => {}); // its thaw must not undo this pause
    const tracked = this.bunkers.inState(bunkerId, 'running');
    await this.providerCall(bunkerId, () => tracked.provider.pause(bunkerId));
    tracked.status = 'paused';
  }

  async resume(bunkerId: string): Promise<void> {
    await this.snapshotting.get(bunkerId)?.done.catch(() => {});
    const tracked = this.bunkers.inState(bunkerId, 'paused');
    await this.providerCall(bunkerId, () => tracked.provider.resume(bunkerId));
    tracked.status = 'running';
  }

  /**
   * Archives the bunker's writable layer into storage (see SnapshotArchiver): frozen while its
   * files are read, running again afterwards. One at a time per bunker.
   */
  async snapshot(bunkerId: string, req: SnapshotRequest): Promise<SnapshotResult> {
    const tracked = this.bunkers.inState(bunkerId, 'running');
    if (this.snapshotting.has(bunkerId)) throw new WorkerError('INVALID_STATE', `bunker ${bunkerId} is already being snapshotted`);
    const abort = new AbortController();
    const run = (async () => {
      // A VM's guest holds written data in its page cache: have it reach the disk first.
      if (tracked.provider.isolation === 'microvm' && tracked.agent)
        await syncGuest(tracked.agent, (m) => this.logger.warn(`snapshot ${req.snapshotId} of ${bunkerId}: ${m}`));
      return archiveLayer({
        provider: tracked.provider,
        bunkerId,
        snapshotId: req.snapshotId,
        link: this.opts.controller,
        signal: abort.signal,
      });
    })();
    this.snapshotting.set(bunkerId, { done: run, abort });
    try {
      const result = await run;
      this.logger.info(`snapshot ${req.snapshotId} of ${bunkerId}: ${result.sizeBytes} bytes stored (${result.format})`);
      return result;
    } finally {
      this.snapshotting.delete(bunkerId);
    }
  }

  private async providerCall(bunkerId: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      throw new WorkerError('IO_ERROR', `${bunkerId}: ${messageOf(err)}`);
    }
  }

  async exec(bunkerId: string, req: ExecRequest, handlers: ExecHandlers): Promise<ExecOutcome> {
    const trace = PhaseTrace.start('exec', bunkerId);
    trace.mark('worker.exec-received');
    const agent = this.bunkers.agentFor(bunkerId);
    const meta = { execId: req.execId ?? newId('ex'), background: false, tag: null, pty: false, stdinOpen: false };
    try {
      const launch = (h: ExecHandlers) =>
        agent.spawn(
          {
            argv: req.argv,
            env: req.env,
            cwd: req.cwd,
            user: req.user,
            timeoutMs: req.timeoutMs,
            stdin: req.stdin,
          },
          h,
        );
      const proc = await this.processes.start(bunkerId, meta, launch, handlers);
      trace.mark('worker.agent-started');
      const outcome = await proc.result;
      trace.mark('worker.agent-exited');
      trace.end();
      return { exitCode: outcome.exitCode, signal: outcome.signal, timedOut: outcome.timedOut, durationMs: outcome.durationMs };
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async startProcess(bunkerId: string, req: StartProcessRequest): Promise<ProcessInfo> {
    const agent = this.bunkers.agentFor(bunkerId);
    const meta = {
      execId: req.execId,
      background: true,
      tag: req.tag ?? null,
      pty: req.pty !== undefined,
      stdinOpen: req.stdin === true || req.pty !== undefined,
    };
    const launch = (h: ExecHandlers) =>
      agent.spawn(
        {
          argv: req.argv,
          env: req.env,
          cwd: req.cwd,
          user: req.user,
          timeoutMs: req.timeoutMs || undefined,
          stdin: meta.stdinOpen ? 'pipe' : undefined,
          pty: req.pty,
        },
        h,
      );
    try {
      return (await this.processes.start(bunkerId, meta, launch)).info();
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async listProcesses(bunkerId: string): Promise<ProcessInfo[]> {
    this.bunkers.assertKnown(bunkerId);
    return this.processes.list(bunkerId);
  }

  async getProcess(bunkerId: string, execId: string): Promise<ProcessInfo> {
    this.bunkers.assertKnown(bunkerId);
    return this.processes.get(bunkerId, execId).info();
  }

  async processEvents(bunkerId: string, execId: string, fromSeq: number, handlers: EventHandlers<ProcessOutput>): Promise<ProcessInfo> {
    this.bunkers.assertKnown(bunkerId);
    return this.processes.get(bunkerId, execId).events(fromSeq, (e) => handlers.onEvent(e), handlers.signal);
  }

  async writeStdin(bunkerId: string, execId: string, data: Readable): Promise<{ bytes: number }> {
    this.bunkers.assertKnown(bunkerId);
    try {
      return await this.processes.get(bunkerId, execId).writeStdin(data);
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async closeStdin(bunkerId: string, execId: string): Promise<void> {
    this.bunkers.assertKnown(bunkerId);
    this.processes.get(bunkerId, execId).closeStdin();
  }

  async signalProcess(bunkerId: string, execId: string, signal: string): Promise<void> {
    this.bunkers.assertKnown(bunkerId);
    this.processes.get(bunkerId, execId).signal(signal);
  }

  async resizeProcess(bunkerId: string, execId: string, cols: number, rows: number): Promise<void> {
    this.bunkers.assertKnown(bunkerId);
    this.processes.get(bunkerId, execId).resize(cols, rows);
  }

  async watchFiles(bunkerId: string, path: string, opts: { recursive?: boolean }, handlers: EventHandlers<WatchEvent>): Promise<void> {
    const agent = this.bunkers.agentFor(bunkerId);
    const watch = agent.watch(path, { recursive: opts.recursive === true }, (e) => handlers.onEvent(e));
    const stop = () => watch.stop();
    handlers.signal?.addEventListener('abort', stop, { once: true });
    try {
      await watch.done;
    } catch (err) {
      throw toWorkerError(err);
    } finally {
      handlers.signal?.removeEventListener('abort', stop);
    }
  }

  /**
   * A byte stream to 127.0.0.1:port inside the bunker: the agent dials it and relays over the
   * channel we hold, so nothing listens in the bunker's network or on this host. At most
   * MAX_TUNNELS_PER_BUNKER at once (each holds a socket in the agent): over it TOO_MANY_TUNNELS.
   */
  async openTunnel(bunkerId: string, port: number): Promise<Duplex> {
    const agent = this.bunkers.agentFor(bunkerId);
    return this.tunnels.add(
      bunkerId,
      () => agent.connectPort(port).catch((err: unknown) => Promise.reject(toWorkerError(err))),
      () => this.bunkers.get(bunkerId)?.agent === agent,
    );
  }

  /**
   * Resolves only once the first chunk (or end of file) arrived, so a missing file is a
   * rejected promise (a clean 404 upstream) rather than a stream that fails later.
   */
  async readFile(bunkerId: string, path: string): Promise<Readable> {
    const agent = this.bunkers.agentFor(bunkerId);
    let iterator: AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer>;
    try {
      iterator = agent.readFile(path)[Symbol.asyncIterator]();
      first = await iterator.next();
    } catch (err) {
      throw toWorkerError(err);
    }
    return Readable.from(continueIteration(first, iterator), { objectMode: false });
  }

  async writeFile(
    bunkerId: string,
    path: string,
    data: Readable,
    opts: { mode?: number; parents?: boolean; maxBytes: number },
  ): Promise<{ bytes: number }> {
    const agent = this.bunkers.agentFor(bunkerId);
    // destroyOnReturn:false — when we stop reading at the cap the caller still owns `data`
    // (an HTTP request body must be drained, not destroyed, to keep its connection usable).
    const source = data.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer | string>;
    const counter = { bytes: 0, overCap: false };
    try {
      return await agent.writeFile(path, capBytes(source, opts.maxBytes, counter), { mode: opts.mode, mkdirParents: opts.parents });
    } catch (err) {
      // The flag, not the error's identity: the agent client may wrap what our source threw.
      if (counter.overCap) {
        throw new WorkerError('TOO_LARGE', `file exceeds ${opts.maxBytes} bytes`);
      }
      throw toWorkerError(err);
    }
  }

  async stat(bunkerId: string, path: string): Promise<FileStatInfo> {
    const agent = this.bunkers.agentFor(bunkerId);
    try {
      return await agent.stat(path);
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async list(bunkerId: string, path: string): Promise<FileStatInfo[]> {
    const agent = this.bunkers.agentFor(bunkerId);
    try {
      return await agent.list(path);
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async mkdir(bunkerId: string, path: string, opts: { parents?: boolean }): Promise<void> {
    const agent = this.bunkers.agentFor(bunkerId);
    try {
      await agent.mkdir(path, { parents: opts.parents });
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async remove(bunkerId: string, path: string, opts: { recursive?: boolean }): Promise<void> {
    const agent = this.bunkers.agentFor(bunkerId);
    try {
      await agent.remove(path, { recursive: opts.recursive });
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  /** Readings of the bunkers asked for that this worker runs; the others (and failed reads) are left out. */
  async stats(bunkerIds: string[]): Promise<Record<string, BunkerStats>> {
    const out: Record<string, BunkerStats> = {};
    await Promise.all(
      [...new Set(bunkerIds)].map(async (id) => {
        const tracked = this.bunkers.get(id);
        if (!tracked || tracked.status === 'stopped') return;
        try {
          out[id] = await tracked.provider.stats(id);
        } catch (err) {
          this.logger.warn(`stats of ${id}: ${messageOf(err)}`);
        }
      }),
    );
    return out;
  }

  // ---------------------------------------------------------------- internals

  private async doSpawn(req: SpawnRequest): Promise<void> {
    const trace = PhaseTrace.start('spawn', req.bunkerId);
    trace.mark('worker.spawn-received');
    const provider = this.opts.providers.find((p) => p.isolation === req.isolation);
    if (!provider) {
      const offered = this.opts.providers.map((p) => p.isolation).join(', ');
      throw new WorkerError('SPAWN_FAILED', `this worker runs ${offered} bunkers, not '${req.isolation}'`);
    }
    if (!SHA256_HEX.test(req.imageSha256)) throw new WorkerError('IMAGE_NOT_CACHED', `not an image sha256: ${req.imageSha256}`);
    await this.host.checkReserve();
    // Checked here too, not only by the controller: a bridge carries one tenant's traffic only.
    if (req.networkProfile === 'transit') {
      if (!req.interfaces?.length) throw new WorkerError('SPAWN_FAILED', 'a transit bunker needs at least one interface');
      for (const i of req.interfaces) {
        const owner = this.opts.networking?.bridgeTenant?.(i.bridgeId);
        if (owner === undefined) throw new WorkerError('SPAWN_FAILED', `this worker has no bridge ${i.bridgeId}`);
        if (owner !== i.tenantId) throw new WorkerError('SPAWN_FAILED', `bridge ${i.bridgeId} belongs to another tenant`);
      }
    } else if (req.interfaces) {
      throw new WorkerError('SPAWN_FAILED', 'interfaces are only for transit bunkers');
    }
    const restore = req.restore;
    if (restore && restore.format !== LAYER_FORMAT[provider.isolation])
      throw new WorkerError(
        'SNAPSHOT_CORRUPT',
        `snapshot ${restore.snapshotId} is a ${restore.format} archive: a ${req.isolation} bunker cannot start from it`,
      );
    // Fetched (from a peer, else storage) when missing; IMAGE_NOT_CACHED when no origin has it.
    const imagePath = (await this.fetchImage(req.imageSha256)).path;
    trace.mark('worker.checks+image');
    let archivePath: string | undefined;
    if (restore) {
      // Room for the compressed size at least, above the reserve (the unpacked size is unknown).
      await this.host.checkReserve(restore.sizeBytes);
      archivePath = await fetchArchive({
        link: this.opts.controller,
        ref: restore,
        bunkerId: req.bunkerId,
        dir: this.restoresDir,
        // a layer never holds much more than its disk (tar headers of many empty files aside)
        maxBytes: (req.diskMb * 2 + 64) * 1048576,
      });
    }

    let agent: AgentClient | null = null;
    try {
      const spawned = await provider.spawn({
        id: req.bunkerId,
        imageSha256: req.imageSha256,
        imagePath,
        cpuMillicores: req.cpuMillicores,
        memoryMb: req.memoryMb,
        diskMb: req.diskMb,
        hostname: req.hostname,
        networkProfile: req.networkProfile,
        networkAllowlist: req.networkAllowlist,
        bandwidthMbit: req.bandwidthMbit,
        interfaces: req.interfaces,
        restore: restore && archivePath ? { archivePath, format: restore.format } : undefined,
      });
      trace.mark('worker.provider-spawned');
      agent = spawned.agent ?? (await AgentClient.connect(spawned.agentSocketPath, { timeoutMs: this.agentConnectTimeoutMs }));
      trace.mark('worker.agent-connected');
      await withTimeout(agent.health(), this.agentConnectTimeoutMs, 'agent health check');
      trace.mark('worker.agent-health');
      this.bunkers.track(req.bunkerId, provider, agent);
      trace.end();
    } catch (err) {
      // Leave nothing half-made behind: the controller will retry elsewhere or fail the bunker.
      agent?.close();
      await provider.destroy(req.bunkerId).catch((e) => this.logger.warn(`cleanup of failed spawn ${req.bunkerId}: ${messageOf(e)}`));
      if (err instanceof ProviderError && err.code === 'SNAPSHOT_CORRUPT') throw new WorkerError('SNAPSHOT_CORRUPT', messageOf(err));
      throw new WorkerError('SPAWN_FAILED', messageOf(err));
    } finally {
      if (archivePath) await rm(archivePath, { force: true }).catch(() => {});
    }
  }

  /** The registry saw a bunker's channel close on its own: the bunker died. */
  private onBunkerDied(bunkerId: string): void {
    this.processes.loseRunning(bunkerId);
    this.logger.warn(`agent channel of ${bunkerId} closed; reporting it stopped`);
    this.opts.onBunkerStopped?.(bunkerId);
  }

  private async sendHeartbeat(): Promise<HeartbeatReply> {
    const reply = await this.opts.controller.heartbeat(await this.buildHeartbeat());
    for (const id of reply.unknown_bridges ?? []) {
      await this.deleteBridge(id).then(
        () => this.logger.info(`removed bridge ${id}: the controller no longer knows it`),
        (err) => this.logger.warn(`removing unknown bridge ${id}: ${messageOf(err)}`),
      );
    }
    const unknown = reply.unknown_bunkers ?? [];
    await Promise.all(
      unknown.map((id) =>
        this.destroy(id).then(
          () => this.logger.info(`destroyed bunker ${id}: the controller no longer knows it`),
          (err) => this.logger.warn(`destroying unknown bunker ${id}: ${messageOf(err)}`),
        ),
      ),
    );
    return reply;
  }

  /** ImageCache.ensure with every failure a WorkerError (a full disk is HOST_DISK_FULL, another local disk error IO_ERROR). */
  private async fetchImage(sha256: string): Promise<{ path: string; source: 'cache' | 'peer' | 'proxy'; bytes: number }> {
    if (!SHA256_HEX.test(sha256)) throw new WorkerError('IMAGE_NOT_CACHED', `not an image sha256: ${sha256}`);
    try {
      return await this.images.ensure(sha256);
    } catch (err) {
      if (err instanceof WorkerError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') throw new WorkerError('HOST_DISK_FULL', `image ${sha256}: no space left to cache it`);
      throw new WorkerError('IO_ERROR', `image ${sha256}: ${messageOf(err)}`);
    }
  }
}
