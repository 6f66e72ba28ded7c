import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm, statfs } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Writable } from 'node:stream';
import { PhaseTrace } from '@scaibunker/core';
import { onceUntilSuccess } from '../../util/onceUntilSuccess.js';
import { BunkerLifecycle, type DestroyStep } from '../BunkerLifecycle.js';
import type { BunkerNetworking } from '../BunkerNetworking.js';
import { CgroupBunkerControl } from '../host/CgroupBunkerControl.js';
import { Cgroups } from '../host/Cgroups.js';
import { commandInto } from '../host/layerStreams.js';
import { processAlive, processInCgroup, readPid } from '../host/processes.js';
import { SocketWaiter } from '../host/SocketWaiter.js';
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
import { devTemplateScript } from './devTemplate.js';
import { HostMounts } from './HostMounts.js';
import { HostShell, shq } from './HostShell.js';
import { ImageMounts } from './ImageMounts.js';
import { gnuTar, tarCreateArgs, tarExtractArgs } from './layerTar.js';
import { AGENT_SOCKET_NAME, buildOciConfig, DEFAULT_PIDS_LIMIT, hostNofileHardLimit, type OciBundleOptions } from './OciBundle.js';
import { OciRuntime, type RuntimeName } from './OciRuntime.js';
import type { SeccompProfile } from './seccompProfile.js';

export interface ContainerProviderOptions {
  /** Root of everything this provider creates (images/, bunkers/, state/). Keep it short: socket paths must stay < 108 bytes. */
  dataDir: string;
  /** Force one runtime; default: crun, falling back to runc when crun is unusable. */
  runtime?: RuntimeName | undefined;
  /** Bound on spawn() waiting for the agent socket (default 10 s). */
  spawnTimeoutMs?: number;
  /** Keep an image mounted after its last bunker is destroyed (default true; see ImageMounts). */
  keepIdleImages?: boolean;
  /** Seccomp profile; default the built-in one; null disables seccomp (tests/debugging only). */
  seccomp?: SeccompProfile | null;
  /** Parent cgroup of all bunkers (default "scaibunker"). */
  cgroupParent?: string;
  /** Gives bunkers the network profiles beyond `isolated`; without it they get loopback only. */
  networking?: BunkerNetworking;
}

interface BunkerMeta {
  id: string;
  imageSha256: string;
  runtime: RuntimeName;
  cgroupsPath: string;
  createdAt: string;
}

interface BunkerPaths {
  dir: string;
  upper: string;
  upperData: string;
  work: string;
  /** Bound at /dev and /dev/shm: on the disk tmpfs, outside the upper dir (not in snapshots). */
  dev: string;
  shm: string;
  rootfs: string;
  run: string;
  socket: string;
  config: string;
  meta: string;
  pidFile: string;
  runtimeLog: string;
  consoleLog: string;
}

/** In a bunker's directory while it is frozen for a snapshot (see writeLayer). */
const SNAPSHOT_FREEZE_MARKER = 'snapshot-frozen';
const TRACE = process.env.SCAIBUNKER_TRACE_SPAWN === '1';

