/**
 * The worker daemon's core: runs bunkers through a Provider, reaches their insides through
 * one AgentClient per bunker, and keeps the controller informed by heartbeat.
 *
 * Bunkers outlive this object: stop() only drops connections, and start() reconnects to
 * whatever the provider still runs — so a worker or controller restart never kills tenant work.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { type Duplex, Readable } from 'node:stream';
import { idPattern, newId, PhaseTrace, SHA256_HEX } from '@scaibunker/core';
import { AgentClient, AgentError } from '../agent/AgentClient.js';
import { ImageCache } from '../images/ImageCache.js';
import { LinkImageOrigins } from '../images/LinkImageOrigins.js';
import { ProcessTable, type ProcessTableOptions } from '../processes/ProcessTable.js';
import type { BunkerNetworking } from '../providers/BunkerNetworking.js';
import { type BunkerStats, LAYER_FORMAT, type Provider, ProviderError } from '../providers/Provider.js';
import { archiveLayer, syncGuest } from '../snapshots/SnapshotArchiver.js';
import { fetchArchive } from '../snapshots/SnapshotRestorer.js';
import { withTimeout } from '../util/withTimeout.js';
import {
  type CachedImageSource,
  type ControllerLink,
  type EventHandlers,
  type ExecHandlers,
  type ExecOutcome,
  type ExecRequest,
  type FileStatInfo,
  type Heartbeat,
  type HeartbeatReply,
  type ProcessInfo,
  type ProcessOutput,
  type SnapshotRequest,
  type SnapshotResult,
  type SpawnRequest,
  type StartProcessRequest,
  type WatchEvent,
  type WorkerApi,
  WorkerError,
  type WorkerErrorCode,
} from '../WorkerApi.js';

export interface WorkerCapacity {
  cpu_millicores: number;
  memory_mb: number;
  disk_mb: number;
}

export interface WorkerLogger {
  info(message: string): void;
  warn(message: string): void;
}

/** The worker-wide part of networking: what providers use, plus reconciliation at start. */
export interface WorkerNetworking extends BunkerNetworking {
  reconcile(live: ReadonlySet<string>): Promise<{ restored: string[]; removed: string[] }>;
  /** Transit bridges (present when the host can make them). */
  createBridge?(bridgeId: string, tenantId: string): Promise<void>;
  deleteBridge?(bridgeId: string): Promise<void>;
  /** Ids of the bridges this worker has. */
  bridgeIds?(): string[];
  /** The tenant a bridge was made for, or undefined when this worker does not have it. */
  bridgeTenant?(bridgeId: string): string | undefined;
}

export interface WorkerOptions {
  /** Holds worker.json (the persisted worker id). */
  dataDir: string;
  /**
   * Holds the cached images as `<sha256>.ext4` (and `.partial/`, downloads in progress). One
   * worker per directory: starting removes the partial downloads it finds.
   */
  imageDir: string;
  /**
   * The worker token, presented to peer workers when fetching an image from them. Without it
   * images are fetched from storage only.
   */
  token?: string;
  /** A peer or storage that sends no image bytes for this long is abandoned (default 30000). */
  imageStallTimeoutMs?: number;
  /** One per isolation this worker offers (e.g. container and microvm). */
  providers: Provider[];
  /** The providers' network plumbing, when this host offers profiles beyond `isolated`. */
  networking?: WorkerNetworking;
  controller: ControllerLink;
  name: string;
  /** How the controller reaches this worker; '' when in-process. */
  url: string;
  /** Default 10000; the controller's `heartbeat_interval_s` reply overrides it. */
  heartbeatIntervalMs?: number;
  /** Default: all CPUs × cpuOvercommit, all RAM, the size of the filesystem holding dataDir. */
  capacity?: WorkerCapacity;
  /**
   * CPU limits are quotas on shared cores, not reservations, so the worker offers more
   * millicores than it has (default 8×).
   */
  cpuOvercommit?: number;
  /**
   * Memory offered per MB of RAM (default 1: never overcommitted). An idle bunker uses a small
   * part of its `memory_mb` limit, so a host of mostly idle bunkers can offer more; past the
   * host's RAM the kernel's OOM killer decides, not the scheduler.
   */
  memoryOvercommit?: number;
  /**
   * Free space kept on the disk holding dataDir (default 256 MiB): under it new bunkers are
   * refused with HOST_DISK_FULL, so running ones keep room to write.
   */
  diskReserveBytes?: number;
  /** Bound on connecting to a fresh bunker's agent and its first health answer (default 10000). */
  agentConnectTimeoutMs?: number;
  /** Bounds of each exec's output journal (spilled under `<dataDir>/journals`). */
  processes?: Omit<ProcessTableOptions, 'spillDir'>;
  logger?: WorkerLogger;
  /**
   * Called when a bunker's agent channel closes on its own (the bunker died). The next
   * heartbeat reports it anyway; this lets an in-process controller react at once.
   */
  onBunkerStopped?(bunkerId: string): void;
}

