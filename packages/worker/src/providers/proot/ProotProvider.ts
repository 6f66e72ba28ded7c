import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { lstat, readdir, rm, statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { onceUntilSuccess } from '../../util/onceUntilSuccess.js';
import { BunkerLifecycle, type DestroyStep } from '../BunkerLifecycle.js';
import { HostMounts } from '../container/HostMounts.js';
import { HostShell, shq } from '../container/HostShell.js';
import { AGENT_PATH, AGENT_RUN_DIR, AGENT_SOCKET_NAME, DEFAULT_PIDS_LIMIT } from '../container/OciBundle.js';
import { findExecutable } from '../container/OciRuntime.js';
import { CgroupBunkerControl } from '../host/CgroupBunkerControl.js';
import { Cgroups } from '../host/Cgroups.js';
import { CGROUP_EXEC } from '../host/cgroupExec.js';
import { processAlive, processInCgroup, readPid } from '../host/processes.js';
import { runCommand } from '../host/runCommand.js';
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
import { ImageTrees } from './ImageTrees.js';

/** The seccomp wrapper that gives proot bunkers no network (packages/worker/native/nonet). */
export const NONET_BINARY = fileURLToPath(new URL('../../../native/nonet/build/scaibunker-nonet', import.meta.url));

/** Host devices a bunker sees (world-accessible ones only; no /dev/shm: it is the host's). */
const DEVICE_BINDS = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', '/dev/ptmx', '/dev/pts'];
/** Room on the disk tmpfs beyond the image copy and disk_mb: console.log. */
const DISK_SLACK_KIB = 1024;
/**
 * Where proot writes its loader (`prooted-<pid>-*`) and glue dirs (`proot-<pid>-*`): Debian's
 * proot 5.1 has no PROOT_TMP_DIR, it is always /tmp. proot removes them when it exits by itself.
 */
const PROOT_TMP = '/tmp';
/** How long destroy lets proot exit by itself once its tracees are gone (it then removes its temporary files). */
const PROOT_EXIT_WAIT_MS = 2000;
/** What memory_mb must leave beyond the image copy for proot, the agent and a command. */
const MIN_RUN_MEMORY_BYTES = 16 * 1048576;
/** Key of the uid allocation in the lifecycle's per-id lock (no bunker id can contain a NUL, so it is no bunker's lock). */
const UID_LOCK = '\0uid';

export interface ProotProviderOptions {
  /** The worker's data dir; this provider keeps everything under `<dataDir>/proot` (socket paths must stay < 108 bytes). */
  dataDir: string;
  /** Bound on spawn() waiting for the agent socket (default 15 s: proot traces every syscall of the agent's start). */
  spawnTimeoutMs?: number;
  /** Parent cgroup of all proot bunkers (default "scaibunker-proot"). */
  cgroupParent?: string;
  /** Bunkers run as uids uidBase, uidBase+1, … (one of its own each; default 2000000000). */
  uidBase?: number;
}

interface BunkerMeta {
  id: string;
  imageSha256: string;
  cgroup: string;
  uid: number;
  /** Bytes used on the disk tmpfs right after the image was copied in (stats report what the bunker added). */
  baseUsedBytes: number;
  createdAt: string;
}

interface BunkerPaths {
  dir: string;
  /** tmpfs of the image's size + disk_mb: root/, console.log */
  disk: string;
  root: string;
  consoleLog: string;
  run: string;
  socket: string;
  meta: string;
  /** proot's pid (the tracer) and the agent's (its first tracee). */
  prootPid: string;
  agentPid: string;
}

/**
 * Runs bunkers under PRoot (ptrace-based chroot/bind emulation): the image's files and the same
 * in-bunker agent, for hosts where the worker cannot make namespaces. NO KERNEL ISOLATION: the
 * bunker's processes are ordinary host processes of an unprivileged uid that proot translates
 * paths for; a process that escapes proot's path translation sees the host as that uid. For
 * development and trusted code only (docs/ARCHITECTURE.md, The proot isolation).
 *
 * Layout under `<dataDir>/proot`:
 *   images/<sha>/root    the image's ext4 extracted to a directory tree (ImageTrees, no mount)
 *   bunkers/<id>/disk    tmpfs of the tree's size + disk_mb, mode 0700 of the bunker's uid: root/
 *                        (a copy of the tree owned by that uid, the bunker's /), console.log
 *   bunkers/<id>/run     bound at /.scaibunker/run; the agent's socket
 *   bunkers/<id>/bunker.json, proot.pid, agent.pid
 *
 * What is enforced, and how (root is required for all of it; init() refuses otherwise):
 * - memory_mb, cpu_millicores, pids: a cgroup of the worker's (/scaibunker-proot/<id>) holding
 *   proot and everything it traces; the freezer of that cgroup pauses the bunker. The image copy
 *   on the tmpfs disk is made from inside that cgroup: it is charged to memory_mb (a spawn
 *   whose memory_mb cannot hold it is LIMIT_INVALID), and so is what the bunker writes.
 * - disk_mb: the tmpfs's size (the image copy plus disk_mb).
 * - network: only `isolated`, given by a seccomp filter (scaibunker-nonet) installed before proot
 *   runs: socket(2) of any family but AF_UNIX fails. Unlike a container there is no loopback either.
 * - the bunker's uid: one per bunker (uidBase + n), no capabilities, no_new_privs; proot's -0
 *   makes it look like root inside.
 * Not given: a PID namespace (the agent is not PID 1; health() reports its host pid), a UTS
 * namespace (`hostname` is the host's), snapshots (no writable layer apart from the image).
 */
export class ProotProvider implements Provider {
  readonly isolation: Isolation = 'proot';
  readonly baseDir: string;
  readonly bunkersDir: string;
  private readonly opts: ProotProviderOptions;
  private readonly images: ImageTrees;
  private readonly shell: HostShell;
  private readonly mounts: HostMounts;
  /** The per-id lock, id check, spawn preamble, destroy semantics, cgroup path and metadata shared with the other providers. */
  private readonly life: BunkerLifecycle;
  /** Pause, resume and cgroup figures: the bunker is one cgroup (shared with the other cgroup providers). */
  private readonly control: CgroupBunkerControl;
  private cgroups?: Cgroups;
  private proot?: string | undefined;
  private setpriv?: string | undefined;
  private version = 'proot';

  constructor(opts: ProotProviderOptions) {
    this.opts = opts;
    // no networking: proot bunkers are `isolated` only
    this.life = new BunkerLifecycle({
      isolation: this.isolation,
      init: () => this.init(),
      cgroupParent: opts.cgroupParent ?? 'scaibunker-proot',
    });
    this.control = new CgroupBunkerControl({
      init: () => this.init(),
      cgroups: () => this.cgroups,
      cgroupPath: (id) => this.cgroupPath(id),
      bunkerDir: (id) => this.paths(id).dir,
      isBunkerId: (id) => this.life.isBunkerId(id),
    });
    this.baseDir = join(opts.dataDir.replace(/\/+$/, ''), 'proot');
    this.bunkersDir = join(this.baseDir, 'bunkers');
    this.images = new ImageTrees(join(this.baseDir, 'images'));
    this.shell = new HostShell(join(this.baseDir, 'tmp'));
    this.mounts = new HostMounts(this.shell);
  }

  cgroupPath(id: string): string {
    return this.life.cgroupPath(id);
  }

  /** Every host cgroup directory a bunker may have (for inspection and tests). */
  cgroupDirs(id: string): string[] {
    return this.cgroups ? this.cgroups.dirs(this.cgroupPath(id)) : [];
  }

  cgroupDir(id: string, controller: string): string | undefined {
    return this.cgroups?.dir(this.cgroupPath(id), controller);
  }

  get cgroupLayout(): string | undefined {
    return this.cgroups?.layout;
  }

  bunkerDir(id: string): string {
    return join(this.bunkersDir, id);
  }

  private paths(id: string): BunkerPaths {
    const dir = join(this.bunkersDir, id);
    const disk = join(dir, 'disk');
    const run = join(dir, 'run');
    return {
      dir,
      disk,
      root: join(disk, 'root'),
      consoleLog: join(disk, 'console.log'),
      run,
      socket: join(run, AGENT_SOCKET_NAME),
      meta: join(dir, 'bunker.json'),
      prootPid: join(dir, 'proot.pid'),
      agentPid: join(dir, 'agent.pid'),
    };
  }

  // ------------------------------------------------------------------ init

  readonly init: () => Promise<void> = onceUntilSuccess(() => this.doInit());

  private async doInit(): Promise<void> {
    const unavailable = (m: string, details?: string) => new ProviderError('RUNTIME_UNAVAILABLE', m, details);
    if (process.getuid?.() !== 0)
      throw unavailable(
        'the proot isolation needs a root worker: it enforces memory, cpu and pids with cgroups, disk_mb with a tmpfs and runs each bunker as a uid of its own',
      );
    this.proot = findExecutable('proot');
    if (!this.proot) throw unavailable('proot is not installed (apt-get install proot)');
    this.setpriv = findExecutable('setpriv');
    if (!this.setpriv) throw unavailable('setpriv (util-linux) is not installed');
    if (!existsSync(NONET_BINARY)) throw unavailable(`${NONET_BINARY} is missing (make -C packages/worker/native/nonet)`);
    if (!this.images.available) throw unavailable('debugfs (e2fsprogs) is not installed');
    // bunker uids must traverse (never list) the path to their own tree: dataDir gets o+x; the
    // image trees are read by the worker only
    for (const d of [this.baseDir, this.bunkersDir]) {
      mkdirSync(d, { recursive: true, mode: 0o711 });
      chmodSync(d, 0o711); // also when made earlier (HostShell makes tmp/ under baseDir, 0700)
    }
    for (const d of [this.images.imagesDir, join(this.baseDir, 'tmp')]) mkdirSync(d, { recursive: true, mode: 0o700 });
    const dataDir = dirname(this.baseDir);
    chmodSync(dataDir, (statSync(dataDir).mode & 0o7777) | 0o001);
    // above the data dir the operator decides: refuse rather than change their permissions
    for (let d = dirname(dataDir); ; d = dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0)
        throw unavailable(`proot bunkers run as uids of their own, which cannot traverse ${d} (chmod o+x ${d} to allow it)`);
      if (d === '/') break;
    }
    // proot needs ptrace, which a container's seccomp profile or a Yama setting may forbid
    const probe = await runCommand(NONET_BINARY, [this.proot, '/bin/true'], { timeoutMs: 15_000 });
    if (probe.code !== 0) throw unavailable(`proot cannot run here (exit ${probe.code})`, probe.stderr.trim().slice(-2000));
    const v = await runCommand(this.proot, ['--version'], { timeoutMs: 5000 });
    this.version = `proot ${/(\d+\.\d+\.\d+)/.exec(v.stdout)?.[1] ?? '?'}`;
    this.cgroups = await Cgroups.detect();
  }

  // ------------------------------------------------------------------ spawn

  /** validateSpec with proot's bounds; a restore is refused here, before anything is created (no snapshots). */
  private validate(spec: BunkerSpec): void {
    validateSpec(
      spec,
      { minMemoryMb: 16, provider: 'proot', socketPaths: [this.paths(spec.id).socket], networkProfiles: ['isolated'] },
      spec.pidsLimit ?? DEFAULT_PIDS_LIMIT,
    );
    if (spec.restore)
      throw new ProviderError(
        'SNAPSHOT_CORRUPT',
        `a proot bunker cannot start from a ${spec.restore.format} snapshot (proot bunkers have no snapshots)`,
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
    const p = this.paths(spec.id);
    const cg = this.cgroups as Cgroups;
    const rel = this.cgroupPath(spec.id);
    try {
      const meta = await this.life.withLock(UID_LOCK, async () => {
        const taken = new Set(this.life.idsIn(this.bunkersDir).map((id) => this.readMeta(id)?.uid));
        let n = this.opts.uidBase ?? 2_000_000_000;
        while (taken.has(n)) n++;
        mkdirSync(p.dir, { recursive: true, mode: 0o711 });
        const made: BunkerMeta = {
          id: spec.id,
          imageSha256: spec.imageSha256,
          cgroup: rel,
          uid: n,
          baseUsedBytes: 0,
          createdAt: new Date().toISOString(),
        };
        this.life.writeMeta(p.meta, made);
        return made;
      });
      const uid = meta.uid;
      mkdirSync(p.disk);
      mkdirSync(p.run, { mode: 0o700 });
      const tree = await this.images.ensure(spec.imageSha256, spec.imagePath);
      // the copy of the image lives in the bunker's RAM (its tmpfs disk, charged to its memory
      // cgroup like everything it writes there): memory_mb must hold it with room to run
      if (tree.bytes + MIN_RUN_MEMORY_BYTES > spec.memoryMb * 1048576)
        throw new ProviderError(
          'LIMIT_INVALID',
          `memory_mb ${spec.memoryMb} cannot hold this image under proot: its disk is a tmpfs copy of the image (${Math.ceil(tree.bytes / 1048576)} MiB), charged to its memory; give at least ${Math.ceil((tree.bytes + MIN_RUN_MEMORY_BYTES) / 1048576)}`,
        );
      const sizeKib = Math.ceil(tree.bytes / 1024) + spec.diskMb * 1024 + DISK_SLACK_KIB;
      // the disk is the bunker uid's alone (0700): no other bunker's uid reaches its tree
      const mounted = await this.shell.run(
        `mount -t tmpfs -o ${shq(`size=${sizeKib}k,mode=0700,uid=${uid},gid=${uid},nosuid,nodev`)} scaibunker-disk ${shq(p.disk)}`,
      );
      if (mounted.code !== 0)
        throw new ProviderError(
          'SPAWN_FAILED',
          `mounting the disk tmpfs failed (exit ${mounted.code})`,
          mounted.stderr.trim().slice(-2000),
        );
      const procs = await cg.create(rel, {
        cpuMillicores: spec.cpuMillicores,
        memoryBytes: spec.memoryMb * 1048576,
        // proot itself is one more process of the cgroup
        pids: (spec.pidsLimit ?? DEFAULT_PIDS_LIMIT) + 1,
      });
      // copied from inside the bunker's cgroup, so the tmpfs pages are charged to the bunker
      const owner = `${uid}:${uid}`;
      const copy = [`cp -a ${shq(tree.root)} ${shq(p.root)}`, `chown -R ${owner} ${shq(p.root)} ${shq(p.run)}`].join(' && ');
      const copied = await runCommand('/bin/sh', ['-c', CGROUP_EXEC, 'sh', ...procs, '--', '/bin/sh', '-c', copy], { timeoutMs: 600_000 });
      if (copied.code !== 0)
        throw new ProviderError(
          'SPAWN_FAILED',
          `copying the image into the bunker's disk failed (${copied.signal ?? `exit ${copied.code}`})`,
          copied.stderr.trim().slice(-2000),
        );
      const fs = await statfs(p.disk);
      this.life.writeMeta(p.meta, { ...meta, baseUsedBytes: (fs.blocks - fs.bfree) * fs.bsize } satisfies BunkerMeta);
      const prootPid = this.launch(p, uid, procs);
      writeFileSync(p.prootPid, String(prootPid));
      const waiter = new SocketWaiter(p.run, AGENT_SOCKET_NAME);
      try {
        await waiter.wait(this.opts.spawnTimeoutMs ?? 15_000, () => {
          if (!processAlive(prootPid)) throw new ProviderError('SPAWN_FAILED', 'proot exited before the agent created its socket');
        });
      } finally {
        waiter.close();
      }
      const agentPid = firstChild(prootPid) ?? prootPid;
      writeFileSync(p.agentPid, String(agentPid));
      return { id: spec.id, agentSocketPath: p.socket, pid: agentPid };
    } catch (e) {
      const details = readText(p.consoleLog).trim().slice(-4000) || undefined;
      await this.destroyLocked(spec.id).catch(() => {}); // the spawn's error is the one to report
      if (e instanceof ProviderError) throw new ProviderError(e.code, e.message, e.details ?? details);
      throw new ProviderError('SPAWN_FAILED', `spawn ${spec.id} failed: ${(e as Error).message}`, details);
    }
  }

  /**
   * Starts proot detached, already in the bunker's cgroups (CGROUP_EXEC), as the bunker's uid
   * without capabilities (setpriv), under the no-network seccomp filter (scaibunker-nonet).
   * Its stdout/stderr (proot's and the agent's diagnostics) go to console.log on the bunker's disk.
   */
  private launch(p: BunkerPaths, uid: number, procs: string[]): number {
    const prootArgs = [
      '-0',
      '-r',
      p.root,
      '-w',
      '/',
      '-b',
      `${p.run}:${AGENT_RUN_DIR}`,
      '-b',
      '/proc',
      ...DEVICE_BINDS.flatMap((d) => ['-b', d]),
      AGENT_PATH,
      '--listen',
      `${AGENT_RUN_DIR}/${AGENT_SOCKET_NAME}`,
    ];
    const setpriv = [this.setpriv as string, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', '--'];
    const log = openSync(p.consoleLog, 'a', 0o600);
    try {
      const child = spawn(
        '/bin/sh',
        ['-c', CGROUP_EXEC, 'sh', ...procs, '--', ...setpriv, NONET_BINARY, this.proot as string, ...prootArgs],
        {
          detached: true,
          stdio: ['ignore', log, log],
          cwd: '/',
          env: {
            PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
            HOME: '/root',
            container: 'scaibunker-proot',
          },
        },
      );
      child.on('error', () => {}); // a failed start shows as the process not being alive
      child.unref();
      if (!child.pid) throw new ProviderError('SPAWN_FAILED', 'proot could not be started');
      return child.pid;
    } finally {
      closeSync(log);
    }
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
    const rel = meta?.cgroup ?? this.cgroupPath(id);
    const cg = this.cgroups ?? (await Cgroups.detect());
    const prootPid = readPid(p.prootPid);
    return [
      // 1. processes: the tracees first, so that proot exits by itself (removing its files in /tmp)
      {
        step: 'tracees',
        run: async () => {
          if (!cg.exists(rel)) return;
          // a frozen tracee never dies (the cgroup step's killAll thaws again: a failure here is not one)
          if (await cg.isFrozen(rel).catch(() => false)) await cg.thaw(rel).catch(() => {});
          if (prootPid && processInCgroup(prootPid, rel)) await this.stopTracees(cg, rel, prootPid);
        },
      },
      // 2. whatever is left: proot dying does not take its tracees along, so the cgroup is the
      //    bunker; remove() SIGKILLs everything in it until it can remove the dirs
      {
        step: 'cgroup',
        run: async () => {
          if (!cg.exists(rel)) return;
          await cg.killAll(rel);
          await cg.remove(rel);
        },
      },
      // 3. a proot killed before it could clean up (or that crashed) leaves its loader and glue in /tmp
      {
        step: 'proot temporaries',
        run: async () => {
          if (prootPid && meta) await removeProotTemps(prootPid, meta.uid);
        },
      },
      // 4. the disk tmpfs
      { step: 'umount', run: async () => this.mounts.unmount(await HostMounts.mountsUnder(p.dir)) },
      // 5. files (never under a mount still there)
      {
        step: 'files',
        run: async () => {
          if ((await HostMounts.mountsUnder(p.dir)).length) throw new Error(`mounts left under ${p.dir}`);
          await rm(p.dir, { recursive: true, force: true });
        },
      },
    ];
  }

  /** SIGKILLs every process of the bunker but proot, until proot (their tracer) exits or the wait ends. */
  private async stopTracees(cg: Cgroups, rel: string, prootPid: number): Promise<void> {
    const deadline = Date.now() + PROOT_EXIT_WAIT_MS;
    while (processAlive(prootPid) && Date.now() < deadline) {
      for (const pid of await cg.procs(rel)) {
        if (pid === prootPid) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      // no event tells that a process outside our children exited: a short poll, bounded above
      await new Promise((r) => setTimeout(r, 10));
    }
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
    // what the bunker added to its disk: the tmpfs's use beyond the image copy it started with
    try {
      const fs = await statfs(this.paths(id).disk);
      const base = this.readMeta(id)?.baseUsedBytes ?? 0;
      stats.diskUsedBytes = Math.max(0, (fs.blocks - fs.bfree) * fs.bsize - base);
    } catch {
      /* unmounted under us: leave it out */
    }
    return stats;
  }

  /** Refused: a proot bunker's disk is a whole copy of its image, there is no layer to archive. */
  async writeLayer(id: string, _out: Writable): Promise<LayerFormat> {
    await this.control.require(id);
    throw new ProviderError('RUNTIME_UNAVAILABLE', 'proot bunkers cannot be snapshotted');
  }

  // ------------------------------------------------------------------ list / health

  private readMeta(id: string): BunkerMeta | undefined {
    return this.life.readMeta<BunkerMeta>(this.paths(id).meta);
  }

  async list(): Promise<Array<{ id: string; running: boolean; agentSocketPath: string }>> {
    await this.init();
    return this.life.idsIn(this.bunkersDir).map((id) => {
      const p = this.paths(id);
      const pid = readPid(p.agentPid);
      const running = !!pid && processInCgroup(pid, this.readMeta(id)?.cgroup ?? this.cgroupPath(id)) && existsSync(p.socket);
      return { id, running, agentSocketPath: p.socket };
    });
  }

  async health(): Promise<{ ok: boolean; runtime: string; details?: string }> {
    try {
      await this.init();
    } catch (e) {
      const err = e as ProviderError;
      return { ok: false, runtime: 'proot', details: [err.message, err.details].filter(Boolean).join(': ') };
    }
    return {
      ok: existsSync(this.bunkersDir),
      runtime: this.version,
      details: `NO kernel isolation (dev and trusted use only); cgroups ${this.cgroups?.layout}; network: isolated only (seccomp)`,
    };
  }

  /** Stops the resident helper shells; bunkers keep running and list() finds them again. */
  async shutdown(): Promise<void> {
    this.shell.close();
  }
}

/** proot's leftovers in /tmp (`proot-<pid>-*`, `prooted-<pid>-*`) that belong to the bunker's uid. */
async function removeProotTemps(prootPid: number, uid: number): Promise<void> {
  const prefixes = [`proot-${prootPid}-`, `prooted-${prootPid}-`];
  for (const name of await readdir(PROOT_TMP)) {
    if (!prefixes.some((pre) => name.startsWith(pre))) continue;
    const path = join(PROOT_TMP, name);
    const st = await lstat(path).catch(() => undefined);
    if (st?.uid === uid) await rm(path, { recursive: true, force: true });
  }
}

/** The first child of `pid` (proot's first tracee is the agent). */
function firstChild(pid: number): number | undefined {
  const n = Number.parseInt(readText(`/proc/${pid}/task/${pid}/children`).trim().split(/\s+/)[0] ?? '', 10);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