/**
 * Runs bunkers as OCI containers (crun preferred, runc fallback).
 *
 * Layout under dataDir:
 *   images/<sha>/        read-only loop mount of the image's ext4 file, shared by its bunkers
 *                        (refcounted; stays mounted when idle, see ImageMounts/unmountIdleImages)
 *   bunkers/<id>/upper   tmpfs of size=diskMb: overlay upper (u/) + work (w/) + console.log,
 *                        and dev/ + shm/, bound at /dev and /dev/shm (no tmpfs of their own:
 *                        every superblock makes every memory cgroup on the host bigger, see
 *                        OciBundleOptions.tmpSizeMb; outside u/, so never in a snapshot)
 *   bunkers/<id>/rootfs  overlayfs lower=images/<sha>, upper=upper/u — the bunker's / (its
 *                        /tmp too: no tmpfs of its own, see OciBundleOptions.tmpSizeMb)
 *   bunkers/<id>/run     bind-mounted at /.scaibunker/run (the only writable host path inside); agent.sock
 *   bunkers/<id>/config.json, bunker.json (meta), pid, runtime.log
 *   state/<runtime>/     the runtime's --root (never /run/crun, so no collision with others)
 *   tmp/                 stderr files of the resident helper shells
 *   empty/               empty, 0555: bound read-only at masked directories (inside /proc
 *                        too with crun; runc refuses binds there)
 *   dev/                 device nodes, symlinks, mount points: copied to each bunker's dev/
 *   cgroupfs/            cgroup v1: a directory per hierarchy, bound read-only at /sys/fs/cgroup
 *                        under each hierarchy's bunker cgroup (OciBundleOptions.cgroupBinds)
 *
 * Spawn = one round trip through a resident busybox shell (HostShell): mount the disk tmpfs,
 * mkdir upper/work, mount the overlay, exec `<runtime> run --detach`; then wait for the agent
 * socket with inotify (fs.watch) plus a coarse liveness poll. Node itself launches no process.
 *
 * Cgroups: <parent>/<id> (cgroupfs driver) in every hierarchy; limits are written by the
 * runtime from config.json, freeze/stats/cleanup are done here directly. On a hybrid host
 * init() first mounts every controller still attached to cgroup2 (hugetlb) as cgroup v1,
 * because crun refuses hybrid mode otherwise; if crun is still unusable runc is used.
 *
 * Known limits (documented, not bugs):
 * - User namespaces are not used yet: the overlay rootfs and the bind-mounted socket dir are
 *   owned by host root, and Debian 12's util-linux 2.38 / crun 1.8.1 offer no idmapped rootfs
 *   path. The agent runs as real root with Docker's default capabilities minus NET_RAW,
 *   no_new_privs and a seccomp denylist that also refuses unshare/setns/clone(CLONE_NEW*).
 * - disk_mb is a tmpfs, so pages written to the bunker's disk are charged to its memory
 *   cgroup too: memory_mb effectively caps memory + written disk.
 * - /proc/mounts inside a bunker shows the host paths of its overlay layers (as with Docker).
 */
export class ContainerProvider implements Provider {
  readonly isolation: Isolation = 'container';
  readonly dataDir: string;
  readonly imagesDir: string;
  readonly bunkersDir: string;
  readonly stateDir: string;
  /** Empty and read-only: what bunkers see at masked directories outside /proc (OciBundleOptions.emptyDir). */
  readonly emptyDir: string;
  /** cgroup v1: what bunkers see at /sys/fs/cgroup, under their own cgroups (OciBundleOptions.cgroupBinds). */
  readonly cgroupFsDir: string;
  /** What each bunker's /dev starts as (copied to its disk, see devTemplate.ts). */
  readonly devTemplateDir: string;
  private readonly opts: ContainerProviderOptions;
  private readonly images: ImageMounts;
  private readonly shell: HostShell;
  private readonly mounts: HostMounts;
  /** The per-id lock, id check, spawn preamble, destroy semantics and network shared with the other providers. */
  private readonly life: BunkerLifecycle;
  /** Pause, resume and cgroup figures: the bunker is one cgroup (shared with the other cgroup providers). */
  private readonly control: CgroupBunkerControl;
  /** Bunkers whose image reference is counted in `images`: id -> image sha. */
  private readonly active = new Map<string, string>();
  private runtime?: OciRuntime;
  private cgroups?: Cgroups;
  private swapAccounting = true;
  private nofile = 65536;
  /** Base64 seccomp program compiled by crun during the probe (run.oci.seccomp_bpf_data). */
  private seccompBpf?: string | undefined;
  private readonly notes: string[] = [];

  constructor(opts: ContainerProviderOptions) {
    this.opts = opts;
    this.life = new BunkerLifecycle({
      isolation: this.isolation,
      init: () => this.init(),
      cgroupParent: opts.cgroupParent ?? 'scaibunker',
      networking: opts.networking,
    });
    this.control = new CgroupBunkerControl({
      init: () => this.init(),
      cgroups: () => this.cgroups,
      cgroupPath: (id) => this.cgroupsPath(id),
      bunkerDir: (id) => this.paths(id).dir,
      isBunkerId: (id) => this.life.isBunkerId(id),
    });
    this.dataDir = opts.dataDir.replace(/\/+$/, '');
    this.imagesDir = join(this.dataDir, 'images');
    this.bunkersDir = join(this.dataDir, 'bunkers');
    this.stateDir = join(this.dataDir, 'state');
    this.emptyDir = join(this.dataDir, 'empty');
    this.cgroupFsDir = join(this.dataDir, 'cgroupfs');
    this.devTemplateDir = join(this.dataDir, 'dev');
    this.shell = new HostShell(join(this.dataDir, 'tmp'));
    this.mounts = new HostMounts(this.shell);
    this.images = new ImageMounts(this.imagesDir, this.mounts, opts.keepIdleImages ?? true, (sha) =>
      this.life.idsIn(this.bunkersDir).some((id) => this.readMeta(id)?.imageSha256 === sha),
    );
  }