type BunkerStatus = 'running' | 'paused' | 'stopped';

/** One bunker this worker knows about; `agent` is null once the channel is gone. */
interface TrackedBunker {
  id: string;
  provider: Provider;
  agent: AgentClient | null;
  status: BunkerStatus;
}

const WORKER_ID = new RegExp(idPattern('wk'));

const defaultLogger: WorkerLogger = {
  info: (m) => console.log(`[worker] ${m}`),
  warn: (m) => console.warn(`[worker] ${m}`),
};

export class Worker implements WorkerApi, CachedImageSource {
  private readonly bunkers = new Map<string, TrackedBunker>();
  /** Spawns in flight, so a retried spawn of the same id joins the first one. */
  private readonly spawning = new Map<string, Promise<void>>();
  /** Open port tunnels per bunker (the cap; destroy ends them). */
  private readonly tunnels = new Map<string, Set<Duplex>>();
  private readonly tunnelsConnecting = new Map<string, number>();
  /** The snapshot in flight per bunker (one at a time): pause/resume wait for it, destroy aborts it. */
  private readonly snapshotting = new Map<string, { done: Promise<unknown>; abort: AbortController }>();
  private readonly logger: WorkerLogger;
  private readonly agentConnectTimeoutMs: number;
  /** Owns imageDir: what is cached, fetching what is not, serving peers. */
  readonly images: ImageCache;
  /** Every exec's journaled output, and the background processes to steer. */
  private readonly processes: ProcessTable;
  private heartbeatIntervalMs: number;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  /** Heartbeats are serialised: a tick never overlaps heartbeatNow() or another tick. */
  private heartbeatChain: Promise<unknown> = Promise.resolve();
  private capacity: WorkerCapacity | null;
  private workerId: string | null = null;
  private started = false;

