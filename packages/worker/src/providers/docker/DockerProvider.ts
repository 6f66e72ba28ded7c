import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { onceUntilSuccess } from '../../util/onceUntilSuccess.js';
import { BunkerLifecycle, type DestroyStep } from '../BunkerLifecycle.js';
import { HostMounts } from '../container/HostMounts.js';
import { HostShell } from '../container/HostShell.js';
import { gnuTar, tarCreateArgs, tarExtractArgs } from '../container/layerTar.js';
import { AGENT_SOCKET_NAME, DEFAULT_PIDS_LIMIT, hostNofileHardLimit } from '../container/OciBundle.js';
import type { SeccompProfile } from '../container/seccompProfile.js';
import { commandInto } from '../host/layerStreams.js';
import { runCommand } from '../host/runCommand.js';
import {
  type BunkerSpec,
  type BunkerStats,
  type Isolation,
  type LayerFormat,
  type Provider,
  ProviderError,
  type SpawnedBunker,
} from '../Provider.js';
import { validateSpec } from '../validateSpec.js';
import { DockerEngine, demuxLogs, engineMessage, qs } from './DockerEngine.js';
import { DockerImages } from './DockerImages.js';
import { BUNKER_LABEL, dockerContainerConfig, OWNER_LABEL } from './dockerContainerConfig.js';

export interface DockerProviderOptions {
  /** Holds bunkers/<id>/run (the agent socket dirs) and tmp/; keep it short (socket paths < 108 bytes). */
  dataDir: string;
  /** The daemon's socket: `unix:///path/docker.sock`. */
  dockerHost: string;
  /** Bound on spawn() waiting for the agent socket (default 15 s). */
  spawnTimeoutMs?: number;
  /** Seccomp profile; default the built-in one; null: Docker's own default profile. */
  seccomp?: SeccompProfile | null;
}

interface ContainerInspect {
  Id: string;
  State: { Status: string; Running: boolean; Paused: boolean; Pid: number; ExitCode: number; Error?: string };
  Config: { Labels?: Record<string, string> };
  GraphDriver?: { Name: string; Data?: Record<string, string> };
  SizeRw?: number;
}

/**
 * Runs bunkers as Docker containers through the Engine API on a Unix socket (no docker CLI):
 * our ext4 images are imported once per sha256 (DockerImages), each bunker is one container
 * labelled `scaibunker.bunker=<id>` and `scaibunker.owner=<hash of dataDir>` (two workers may
 * share one daemon), running the agent as PID 1 listening in `bunkers/<id>/run`, bind-mounted
 * at /.scaibunker/run as with crun. Limits and hardening: see dockerContainerConfig. A worker
 * restart finds its containers again by label.
 *
 * Differences from the crun provider (docs/ARCHITECTURE.md, The Docker runtime): only the
 * `isolated` network profile; disk_mb bounds the writable layer only where the storage driver
 * takes a size (overlay2 on xfs with pquota, btrfs, zfs) — elsewhere only /tmp is bounded;
 * snapshots need the overlay2 driver (its upper dir is the layer, same tar format as crun's).
 */
export class DockerProvider implements Provider {
  readonly isolation: Isolation = 'container';
  readonly dataDir: string;
  readonly bunkersDir: string;
  readonly engine: DockerEngine;
  /** Label value marking this provider's containers (a hash of its dataDir). */
  readonly owner: string;
  private readonly opts: DockerProviderOptions;
  private readonly shell: HostShell;
  private readonly images: DockerImages;
  /** The per-id lock, id check, spawn preamble and destroy semantics shared with the other providers. */
  private readonly life: BunkerLifecycle;
  private nofile = 65536;
  /** Whether the storage driver takes a size limit; unknown until the first spawn tries. */
  private diskQuota: boolean | undefined;
  private info: { version: string; driver: string } = { version: '', driver: '' };