  /** Name of the runtime chosen by init() (undefined before). */
  get runtimeName(): RuntimeName | undefined {
    return this.runtime?.name;
  }

  get cgroupLayout(): string | undefined {
    return this.cgroups?.layout;
  }

  cgroupsPath(id: string): string {
    return this.life.cgroupPath(id);
  }

  /** Every host cgroup directory a bunker may have (for inspection and tests). */
  cgroupDirs(id: string): string[] {
    return this.cgroups ? this.cgroups.dirs(this.cgroupsPath(id)) : [];
  }

  /** The cgroup directory holding `controller` for a bunker (v2: the unified one). */
  cgroupDir(id: string, controller: string): string | undefined {
    return this.cgroups?.dir(this.cgroupsPath(id), controller);
  }

  bunkerDir(id: string): string {
    return join(this.bunkersDir, id);
  }

  private paths(id: string): BunkerPaths {
    const dir = join(this.bunkersDir, id);
    const upper = join(dir, 'upper');
    const run = join(dir, 'run');
    return {
      dir,
      upper,
      upperData: join(upper, 'u'),
      work: join(upper, 'w'),
      dev: join(upper, 'dev'),
      shm: join(upper, 'shm'),
      rootfs: join(dir, 'rootfs'),
      run,
      socket: join(run, AGENT_SOCKET_NAME),
      config: join(dir, 'config.json'),
      meta: join(dir, 'bunker.json'),
      pidFile: join(dir, 'pid'),
      runtimeLog: join(dir, 'runtime.log'),
      consoleLog: join(upper, 'console.log'),
    };
  }

  // ------------------------------------------------------------------ init

  /** Idempotent; a failed init is retried by the next call. */
  readonly init: () => Promise<void> = onceUntilSuccess(() => this.doInit());

  private async doInit(): Promise<void> {
    for (const d of [this.dataDir, this.imagesDir, this.bunkersDir, this.stateDir, join(this.dataDir, 'tmp')])
      mkdirSync(d, { recursive: true, mode: 0o711 });
    mkdirSync(this.emptyDir, { recursive: true, mode: 0o555 });
    if (readdirSync(this.emptyDir).length)
      throw new ProviderError('SPAWN_FAILED', `${this.emptyDir} must be empty (bunkers see it masked read-only)`);
    await this.shell.must(devTemplateScript(this.devTemplateDir), `making ${this.devTemplateDir}`);
    const cg = await Cgroups.detect();
    this.cgroups = cg;
    this.notes.length = 0;
    this.notes.push(`cgroups ${cg.layout}`);
    if (cg.layout === 'hybrid') {
      try {
        const mounted = await cg.fixHybrid();
        if (mounted.length) this.notes.push(`mounted cgroup-v1 ${mounted.join(',')}`);
      } catch (e) {
        this.notes.push(`hybrid cgroup fix failed: ${(e as Error).message}`);
      }
    }
    if (cg.layout !== 'v2') {
      const mem = cg.v1.get('memory');
      this.swapAccounting = !!mem && existsSync(join(mem, 'memory.memsw.limit_in_bytes'));
      this.prepareCgroupFsDir(cg);
    }

    this.nofile = Math.min(65536, hostNofileHardLimit() ?? 65536);

    const candidates: RuntimeName[] = this.opts.runtime ? [this.opts.runtime] : ['crun', 'runc'];
    const failures: string[] = [];
    for (const name of candidates) {
      const rt = OciRuntime.locate(name, join(this.stateDir, name));
      if (!rt) {
        failures.push(`${name}: not installed`);
        continue;
      }
      mkdirSync(rt.stateRoot, { recursive: true, mode: 0o700 });
      const err = await this.probe(rt);
      if (!err) {
        this.runtime = rt;
        break;
      }
      failures.push(`${name}: ${err}`);
    }
    if (failures.length) this.notes.push(...failures.map((f) => `unusable ${f.split('\n')[0]}`));
    if (!this.runtime) throw new ProviderError('RUNTIME_UNAVAILABLE', 'no usable OCI runtime (crun, runc)', failures.join('\n'));

    // reconnect: count the image references of bunkers that survived a worker restart
    for (const id of this.life.idsIn(this.bunkersDir)) {
      await this.thawAfterSnapshot(id, cg);
      if (this.active.has(id)) continue;
      const meta = this.readMeta(id);
      if (!meta) continue;
      this.active.set(id, meta.imageSha256);
      this.images.adopt(meta.imageSha256);
    }
  }