  constructor(private readonly opts: WorkerOptions) {
    this.logger = opts.logger ?? defaultLogger;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 10_000;
    this.agentConnectTimeoutMs = opts.agentConnectTimeoutMs ?? 10_000;
    this.capacity = opts.capacity ?? null;
    this.processes = new ProcessTable({
      ...opts.processes,
      spillDir: join(opts.dataDir, 'journals'),
      // Journals never take the disk below the reserve that keeps bunkers and images going.
      canSpill: async (bytes) => {
        const fs = await statfs(opts.dataDir);
        return fs.bavail * fs.bsize - bytes >= (opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES);
      },
    });
    this.images = new ImageCache({
      imageDir: opts.imageDir,
      origins: new LinkImageOrigins(opts.controller, () => this.id),
      ...(opts.token ? { token: opts.token } : {}),
      selfUrl: opts.url,
      ...(opts.imageStallTimeoutMs !== undefined ? { stallTimeoutMs: opts.imageStallTimeoutMs } : {}),
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
    this.capacity ??= await this.measureCapacity();
    this.workerId = await this.loadOrCreateWorkerId();
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
    await this.reconnectSurvivingBunkers();
    // Before any new work: the surviving bunkers' network rules are back, everything else gone.
    if (this.opts.networking) {
      const { restored, removed } = await this.opts.networking.reconcile(new Set(this.bunkers.keys()));
      if (restored.length || removed.length) this.logger.info(`networks: restored ${restored.length}, removed ${removed.length}`);
    }
    this.started = true;
    // The first heartbeat is awaited so a caller knows the controller has heard of us (or
    // that it could not be reached — logged, retried on the next tick).
    await this.heartbeatNow().catch((err) => this.logger.warn(`first heartbeat failed (retrying next tick): ${messageOf(err)}`));
    this.scheduleHeartbeat();
  }

  /** Stops heartbeats and drops agent connections; bunkers keep running. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
    await this.heartbeatChain.catch(() => {});
    const agents = [...this.bunkers.values()].map((b) => b.agent).filter((a): a is AgentClient => a !== null);
    this.bunkers.clear();
    for (const agent of agents) agent.close();
    for (const p of this.opts.providers) await p.shutdown();
  }

  /**
   * Sends one heartbeat now (serialised with the periodic ones) and applies the reply:
   * bunkers the controller no longer considers alive are destroyed. Rejects if the
   * controller could not be reached; the periodic loop logs and retries instead.
   */
  heartbeatNow(): Promise<HeartbeatReply> {
    const run = this.heartbeatChain.catch(() => {}).then(() => this.sendHeartbeat());
    this.heartbeatChain = run.catch(() => {});
    return run;
  }

  /** What the next heartbeat will carry (exposed for diagnostics and tests). */
  async buildHeartbeat(): Promise<Heartbeat> {
    return {
      worker_id: this.id,
      name: this.opts.name,
      url: this.opts.url,
      isolations: this.opts.providers.map((p) => p.isolation),
      network_profiles: ['isolated', ...(this.opts.networking?.profiles ?? [])],
      capacity: this.capacity ?? (await this.measureCapacity()),
      cached_images: await this.images.list(),
      bridges: this.opts.networking?.bridgeIds?.() ?? [],
      bunkers: [...this.bunkers.values()].map((b) => ({ id: b.id, status: b.status })),
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

  /** Serves a cached image to a peer worker (`GET /v1/images/{sha256}`). */
  openCachedImage(sha256: string): Promise<{ stream: Readable; bytes: number }> {
    return this.images.openCached(sha256);
  }

  async destroy(bunkerId: string): Promise<void> {
    await this.spawning.get(bunkerId)?.catch(() => {});
    // A snapshot in flight fails (nothing stored) and thaws the bunker before it goes.
    const snap = this.snapshotting.get(bunkerId);
    if (snap) {
      snap.abort.abort(new Error(`bunker ${bunkerId} is being destroyed`));
      await snap.done.catch(() => {});
    }
    const tracked = this.bunkers.get(bunkerId);
    // Forget it first so the channel closing below is not mistaken for the bunker dying.
    this.bunkers.delete(bunkerId);
    tracked?.agent?.close();
    // Closing the channel already fails every tunnel (CHANNEL_CLOSED); this also covers one
    // whose connect was still in flight.
    for (const t of this.tunnels.get(bunkerId) ?? []) t.destroy();
    this.tunnels.delete(bunkerId);
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
    const tracked = this.trackedRunning(bunkerId, 'running');
    await this.providerCall(bunkerId, () => tracked.provider.pause(bunkerId));
    tracked.status = 'paused';
  }

  async resume(bunkerId: string): Promise<void> {
    await this.snapshotting.get(bunkerId)?.done.catch(() => {});
    const tracked = this.trackedRunning(bunkerId, 'paused');
    await this.providerCall(bunkerId, () => tracked.provider.resume(bunkerId));
    tracked.status = 'running';
  }

  /**
   * Archives the bunker's writable layer into storage (see SnapshotArchiver): frozen while its
   * files are read, running again afterwards. One at a time per bunker.
   */
  async snapshot(bunkerId: string, req: SnapshotRequest): Promise<SnapshotResult> {
    const tracked = this.trackedRunning(bunkerId, 'running');
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

  private trackedRunning(bunkerId: string, expected: BunkerStatus): TrackedBunker {
    const tracked = this.bunkers.get(bunkerId);
    if (!tracked || tracked.status === 'stopped') throw new WorkerError('BUNKER_NOT_FOUND', `no running bunker ${bunkerId} on this worker`);
    if (tracked.status !== expected) throw new WorkerError('INVALID_STATE', `bunker ${bunkerId} is ${tracked.status}`);
    return tracked;
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
    const agent = this.agentFor(bunkerId);
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
            ...(req.stdin !== undefined ? { stdin: req.stdin } : {}),
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
    const agent = this.agentFor(bunkerId);
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
          ...(meta.stdinOpen ? { stdin: 'pipe' as const } : {}),
          ...(req.pty ? { pty: req.pty } : {}),
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
    this.knownBunker(bunkerId);
    return this.processes.list(bunkerId);
  }

  async getProcess(bunkerId: string, execId: string): Promise<ProcessInfo> {
    this.knownBunker(bunkerId);
    return this.processes.get(bunkerId, execId).info();
  }

  async processEvents(bunkerId: string, execId: string, fromSeq: number, handlers: EventHandlers<ProcessOutput>): Promise<ProcessInfo> {
    this.knownBunker(bunkerId);
    return this.processes.get(bunkerId, execId).events(fromSeq, (e) => handlers.onEvent(e), handlers.signal);
  }

  async writeStdin(bunkerId: string, execId: string, data: Readable): Promise<{ bytes: number }> {
    this.knownBunker(bunkerId);
    try {
      return await this.processes.get(bunkerId, execId).writeStdin(data);
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async closeStdin(bunkerId: string, execId: string): Promise<void> {
    this.knownBunker(bunkerId);
    this.processes.get(bunkerId, execId).closeStdin();
  }

  async signalProcess(bunkerId: string, execId: string, signal: string): Promise<void> {
    this.knownBunker(bunkerId);
    this.processes.get(bunkerId, execId).signal(signal);
  }

  async resizeProcess(bunkerId: string, execId: string, cols: number, rows: number): Promise<void> {
    this.knownBunker(bunkerId);
    this.processes.get(bunkerId, execId).resize(cols, rows);
  }

  async watchFiles(bunkerId: string, path: string, opts: { recursive?: boolean }, handlers: EventHandlers<WatchEvent>): Promise<void> {
    const agent = this.agentFor(bunkerId);
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

  /** BUNKER_NOT_FOUND unless this worker runs (or ran, and still journals) the bunker. */
  private knownBunker(bunkerId: string): void {
    if (!this.bunkers.has(bunkerId)) throw new WorkerError('BUNKER_NOT_FOUND', `no bunker ${bunkerId} on this worker`);
  }

  /**
   * A byte stream to 127.0.0.1:port inside the bunker: the agent dials it and relays over the
   * channel we hold, so nothing listens in the bunker's network or on this host. At most
   * MAX_TUNNELS_PER_BUNKER at once (each holds a socket in the agent): over it TOO_MANY_TUNNELS.
   */
  async openTunnel(bunkerId: string, port: number): Promise<Duplex> {
    const agent = this.agentFor(bunkerId);
    let open = this.tunnels.get(bunkerId);
    if (!open) {
      open = new Set();
      this.tunnels.set(bunkerId, open);
    }
    // Connects in flight count too: a burst must not get past the cap.
    if (open.size + (this.tunnelsConnecting.get(bunkerId) ?? 0) >= MAX_TUNNELS_PER_BUNKER) {
      throw new WorkerError('TOO_MANY_TUNNELS', `bunker ${bunkerId} already has ${MAX_TUNNELS_PER_BUNKER} open tunnels`);
    }
    this.tunnelsConnecting.set(bunkerId, (this.tunnelsConnecting.get(bunkerId) ?? 0) + 1);
    let tunnel: Duplex;
    try {
      tunnel = await agent.connectPort(port);
    } catch (err) {
      throw toWorkerError(err);
    } finally {
      const n = (this.tunnelsConnecting.get(bunkerId) ?? 1) - 1;
      if (n) this.tunnelsConnecting.set(bunkerId, n);
      else this.tunnelsConnecting.delete(bunkerId);
    }
    const set = this.tunnels.get(bunkerId);
    if (!set || this.bunkers.get(bunkerId)?.agent !== agent) {
      tunnel.destroy(); // the bunker was destroyed while we connected
      throw new WorkerError('CHANNEL_CLOSED', `bunker ${bunkerId} went away while the tunnel connected`);
    }
    set.add(tunnel);
    tunnel.once('close', () => set.delete(tunnel));
    return tunnel;
  }

  /**
   * Resolves only once the first chunk (or end of file) arrived, so a missing file is a
   * rejected promise (a clean 404 upstream) rather than a stream that fails later.
   */
  async readFile(bunkerId: string, path: string): Promise<Readable> {
    const agent = this.agentFor(bunkerId);
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
    const agent = this.agentFor(bunkerId);
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
    const agent = this.agentFor(bunkerId);
    try {
      return await agent.stat(path);
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async list(bunkerId: string, path: string): Promise<FileStatInfo[]> {
    const agent = this.agentFor(bunkerId);
    try {
      return await agent.list(path);
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async mkdir(bunkerId: string, path: string, opts: { parents?: boolean }): Promise<void> {
    const agent = this.agentFor(bunkerId);
    try {
      await agent.mkdir(path, { parents: opts.parents });
    } catch (err) {
      throw toWorkerError(err);
    }
  }

  async remove(bunkerId: string, path: string, opts: { recursive?: boolean }): Promise<void> {
    const agent = this.agentFor(bunkerId);
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
    await this.checkDiskReserve();
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
      await this.checkDiskReserve(restore.sizeBytes);
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
        ...(req.networkAllowlist ? { networkAllowlist: req.networkAllowlist } : {}),
        ...(req.bandwidthMbit !== undefined ? { bandwidthMbit: req.bandwidthMbit } : {}),
        ...(req.interfaces ? { interfaces: req.interfaces } : {}),
        ...(restore && archivePath ? { restore: { archivePath, format: restore.format } } : {}),
      });
      trace.mark('worker.provider-spawned');
      agent = spawned.agent ?? (await AgentClient.connect(spawned.agentSocketPath, { timeoutMs: this.agentConnectTimeoutMs }));
      trace.mark('worker.agent-connected');
      await withTimeout(agent.health(), this.agentConnectTimeoutMs, 'agent health check');
      trace.mark('worker.agent-health');
      this.track(req.bunkerId, provider, agent);
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

  private track(id: string, provider: Provider, agent: AgentClient | null): void {
    const tracked: TrackedBunker = { id, provider, agent, status: agent ? 'running' : 'stopped' };
    this.bunkers.set(id, tracked);
    agent?.closed.then(
      () => this.onAgentClosed(tracked),
      () => this.onAgentClosed(tracked),
    );
  }

  /** A channel that closes while we still track the bunker means the bunker died. */
  private onAgentClosed(tracked: TrackedBunker): void {
    if (this.bunkers.get(tracked.id) !== tracked) return; // destroyed or worker stopped: expected
    tracked.agent = null;
    tracked.status = 'stopped';
    this.processes.loseRunning(tracked.id);
    this.logger.warn(`agent channel of ${tracked.id} closed; reporting it stopped`);
    this.opts.onBunkerStopped?.(tracked.id);
  }

  private agentFor(bunkerId: string): AgentClient {
    const tracked = this.bunkers.get(bunkerId);
    if (!tracked) throw new WorkerError('BUNKER_NOT_FOUND', `no bunker ${bunkerId} on this worker`);
    if (!tracked.agent) throw new WorkerError('CHANNEL_CLOSED', `bunker ${bunkerId} is not running`);
    return tracked.agent;
  }

  private async reconnectSurvivingBunkers(): Promise<void> {
    for (const provider of this.opts.providers) {
      const survivors = await provider.list();
      await Promise.all(
        survivors.map(async (b) => {
          if (!b.running) {
            this.track(b.id, provider, null); // reported stopped; the controller decides its fate
            return;
          }
          try {
            // HELLO first: a VM's agent drops bytes sent before it noticed our predecessor left
            const agent = await AgentClient.connect(b.agentSocketPath, { timeoutMs: this.agentConnectTimeoutMs, awaitHello: true });
            await withTimeout(agent.health(), this.agentConnectTimeoutMs, 'agent health check').catch((err) => {
              agent.close();
              throw err;
            });
            this.track(b.id, provider, agent);
            this.logger.info(`reconnected to ${provider.isolation} bunker ${b.id}`);
          } catch (err) {
            this.logger.warn(`could not reconnect to bunker ${b.id}: ${messageOf(err)}`);
            this.track(b.id, provider, null);
          }
        }),
      );
    }
  }

  private async sendHeartbeat(): Promise<HeartbeatReply> {
    const reply = await this.opts.controller.heartbeat(await this.buildHeartbeat());
    if (reply.heartbeat_interval_s > 0) this.heartbeatIntervalMs = reply.heartbeat_interval_s * 1000;
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

  private scheduleHeartbeat(): void {
    if (!this.started) return;
    this.heartbeatTimer = setTimeout(() => {
      this.heartbeatNow()
        .catch((err) => this.logger.warn(`heartbeat failed (retrying next tick): ${messageOf(err)}`))
        .finally(() => this.scheduleHeartbeat());
    }, this.heartbeatIntervalMs);
    // The daemon is kept alive by its server; a pending heartbeat alone should not be.
    this.heartbeatTimer.unref();
  }

  /** HOST_DISK_FULL when the data disk has less free space than the reserve (plus `needBytes` about to be written). */
  private async checkDiskReserve(needBytes = 0): Promise<void> {
    const reserve = this.opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES;
    const fs = await statfs(this.opts.dataDir);
    const free = fs.bavail * fs.bsize;
    if (free - needBytes < reserve) {
      const what = needBytes ? ` (${needBytes} more needed)` : '';
      throw new WorkerError(
        'HOST_DISK_FULL',
        `this worker's disk has ${free} bytes free${what}, under its reserve of ${reserve}: no new bunkers`,
      );
    }
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

  private async measureCapacity(): Promise<WorkerCapacity> {
    const fs = await statfs(this.opts.dataDir);
    return {
      cpu_millicores: Math.floor(cpus().length * 1000 * (this.opts.cpuOvercommit ?? 8)),
      memory_mb: Math.floor((totalmem() / (1024 * 1024)) * (this.opts.memoryOvercommit ?? 1)),
      disk_mb: Math.floor((fs.blocks * fs.bsize) / (1024 * 1024)),
    };
  }

  private async loadOrCreateWorkerId(): Promise<string> {
    const file = join(this.opts.dataDir, 'worker.json');
    try {
      const saved = JSON.parse(await readFile(file, 'utf8')) as { worker_id?: unknown };
      if (typeof saved.worker_id === 'string' && WORKER_ID.test(saved.worker_id)) return saved.worker_id;
      throw new Error(`${file} holds no valid worker_id`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const id = newId('wk');
    // Write-then-rename so a crash never leaves a half-written identity behind.
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ worker_id: id }, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, file);
    return id;
  }
}

// ---------------------------------------------------------------- helpers

const DEFAULT_DISK_RESERVE_BYTES = 256 * 1024 * 1024;
/** Concurrent port tunnels per bunker (the agent caps a connection at 256 too). */
export const MAX_TUNNELS_PER_BUNKER = 256;

const PASSTHROUGH_AGENT_CODES = new Set<WorkerErrorCode>([
  'NOT_FOUND',
  'NOT_A_DIRECTORY',
  'IS_A_DIRECTORY',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'NOT_EMPTY',
  'INVALID_PATH',
  'NO_SPACE',
  'IO_ERROR',
  'CHANNEL_CLOSED',
  'PORT_NOT_LISTENING',
]);

/** AgentError codes keep their name across the boundary; anything else is an IO_ERROR. */
function toWorkerError(err: unknown): WorkerError {
  if (err instanceof WorkerError) return err;
  if (err instanceof AgentError) {
    const code = err.code as WorkerErrorCode;
    if (PASSTHROUGH_AGENT_CODES.has(code)) return new WorkerError(code, err.message);
    // Could not (re)open the channel: to a caller that is the same as a closed one.
    if (err.code === 'CONNECT_TIMEOUT' || err.code === 'CONNECT_FAILED') return new WorkerError('CHANNEL_CLOSED', err.message);
    return new WorkerError('IO_ERROR', err.message);
  }
  return new WorkerError('IO_ERROR', messageOf(err));
}

function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const details = (err as { details?: unknown }).details;
    return typeof details === 'string' && details ? `${err.message}: ${details.trim()}` : err.message;
  }
  return String(err);
}

/** Passes chunks through, throwing (so the write is aborted) once more than `maxBytes` went by. */
async function* capBytes(
  source: AsyncIterable<Buffer | string>,
  maxBytes: number,
  counter: { bytes: number; overCap: boolean },
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    counter.bytes += buf.length;
    if (counter.bytes > maxBytes) {
      counter.overCap = true;
      throw new Error(`upload exceeds ${maxBytes} bytes`);
    }
    yield buf;
  }
}

/** Re-yields an iterator whose first result was already pulled, mapping agent errors. */
async function* continueIteration(first: IteratorResult<Buffer>, iterator: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  let finished = first.done === true;
  try {
    if (finished) return;
    yield first.value;
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await iterator.next();
      } catch (err) {
        finished = true;
        throw toWorkerError(err);
      }
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // The reader went away early (consumer destroyed the stream): cancel the agent's read.
    if (!finished) await iterator.return?.().catch(() => {});
  }
}