  constructor(opts: DockerProviderOptions) {
    this.opts = opts;
    // No init before a destroy (the daemon answers for the containers, or nothing can be done)
    // and no networking: docker bunkers are `isolated` only.
    this.life = new BunkerLifecycle({ isolation: this.isolation });
    this.dataDir = opts.dataDir.replace(/\/+$/, '');
    this.bunkersDir = join(this.dataDir, 'bunkers');
    this.engine = new DockerEngine(opts.dockerHost);
    this.owner = createHash('sha256').update(this.dataDir).digest('hex').slice(0, 12);
    this.shell = new HostShell(join(this.dataDir, 'tmp'));
    this.images = new DockerImages(this.engine, new HostMounts(this.shell), join(this.dataDir, 'tmp'), gnuTar);
  }

  /** The container's name: unique per worker and bunker. */
  containerName(id: string): string {
    return `sb-${this.owner.slice(0, 8)}-${id}`;
  }

  bunkerDir(id: string): string {
    return join(this.bunkersDir, id);
  }

  /** Whether the writable layer's size is enforced by the storage driver (after a first spawn). */
  get diskLimitEnforced(): boolean | undefined {
    return this.diskQuota;
  }

  private socketPath(id: string): string {
    return join(this.bunkersDir, id, 'run', AGENT_SOCKET_NAME);
  }

  // ------------------------------------------------------------------ init

  readonly init: () => Promise<void> = onceUntilSuccess(() => this.doInit());

  private async doInit(): Promise<void> {
    for (const d of [this.dataDir, this.bunkersDir, join(this.dataDir, 'tmp')]) mkdirSync(d, { recursive: true, mode: 0o711 });
    this.nofile = Math.min(65536, hostNofileHardLimit() ?? 65536);
    let version: { Version?: string; ApiVersion?: string };
    let info: { Driver?: string; OSType?: string };
    try {
      version = (await this.engine.must<typeof version>('GET', '/version', { timeoutMs: 10_000 })).body;
      info = (await this.engine.must<typeof info>('GET', '/info', { timeoutMs: 10_000 })).body;
    } catch (e) {
      throw new ProviderError('RUNTIME_UNAVAILABLE', `docker daemon at ${this.opts.dockerHost} not usable: ${(e as Error).message}`);
    }
    if (info.OSType && info.OSType !== 'linux')
      throw new ProviderError('RUNTIME_UNAVAILABLE', `docker daemon runs ${info.OSType} containers`);
    this.info = { version: version.Version ?? '?', driver: info.Driver ?? '?' };
  }

  // ------------------------------------------------------------------ spawn

  async spawn(spec: BunkerSpec): Promise<SpawnedBunker> {
    await this.init();
    return this.life.spawn(spec, {
      validate: (s) =>
        validateSpec(
          s,
          { minMemoryMb: 16, provider: 'docker', socketPaths: [this.socketPath(s.id)], networkProfiles: ['isolated'] },
          s.pidsLimit ?? DEFAULT_PIDS_LIMIT,
        ),
      exists: async (id) => existsSync(this.bunkerDir(id)) || (await this.inspect(id)) !== undefined,
      create: (s) => this.spawnLocked(s),
    });
  }