  /**
   * The directory bound at a bunker's /sys/fs/cgroup on cgroup v1: an empty directory per
   * hierarchy (the mount points of its binds) and, for comounted controllers, the runtime's
   * symlinks (cpu -> cpu,cpuacct). Only ever added to, never removed: running bunkers have
   * their hierarchies mounted on these directories, and removing one would detach them.
   */
  private prepareCgroupFsDir(cg: Cgroups): void {
    mkdirSync(this.cgroupFsDir, { recursive: true, mode: 0o755 });
    for (const [controller, mountPoint] of cg.v1) {
      const name = basename(mountPoint);
      mkdirSync(join(this.cgroupFsDir, name), { recursive: true, mode: 0o555 });
      const link = join(this.cgroupFsDir, controller);
      if (controller !== name && !controller.includes('=') && !existsSync(link)) symlinkSync(name, link);
    }
  }

  /** cgroup v1: the read-only binds making up a bunker's /sys/fs/cgroup; v2: undefined (the runtime's cgroup2 mount is no new superblock). */
  private cgroupBinds(rel: string): OciBundleOptions['cgroupBinds'] {
    const cg = this.cgroups;
    if (!cg || cg.layout === 'v2') return undefined;
    const byMountPoint = new Map<string, string>();
    for (const mountPoint of cg.v1.values()) byMountPoint.set(mountPoint, basename(mountPoint));
    const hierarchies = [...byMountPoint].map(([mountPoint, name]) => ({ name, dir: join(mountPoint, rel) }));
    return { root: this.cgroupFsDir, hierarchies };
  }

  /** A bunker a previous worker process froze for a snapshot and never thawed (it died). */
  private async thawAfterSnapshot(id: string, cg: Cgroups): Promise<void> {
    const marker = join(this.paths(id).dir, SNAPSHOT_FREEZE_MARKER);
    if (!existsSync(marker)) return;
    const rel = this.cgroupsPath(id);
    if (cg.exists(rel)) await cg.thaw(rel);
    await rm(marker, { force: true });
  }

  /** Creates (never starts) a throwaway container with the real config shape; returns an error text or undefined. */
  private async probe(rt: OciRuntime): Promise<string | undefined> {
    const id = `probe-${rt.name}-${process.pid}`;
    const dir = join(this.dataDir, id);
    const rel = this.cgroupsPath(id);
    try {
      await rm(dir, { recursive: true, force: true });
      mkdirSync(join(dir, 'rootfs'), { recursive: true });
      mkdirSync(join(dir, 'run'), { mode: 0o700 });
      await this.shell.must(`cp -a ${shq(this.devTemplateDir)} ${shq(join(dir, 'dev'))}`, 'copying /dev');
      mkdirSync(join(dir, 'shm'));
      writeFileSync(join(dir, 'rootfs', 'probe'), '', { mode: 0o755 });
      const config = buildOciConfig({
        rootfsPath: join(dir, 'rootfs'),
        agentRunDir: join(dir, 'run'),
        hostname: 'probe',
        cgroupsPath: rel,
        cpuMillicores: 100,
        memoryMb: 32,
        pidsLimit: 16,
        swapAccounting: this.swapAccounting,
        nofile: this.nofile,
        seccomp: this.opts.seccomp,
        emptyDir: this.emptyDir,
        bindProcMasks: rt.name === 'crun',
        devDir: join(dir, 'dev'),
        shmDir: join(dir, 'shm'),
        cgroupBinds: this.cgroupBinds(rel),
        args: ['/probe'],
      });
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      await rt.deleteForce(id);
      const r = await rt.create(id, dir, join(dir, 'runtime.log'));
      // crun compiles the seccomp profile on every start (~1–2 ms of CPU); keep the program it
      // compiled for the probe (same profile, same arch) and hand it over pre-compiled.
      this.seccompBpf = undefined;
      if (r.code === 0 && rt.name === 'crun' && this.opts.seccomp !== null) {
        try {
          const bpf = readFileSync(join(rt.stateRoot, id, 'seccomp.bpf'));
          if (bpf.length > 0 && bpf.length % 8 === 0) this.seccompBpf = bpf.toString('base64');
        } catch {
          /* older crun: compile per start */
        }
      }
      await rt.deleteForce(id);
      if (r.code !== 0) return r.error.slice(-2000) || `exit ${r.code}`;
      return undefined;
    } catch (e) {
      return (e as Error).message;
    } finally {
      await this.cgroups?.remove(rel).catch(() => {});
      await rm(dir, { recursive: true, force: true }).catch(() => {});
      await rm(join(rt.stateRoot, id), { recursive: true, force: true }).catch(() => {});
    }
  }