  private async spawnLocked(spec: BunkerSpec): Promise<SpawnedBunker> {
    const dir = this.bunkerDir(spec.id);
    const run = join(dir, 'run');
    const name = this.containerName(spec.id);
    const restore = spec.restore;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(run, { mode: 0o700 });
      writeFileSync(join(dir, 'bunker.json'), JSON.stringify({ id: spec.id, imageSha256: spec.imageSha256, container: name }));
      const image = await this.images.ensure(spec.imageSha256, spec.imagePath);
      await this.create(spec, image, run);
      if (restore) await this.unpackLayer(spec, restore.archivePath);
      const started = await this.engine.call('POST', `/containers/${name}/start`);
      if (started.status !== 204 && started.status !== 304)
        throw new ProviderError('SPAWN_FAILED', `docker start: ${started.status} ${engineMessage(started)}`);
      await this.waitForAgent(spec.id, this.opts.spawnTimeoutMs ?? 15_000);
      const pid = (await this.inspect(spec.id))?.State.Pid ?? 0;
      return { id: spec.id, agentSocketPath: this.socketPath(spec.id), pid };
    } catch (e) {
      const logs = await this.logs(spec.id).catch(() => '');
      await this.destroyLocked(spec.id).catch(() => {});
      if (e instanceof ProviderError) throw new ProviderError(e.code, e.message, e.details ?? (logs || undefined));
      throw new ProviderError('SPAWN_FAILED', `spawn ${spec.id} failed: ${(e as Error).message}`, logs || undefined);
    }
  }

  /** Creates the container; learns on the first try whether the storage driver takes a size. */
  private async create(spec: BunkerSpec, image: string, run: string): Promise<void> {
    const body = (diskQuota: boolean) =>
      dockerContainerConfig({
        id: spec.id,
        image,
        imageSha256: spec.imageSha256,
        owner: this.owner,
        hostname: spec.hostname,
        agentRunDir: run,
        cpuMillicores: spec.cpuMillicores,
        memoryMb: spec.memoryMb,
        diskMb: spec.diskMb,
        pidsLimit: spec.pidsLimit ?? DEFAULT_PIDS_LIMIT,
        nofile: this.nofile,
        diskQuota,
        ...(this.opts.seccomp !== undefined ? { seccomp: this.opts.seccomp } : {}),
      });
    const path = `/containers/create${qs({ name: this.containerName(spec.id) })}`;
    let r = await this.engine.call('POST', path, { body: body(this.diskQuota !== false) });
    if (r.status >= 400 && this.diskQuota === undefined && /storage.?opt|quota|size/i.test(engineMessage(r))) {
      this.diskQuota = false;
      r = await this.engine.call('POST', path, { body: body(false) });
    } else if (r.status < 300 && this.diskQuota === undefined) this.diskQuota = true;
    if (r.status === 404 && /No such image/i.test(engineMessage(r))) this.images.forget(spec.imageSha256);
    if (r.status === 409) throw new ProviderError('SPAWN_FAILED', `bunker ${spec.id} already exists (${engineMessage(r)})`);
    if (r.status >= 300) throw new ProviderError('SPAWN_FAILED', `docker create: ${r.status} ${engineMessage(r)}`);
  }

  /** A restore: the archived upper dir unpacked into the new container's overlay2 upper dir before it starts. */
  private async unpackLayer(spec: BunkerSpec, archive: string): Promise<void> {
    const upper = await this.upperDir(spec.id);
    const r = await runCommand(await gnuTar(), tarExtractArgs(archive, upper), { timeoutMs: 600_000 });
    if (r.code !== 0) {
      if (/No space left on device|Wrote only \d+ of \d+ bytes/i.test(r.stderr))
        throw new ProviderError('SPAWN_FAILED', `the snapshot does not fit the bunker's disk (disk_mb ${spec.diskMb})`);
      throw new ProviderError('SNAPSHOT_CORRUPT', `unpacking the snapshot failed (exit ${r.code}): ${r.stderr.trim().slice(0, 1000)}`);
    }
  }

  /** The container's writable layer on the host (overlay2 only). */
  private async upperDir(id: string): Promise<string> {
    const c = await this.inspect(id);
    if (!c) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    const upper = c.GraphDriver?.Data?.UpperDir;
    if (c.GraphDriver?.Name !== 'overlay2' || !upper || !existsSync(upper))
      throw new ProviderError(
        'RUNTIME_UNAVAILABLE',
        `snapshots of docker bunkers need the overlay2 storage driver on this host (daemon uses ${c.GraphDriver?.Name ?? '?'})`,
      );
    return upper;
  }

  private async waitForAgent(id: string, timeoutMs: number): Promise<void> {
    const sock = this.socketPath(id);
    const deadline = Date.now() + timeoutMs;
    let lastCheck = 0;
    while (!existsSync(sock)) {
      if (Date.now() > deadline) throw new ProviderError('SPAWN_FAILED', `agent socket did not appear within ${timeoutMs} ms`);
      if (Date.now() - lastCheck > 250) {
        lastCheck = Date.now();
        const c = await this.inspect(id);
        if (!c || (!c.State.Running && !c.State.Paused))
          throw new ProviderError(
            'SPAWN_FAILED',
            `agent exited before creating its socket (exit ${c?.State.ExitCode ?? '?'}${c?.State.Error ? `: ${c.State.Error}` : ''})`,
          );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async inspect(id: string, size = false): Promise<ContainerInspect | undefined> {
    const r = await this.engine.call<ContainerInspect>('GET', `/containers/${this.containerName(id)}/json${size ? '?size=1' : ''}`);
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new ProviderError('RUNTIME_UNAVAILABLE', `docker inspect: ${r.status} ${engineMessage(r)}`);
    if (r.body.Config?.Labels?.[OWNER_LABEL] !== this.owner) return undefined; // a stranger's container of that name
    return r.body;
  }

  /** The container's stdout/stderr (the agent's diagnostics), demultiplexed, last 4000 chars. */
  private async logs(id: string): Promise<string> {
    const r = await this.engine.call('GET', `/containers/${this.containerName(id)}/logs?stdout=1&stderr=1&tail=100`, { timeoutMs: 5000 });
    if (r.status !== 200) return '';
    return demuxLogs(r.raw).trim().slice(-4000);
  }

  // ------------------------------------------------------------------ destroy

  destroy(id: string): Promise<void> {
    return this.life.destroy(id, () => this.destroySteps(id));
  }

  /** Under the bunker's lock (a failed spawn cleaning up after itself). */
  private async destroyLocked(id: string): Promise<void> {
    await this.life.runDestroySteps(id, this.destroySteps(id));
  }

  /** What destroying a bunker takes, in order; BunkerLifecycle runs every step and reports each failure. */
  private destroySteps(id: string): DestroyStep[] {
    return [
      {
        step: 'container',
        run: async () => {
          if (!(await this.inspect(id))) return;
          // force: kills it (also when paused) and removes it with its writable layer and anonymous volumes
          const r = await this.engine.call('DELETE', `/containers/${this.containerName(id)}?force=1&v=1`, { timeoutMs: 60_000 });
          if (r.status !== 204 && r.status !== 404) throw new Error(`docker rm: ${r.status} ${engineMessage(r)}`);
        },
      },
      { step: 'files', run: () => rm(this.bunkerDir(id), { recursive: true, force: true }) },
    ];
  }

  // ------------------------------------------------------------------ pause / resume / stats

  private async require(id: string): Promise<ContainerInspect> {
    await this.init();
    const c = this.life.isBunkerId(id) ? await this.inspect(id) : undefined;
    if (!c) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    return c;
  }

  async pause(id: string): Promise<void> {
    const c = await this.require(id);
    if (c.State.Paused) return;
    const r = await this.engine.call('POST', `/containers/${this.containerName(id)}/pause`);
    if (r.status === 404) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    if (r.status !== 204 && !/already paused/i.test(engineMessage(r))) throw new Error(`docker pause: ${r.status} ${engineMessage(r)}`);
  }

  async resume(id: string): Promise<void> {
    const c = await this.require(id);
    if (!c.State.Paused) return;
    const r = await this.engine.call('POST', `/containers/${this.containerName(id)}/unpause`);
    if (r.status === 404) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    if (r.status !== 204 && !/not paused/i.test(engineMessage(r))) throw new Error(`docker unpause: ${r.status} ${engineMessage(r)}`);
  }

  async isPaused(id: string): Promise<boolean> {
    return (await this.require(id)).State.Paused;
  }

  async stats(id: string): Promise<BunkerStats> {
    await this.require(id);
    const name = this.containerName(id);
    const [s, sized] = await Promise.all([
      this.engine.call<{
        cpu_stats?: { cpu_usage?: { total_usage?: number } };
        memory_stats?: { usage?: number };
        pids_stats?: { current?: number };
      }>('GET', `/containers/${name}/stats?stream=0&one-shot=1`, { timeoutMs: 10_000 }),
      this.inspect(id, true),
    ]);
    if (s.status === 404 || !sized) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    if (s.status !== 200) throw new Error(`docker stats: ${s.status} ${engineMessage(s)}`);
    return {
      cpuUsageNs: s.body.cpu_stats?.cpu_usage?.total_usage ?? 0,
      memoryBytes: s.body.memory_stats?.usage ?? 0,
      pids: s.body.pids_stats?.current ?? 0,
      ...(sized.SizeRw !== undefined ? { diskUsedBytes: sized.SizeRw } : {}),
    };
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * The container's overlay2 upper dir as a GNU tar (same format as the crun provider's:
   * whiteouts as 0:0 char devices, opaque dirs as trusted.overlay xattrs), read while the
   * container is paused. Other storage drivers: RUNTIME_UNAVAILABLE.
   */
  async writeLayer(id: string, out: Writable): Promise<LayerFormat> {
    await this.require(id);
    const tar = await gnuTar();
    return this.life.withLock(id, async (): Promise<LayerFormat> => {
      const upper = await this.upperDir(id);
      const wasPaused = await this.isPaused(id);
      if (!wasPaused) await this.pause(id);
      let failed = false;
      try {
        await commandInto(tar, tarCreateArgs(upper), out, `tar of ${id}'s writable layer`);
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        if (!wasPaused) {
          const resumed = this.resume(id);
          if (failed) await resumed.catch(() => {});
          else await resumed;
        }
      }
      return 'container-tar';
    });
  }

  // ------------------------------------------------------------------ list / health

  async list(): Promise<Array<{ id: string; running: boolean; agentSocketPath: string }>> {
    await this.init();
    const filters = JSON.stringify({ label: [`${OWNER_LABEL}=${this.owner}`, BUNKER_LABEL] });
    const r = await this.engine.must<Array<{ State: string; Labels?: Record<string, string> }>>(
      'GET',
      `/containers/json${qs({ all: '1', filters })}`,
    );
    const out: Array<{ id: string; running: boolean; agentSocketPath: string }> = [];
    for (const c of r.body) {
      const id = c.Labels?.[BUNKER_LABEL];
      if (!id || !this.life.isBunkerId(id)) continue;
      const sock = this.socketPath(id);
      out.push({ id, running: (c.State === 'running' || c.State === 'paused') && existsSync(sock), agentSocketPath: sock });
    }
    return out;
  }

  async health(): Promise<{ ok: boolean; runtime: string; details?: string }> {
    try {
      await this.init();
      const ping = await this.engine.call('GET', '/_ping', { timeoutMs: 5000 });
      const quota =
        this.diskQuota === undefined
          ? 'disk quota untested'
          : this.diskQuota
            ? 'disk quota enforced'
            : 'disk quota not supported (only /tmp bounded)';
      return {
        ok: ping.status === 200,
        runtime: `docker ${this.info.version}`,
        details: `${this.opts.dockerHost}; storage ${this.info.driver}; ${quota}`,
      };
    } catch (e) {
      const err = e as ProviderError;
      return { ok: false, runtime: 'docker', details: [err.message, err.details].filter(Boolean).join(': ') };
    }
  }

  /** Nothing to release: containers keep running in the daemon and images stay imported. */
  async shutdown(): Promise<void> {
    this.shell.close();
  }
}