  // ------------------------------------------------------------------ spawn

  private validate(spec: BunkerSpec): void {
    validateSpec(
      spec,
      {
        minMemoryMb: 16,
        provider: 'container',
        socketPaths: [this.paths(spec.id).socket],
        networkProfiles: ['isolated', ...(this.opts.networking?.profiles ?? [])],
      },
      spec.pidsLimit ?? DEFAULT_PIDS_LIMIT,
    );
  }

  spawn(spec: BunkerSpec): Promise<SpawnedBunker> {
    return this.life.spawn(spec, {
      validate: (s) => this.validate(s),
      exists: (id) => existsSync(this.paths(id).dir),
      create: (s) => this.spawnLocked(s),
    });
  }

  private async spawnLocked(spec: BunkerSpec): Promise<SpawnedBunker> {
    const rt = this.runtime as OciRuntime;
    const p = this.paths(spec.id);
    const trace = PhaseTrace.start('container-spawn', spec.id);
    trace.mark('container.locked');
    const restore = spec.restore;
    const tar = restore ? await gnuTar() : undefined;
    const rel = this.cgroupsPath(spec.id);
    const meta: BunkerMeta = {
      id: spec.id,
      imageSha256: spec.imageSha256,
      runtime: rt.name,
      cgroupsPath: rel,
      createdAt: new Date().toISOString(),
    };
    mkdirSync(p.dir, { recursive: true, mode: 0o700 });
    try {
      this.life.writeMeta(p.meta, meta);
      mkdirSync(p.upper);
      mkdirSync(p.rootfs);
      mkdirSync(p.run, { mode: 0o700 });

      const lower = await this.images.acquire(spec.imageSha256, spec.imagePath);
      this.active.set(spec.id, spec.imageSha256);
      trace.mark('container.dirs+image');
      const network = await this.life.attachNetwork(spec);
      trace.mark('container.network');
      const config = buildOciConfig({
        rootfsPath: p.rootfs,
        agentRunDir: p.run,
        hostname: spec.hostname,
        cgroupsPath: rel,
        cpuMillicores: spec.cpuMillicores,
        memoryMb: spec.memoryMb,
        pidsLimit: spec.pidsLimit ?? DEFAULT_PIDS_LIMIT,
        swapAccounting: this.swapAccounting,
        nofile: this.nofile,
        seccomp: this.opts.seccomp,
        emptyDir: this.emptyDir,
        bindProcMasks: rt.name === 'crun',
        devDir: p.dev,
        shmDir: p.shm,
        cgroupBinds: this.cgroupBinds(rel),
        netnsPath: network?.netnsPath,
        resolvConfPath: network?.resolvConfPath,
        annotations: {
          'io.scaibunker.bunker': spec.id,
          'io.scaibunker.image': spec.imageSha256,
          ...(this.seccompBpf ? { 'run.oci.seccomp_bpf_data': this.seccompBpf } : {}),
        },
      });
      writeFileSync(p.config, JSON.stringify(config)); // one change, nothing to overlap: no thread-pool hop
      trace.mark('container.bundle-written');

      // One round trip through the resident shell: disk tmpfs, upper/work dirs, a snapshot's
      // files unpacked into the upper dir (restore), overlay rootfs, then the runtime. The
      // container's stdout/stderr (agent diagnostics) are appended to console.log on the
      // bunker's own disk tmpfs, outside its rootfs.
      const script = [
        `${HostMounts.tmpfsScript(p.upper, spec.diskMb)} || exit 91`,
        `mkdir -m 0755 ${shq(p.upperData)} || exit 92`,
        `mkdir -m 0700 ${shq(p.work)} || exit 92`,
        `cp -a ${shq(this.devTemplateDir)} ${shq(p.dev)} || exit 92`,
        `mkdir -m 1777 ${shq(p.shm)} || exit 92`,
        ...(restore && tar ? [`${shq(tar)} ${tarExtractArgs(restore.archivePath, p.upperData).map(shq).join(' ')} || exit 94`] : []),
        `${HostMounts.overlayScript(p.rootfs, lower, p.upperData, p.work)} || exit 93`,
        `exec ${rt.runDetachedScript(spec.id, { bundle: p.dir, pidFile: p.pidFile, logFile: p.runtimeLog, consoleFile: p.consoleLog })}`,
      ].join('; ');
      const waiter = new SocketWaiter(p.run, AGENT_SOCKET_NAME);
      try {
        const run = this.shell.run(script);
        const r = await Promise.race([run, waiter.promise.then(() => undefined)]);
        trace.mark('container.mounts+runtime'); // the runtime's exit or the agent's socket, whichever came first
        if (r && r.code !== 0) throw spawnStepFailure(rt.name, r.code, r.stderr, spec.diskMb, await diskFull(p.upper));
        await waiter.wait(this.opts.spawnTimeoutMs ?? 10_000, () => {
          // fail fast when the agent died before it listened
          const pid = readPid(p.pidFile);
          if (pid && !processAlive(pid)) throw new ProviderError('SPAWN_FAILED', 'agent exited before creating its socket');
        });
        const r2 = await run;
        if (r2.code !== 0) throw spawnStepFailure(rt.name, r2.code, r2.stderr, spec.diskMb, await diskFull(p.upper));
      } finally {
        waiter.close();
      }
      const pid = readPid(p.pidFile) ?? 0;
      trace.mark('container.runtime-exit+agent-socket');
      trace.end();
      return { id: spec.id, agentSocketPath: p.socket, pid };
    } catch (e) {
      const details = this.diagnostics(p, e);
      await this.destroyLocked(spec.id).catch(() => {});
      if (e instanceof ProviderError) throw new ProviderError(e.code, e.message, e.details ?? details);
      throw new ProviderError('SPAWN_FAILED', `spawn ${spec.id} failed: ${(e as Error).message}`, details);
    }
  }

  private diagnostics(p: BunkerPaths, e: unknown): string {
    const parts: string[] = [];
    const log = readText(p.runtimeLog).trim();
    if (log) parts.push(`runtime: ${log.slice(-4000)}`);
    const cons = readText(p.consoleLog).trim();
    if (cons) parts.push(`console: ${cons.slice(-4000)}`);
    if (!parts.length) parts.push((e as Error)?.message ?? String(e));
    return parts.join('\n');
  }

  // ------------------------------------------------------------------ destroy

  destroy(id: string): Promise<void> {
    return this.life.destroy(id, () => this.destroySteps(id));
  }

  /** Under the bunker's lock (a failed spawn cleaning up after itself). */
  private async destroyLocked(id: string): Promise<void> {
    await this.life.runDestroySteps(id, await this.destroySteps(id));
  }

  /** What destroying a bunker takes, in order; BunkerLifecycle runs every step and reports each failure. */
  private async destroySteps(id: string): Promise<DestroyStep[]> {
    const p = this.paths(id);
    const meta = this.readMeta(id);
    const rel = meta?.cgroupsPath ?? this.cgroupsPath(id);
    const cg = this.cgroups ?? (await Cgroups.detect());
    const runtimes = this.runtimesFor(meta);
    const steps: DestroyStep[] = [
      // 1. processes: thaw (a frozen v1 task never dies), let the runtime kill+delete, then sweep
      {
        step: 'thaw',
        run: async () => {
          if (cg.exists(rel) && (await cg.isFrozen(rel).catch(() => false))) await cg.thaw(rel);
        },
      },
      ...runtimes.map(
        (rt): DestroyStep => ({
          step: `${rt.name} delete`,
          run: async () => {
            if (!existsSync(join(rt.stateRoot, id))) return;
            const r = await this.shell.run(rt.deleteScript(id));
            if (r.code !== 0 && existsSync(join(rt.stateRoot, id))) throw new Error(r.stderr.trim() || `exit ${r.code}`);
          },
        }),
      ),
      {
        step: 'kill',
        run: () => {
          const pid = readPid(p.pidFile);
          if (!pid || !processInCgroup(pid, rel)) return;
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        },
      },
      // 2. cgroup (waits until every process in it is gone)
      { step: 'cgroup', run: () => cg.remove(rel) },
      // 3. mounts: rootfs overlay, then the disk tmpfs
      { step: 'umount', run: async () => this.mounts.unmount(await HostMounts.mountsUnder(p.dir)) },
      // 4. files (never under a mount still there) and runtime state
      {
        step: 'files',
        run: async () => {
          if ((await HostMounts.mountsUnder(p.dir)).length) throw new Error(`mounts left under ${p.dir}`);
          await rm(p.dir, { recursive: true, force: true });
        },
      },
      {
        step: 'runtime state',
        run: async () => {
          for (const rt of runtimes) await rm(join(rt.stateRoot, id), { recursive: true, force: true });
        },
      },
      // 5. network (its netns is gone from the bunker's processes by now)
      this.life.detachNetworkStep(id),
      // 6. image reference
      {
        step: 'image',
        run: async () => {
          const sha = this.active.get(id);
          if (sha === undefined) return;
          this.active.delete(id);
          await this.images.release(sha);
        },
      },
    ];
    return TRACE ? traced(steps, `[container] destroy ${id}`) : steps;
  }

  /** The runtime that created the bunker first, then the current one (state dirs are per runtime). */
  private runtimesFor(meta: BunkerMeta | undefined): OciRuntime[] {
    const out: OciRuntime[] = [];
    if (meta && meta.runtime !== this.runtime?.name) {
      const rt = OciRuntime.locate(meta.runtime, join(this.stateDir, meta.runtime));
      if (rt) out.push(rt);
    }
    if (this.runtime) out.push(this.runtime);
    return out;
  }

  // ------------------------------------------------------------------ pause / resume / stats

  async pause(id: string): Promise<void> {
    await this.control.pause(id);
  }

  async resume(id: string): Promise<void> {
    await this.control.resume(id);
  }

  async isPaused(id: string): Promise<boolean> {
    return this.control.isPaused(id);
  }

  async stats(id: string): Promise<BunkerStats> {
    const stats = await this.control.stats(id);
    // The disk is the tmpfs holding the overlay's upper layer: its used blocks are what the
    // bunker wrote (plus the overlay's work dir and its console log).
    try {
      const fs = await statfs(this.paths(id).upper);
      stats.diskUsedBytes = (fs.blocks - fs.bfree) * fs.bsize;
    } catch {
      /* unmounted under us: leave it out */
    }
    return stats;
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * The overlay's upper dir (`bunkers/<id>/upper/u`, the bunker's tmpfs disk) as a GNU tar,
   * read with the bunker's cgroup frozen: ownership (numeric), modes, hard links, sparse files,
   * whiteouts (char 0:0) and the `trusted.overlay.*` xattrs (opaque dirs, redirects).
   */
  async writeLayer(id: string, out: Writable): Promise<LayerFormat> {
    const { cg, rel } = await this.control.require(id);
    const tar = await gnuTar();
    return this.life.withLock(id, async (): Promise<LayerFormat> => {
      const p = this.paths(id);
      if (!existsSync(p.upperData) || !(await HostMounts.isMountpoint(p.upper)))
        throw new ProviderError('NOT_FOUND', `bunker ${id} has no disk mounted`);
      const wasFrozen = await cg.isFrozen(rel);
      // A worker killed while the bunker is frozen for its snapshot would leave it frozen for
      // good: the marker says this freeze is ours, and init() thaws what it finds marked.
      const marker = join(p.dir, SNAPSHOT_FREEZE_MARKER);
      if (!wasFrozen) {
        writeFileSync(marker, '');
        await cg.freeze(rel);
      }
      let failed = false;
      try {
        await commandInto(tar, tarCreateArgs(p.upperData), out, `tar of ${id}'s upper dir`);
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        if (!wasFrozen) {
          // a thaw failure matters even when the archive was fine: the bunker would stay frozen
          const thawed = cg.thaw(rel).then(() => rm(marker, { force: true }));
          if (failed) await thawed.catch(() => {});
          else await thawed;
        }
      }
      return 'container-tar';
    });
  }

  // ------------------------------------------------------------------ list / health

  private readMeta(id: string): BunkerMeta | undefined {
    return this.life.readMeta<BunkerMeta>(this.paths(id).meta);
  }

  async list(): Promise<Array<{ id: string; running: boolean; agentSocketPath: string }>> {
    await this.init();
    return this.life.idsIn(this.bunkersDir).map((id) => {
      const p = this.paths(id);
      const pid = readPid(p.pidFile);
      const running = !!pid && processInCgroup(pid, this.readMeta(id)?.cgroupsPath ?? this.cgroupsPath(id)) && existsSync(p.socket);
      return { id, running, agentSocketPath: p.socket };
    });
  }

  async health(): Promise<{ ok: boolean; runtime: string; details?: string }> {
    try {
      await this.init();
    } catch (e) {
      const err = e as ProviderError;
      return { ok: false, runtime: 'none', details: [err.message, err.details].filter(Boolean).join(': ') };
    }
    const rt = this.runtime as OciRuntime;
    const ok = existsSync(rt.bin) && existsSync(this.bunkersDir);
    return { ok, runtime: await rt.version(), details: this.notes.join('; ') };
  }

  /** Unmounts every image no bunker uses (before evicting image files, or at shutdown). */
  async unmountIdleImages(): Promise<string[]> {
    return this.images.unmountIdle();
  }

  /**
   * Stops the resident helper shells (bunkers keep running; a new provider on the same
   * dataDir finds them with list()). Optional: the shells never keep the process alive.
   */
  async shutdown(): Promise<void> {
    await this.unmountIdleImages();
    this.close();
  }

  close(): void {
    this.shell.close();
  }

  /** How many live bunkers reference an image (mount refcount). */
  imageRefCount(sha: string): number {
    return this.images.refCount(sha);
  }
}

// ------------------------------------------------------------------ helpers

/** With SCAIBUNKER_TRACE_SPAWN=1: the destroy's steps, timed, on stderr once the last ran. */
function traced(steps: DestroyStep[], what: string): DestroyStep[] {
  const t0 = performance.now();
  const marks: string[] = [];
  return steps.map((s, i) => ({
    step: s.step,
    run: async () => {
      try {
        await s.run();
      } finally {
        marks.push(`${s.step}=${(performance.now() - t0).toFixed(1)}`);
        if (i === steps.length - 1) process.stderr.write(`${what}: ${marks.join(' ')}\n`);
      }
    },
  }));
}

function spawnStepError(runtime: string, code: number, stderr: string): string {
  const step =
    code === 91
      ? 'mounting the disk tmpfs'
      : code === 92
        ? 'creating overlay dirs'
        : code === 93
          ? 'mounting the overlay rootfs'
          : code === 94
            ? 'unpacking the snapshot'
            : `${runtime} run`;
  return `${step} failed (exit ${code})${stderr.trim() ? `: ${stderr.trim().slice(0, 1000)}` : ''}`;
}

/** A failed spawn step; unpacking a snapshot fails SPAWN_FAILED when the disk is full, SNAPSHOT_CORRUPT otherwise. */
function spawnStepFailure(runtime: string, code: number, stderr: string, diskMb: number, full: boolean): ProviderError {
  if (code !== 94) return new ProviderError('SPAWN_FAILED', spawnStepError(runtime, code, stderr));
  // tar reports a full tmpfs as ENOSPC or as a short write ("Wrote only N of M bytes")
  if (full || /No space left on device|Wrote only \d+ of \d+ bytes/i.test(stderr))
    return new ProviderError(
      'SPAWN_FAILED',
      `the snapshot does not fit the bunker's disk (disk_mb ${diskMb}): no space left while unpacking it`,
    );
  return new ProviderError('SNAPSHOT_CORRUPT', spawnStepError(runtime, code, stderr));
}

/** Whether the tmpfs at `path` is (about) full: under 64 KiB left, or not readable. */
async function diskFull(path: string): Promise<boolean> {
  try {
    const fs = await statfs(path);
    return fs.bavail * fs.bsize < 65536;
  } catch {
    return false;
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
