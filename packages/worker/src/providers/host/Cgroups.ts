import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MountTable } from './MountTable.js';
import { runCommand } from './runCommand.js';

/**
 * - `v2`: one unified cgroup2 hierarchy at /sys/fs/cgroup.
 * - `hybrid`: cgroup-v1 controllers under /sys/fs/cgroup/<ctrl> plus a cgroup2 mount at
 *   /sys/fs/cgroup/unified (systemd's "hybrid" layout).
 * - `v1`: v1 controllers only.
 */
export type CgroupLayout = 'v2' | 'hybrid' | 'v1';

/** Limits for a cgroup the worker creates itself (the microvm provider's QEMU process). */
export interface CgroupLimits {
  /** CPU bandwidth in millicores (quota per 100 ms period). */
  cpuMillicores: number;
  memoryBytes: number;
  pids: number;
}

export interface CgroupStats {
  cpuUsageNs: number;
  memoryBytes: number;
  pids: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The host's cgroup layout and the cgroup operations the providers do themselves (freezer,
 * stats, leftover removal; for QEMU also creation and limits — for containers those are the
 * OCI runtime's job: config.json `linux.resources` + `cgroupsPath`).
 */
export class Cgroups {
  private constructor(
    readonly layout: CgroupLayout,
    /** v1: controller (or `name=systemd`) -> mount point. */
    readonly v1: Map<string, string>,
    /** Mount point of the cgroup2 hierarchy, if any. */
    readonly unified: string | undefined,
  ) {}

  static async detect(): Promise<Cgroups> {
    const table = await MountTable.read();
    const v1 = new Map<string, string>();
    let unified: string | undefined;
    for (const m of table) {
      if (m.fsType === 'cgroup2') {
        if (!unified || m.mountPoint === '/sys/fs/cgroup') unified = m.mountPoint;
      } else if (m.fsType === 'cgroup') {
        for (const opt of m.options.split(',')) {
          if (
            opt === 'rw' ||
            opt === 'ro' ||
            opt === 'xattr' ||
            opt.startsWith('release_agent') ||
            opt === 'clone_children' ||
            opt === 'noprefix'
          )
            continue;
          if (!v1.has(opt)) v1.set(opt, m.mountPoint);
        }
      }
    }
    const layout: CgroupLayout = v1.size === 0 ? 'v2' : unified ? 'hybrid' : 'v1';
    return new Cgroups(layout, v1, unified);
  }

  /**
   * On a hybrid host crun refuses to run while any controller is still attached to the
   * cgroup2 hierarchy ("cgroups in hybrid mode not supported, drop all controllers from
   * cgroupv2") — typically `hugetlb`, which systemd does not mount as v1. Mount each such
   * controller as a v1 hierarchy at /sys/fs/cgroup/<ctrl>. Idempotent; returns what it
   * mounted; throws when a mount is impossible (the caller then falls back to runc).
   */
  async fixHybrid(): Promise<string[]> {
    if (this.layout !== 'hybrid' || !this.unified) return [];
    const ctrls = ((await readText(join(this.unified, 'cgroup.controllers'))) ?? '').trim().split(/\s+/).filter(Boolean);
    const mounted: string[] = [];
    for (const c of ctrls) {
      if (this.v1.has(c)) continue;
      const target = `/sys/fs/cgroup/${c}`;
      await mkdir(target, { recursive: true });
      const r = await runCommand('mount', ['-t', 'cgroup', '-o', c, 'cgroup', target]);
      if (r.code !== 0 && !(await MountTable.isMountpoint(target))) {
        throw new Error(`mount -t cgroup -o ${c} cgroup ${target}: ${r.stderr.trim()}`);
      }
      this.v1.set(c, target);
      mounted.push(c);
    }
    return mounted;
  }

  /** Every directory the cgroup `rel` (an OCI cgroupsPath like /scaibunker/<id>) may have. */
  dirs(rel: string): string[] {
    const r = rel.replace(/^\/+/, '');
    const out = new Set<string>();
    if (this.layout === 'v2' && this.unified) out.add(join(this.unified, r));
    else {
      for (const mp of this.v1.values()) out.add(join(mp, r));
      if (this.unified) out.add(join(this.unified, r));
    }
    return [...out];
  }

  /** Directory of `rel` in the hierarchy holding `controller` (v2: the unified dir). */
  dir(rel: string, controller: string): string | undefined {
    const r = rel.replace(/^\/+/, '');
    if (this.layout === 'v2') return this.unified ? join(this.unified, r) : undefined;
    const mp = this.v1.get(controller);
    return mp ? join(mp, r) : undefined;
  }

  /**
   * Creates `rel` with CPU, memory (no swap) and pids limits in every hierarchy that holds
   * those controllers (v1 and hybrid: one dir per controller; v2: one dir, controllers
   * enabled along the path). Returns the cgroup.procs files to put a process into.
   */
  async create(rel: string, limits: CgroupLimits): Promise<string[]> {
    const r = rel.replace(/^\/+/, '');
    const periodUs = 100_000;
    const quotaUs = Math.max(1000, Math.round((limits.cpuMillicores / 1000) * periodUs));
    if (this.layout === 'v2') {
      if (!this.unified) throw new Error('no cgroup2 mount');
      const parts = r.split('/');
      let d = this.unified;
      for (const part of parts) {
        // a controller must be enabled in the parent before the child can use it
        await writeFile(join(d, 'cgroup.subtree_control'), '+cpu +memory +pids').catch(() => {});
        d = join(d, part);
        await mkdir(d, { recursive: true });
      }
      await writeFile(join(d, 'cpu.max'), `${quotaUs} ${periodUs}`);
      await writeFile(join(d, 'memory.max'), String(limits.memoryBytes));
      await writeFile(join(d, 'memory.swap.max'), '0').catch(() => {});
      await writeFile(join(d, 'pids.max'), String(limits.pids));
      return [join(d, 'cgroup.procs')];
    }
    const procs = new Set<string>();
    const settings: Array<[string, string, string]> = [
      ['cpu', 'cpu.cfs_period_us', String(periodUs)],
      ['cpu', 'cpu.cfs_quota_us', String(quotaUs)],
      ['memory', 'memory.limit_in_bytes', String(limits.memoryBytes)],
      ['pids', 'pids.max', String(limits.pids)],
    ];
    for (const ctrl of ['cpu', 'cpuacct', 'memory', 'pids', 'freezer']) {
      const d = this.dir(rel, ctrl);
      if (!d) continue;
      await mkdir(d, { recursive: true });
      procs.add(join(d, 'cgroup.procs'));
    }
    for (const [ctrl, file, value] of settings) {
      const d = this.dir(rel, ctrl);
      if (!d) throw new Error(`no ${ctrl} cgroup controller mounted`);
      await writeFile(join(d, file), value);
    }
    // without swap accounting memsw does not exist; the memory limit alone then applies
    const mem = this.dir(rel, 'memory');
    if (mem) await writeFile(join(mem, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes)).catch(() => {});
    return [...procs];
  }

  exists(rel: string): boolean {
    return this.dirs(rel).some((d) => existsSync(d));
  }

  async freeze(rel: string, timeoutMs = 5000): Promise<void> {
    await this.setFrozen(rel, true, timeoutMs);
  }

  async thaw(rel: string, timeoutMs = 5000): Promise<void> {
    await this.setFrozen(rel, false, timeoutMs);
  }

  async isFrozen(rel: string): Promise<boolean> {
    if (this.layout === 'v2') {
      const d = this.dir(rel, 'freezer');
      const ev = d ? await readText(join(d, 'cgroup.events')) : undefined;
      return /^frozen 1$/m.test(ev ?? '');
    }
    const d = this.dir(rel, 'freezer');
    const st = d ? await readText(join(d, 'freezer.state')) : undefined;
    return (st ?? '').trim() === 'FROZEN';
  }

  private async setFrozen(rel: string, frozen: boolean, timeoutMs: number): Promise<void> {
    const d = this.dir(rel, 'freezer');
    if (!d || !existsSync(d)) throw new Error(`no freezer cgroup for ${rel}`);
    const deadline = Date.now() + timeoutMs;
    if (this.layout === 'v2') {
      await writeFile(join(d, 'cgroup.freeze'), frozen ? '1' : '0');
      while ((await this.isFrozen(rel)) !== frozen) {
        if (Date.now() > deadline) throw new Error(`cgroup ${rel} did not ${frozen ? 'freeze' : 'thaw'} in time`);
        await sleep(2);
      }
      return;
    }
    const want = frozen ? 'FROZEN' : 'THAWED';
    for (;;) {
      await writeFile(join(d, 'freezer.state'), want);
      const st = ((await readText(join(d, 'freezer.state'))) ?? '').trim();
      if (st === want) return;
      if (Date.now() > deadline) throw new Error(`cgroup ${rel} stuck in ${st}`);
      await sleep(2);
    }
  }

  async stats(rel: string): Promise<CgroupStats> {
    const num = (s: string | undefined) => (s === undefined ? 0 : Number(s.trim()) || 0);
    if (this.layout === 'v2') {
      const d = this.dir(rel, 'cpu');
      if (!d || !existsSync(d)) throw new Error(`no cgroup for ${rel}`);
      const cpu = (await readText(join(d, 'cpu.stat'))) ?? '';
      const usec = Number(/^usage_usec (\d+)$/m.exec(cpu)?.[1] ?? 0);
      return {
        cpuUsageNs: usec * 1000,
        memoryBytes: num(await readText(join(d, 'memory.current'))),
        pids: num(await readText(join(d, 'pids.current'))),
      };
    }
    const cpuacct = this.dir(rel, 'cpuacct');
    const memory = this.dir(rel, 'memory');
    const pids = this.dir(rel, 'pids');
    if (!memory || !existsSync(memory)) throw new Error(`no cgroup for ${rel}`);
    return {
      cpuUsageNs: cpuacct ? num(await readText(join(cpuacct, 'cpuacct.usage'))) : 0,
      memoryBytes: num(await readText(join(memory, 'memory.usage_in_bytes'))),
      pids: pids ? num(await readText(join(pids, 'pids.current'))) : 0,
    };
  }

  /** Host pids of every process in the cgroup. */
  async procs(rel: string): Promise<number[]> {
    const seen = new Set<number>();
    for (const d of this.dirs(rel)) {
      const text = await readText(join(d, 'cgroup.procs'));
      for (const l of (text ?? '').split('\n')) if (l.trim()) seen.add(Number(l));
    }
    return [...seen];
  }

  /**
   * Removes the cgroup dirs of `rel` in every hierarchy (children first), killing anything
   * still inside. Retries while the kernel still reports the cgroup busy.
   */
  async remove(rel: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const d of this.dirs(rel)) {
      if (!existsSync(d)) continue;
      for (const child of await subdirsDeepestFirst(d)) await rmdirRetry(child, deadline, async () => this.killAll(rel));
      await rmdirRetry(d, deadline, async () => this.killAll(rel));
    }
  }

  async killAll(rel: string): Promise<void> {
    if (await this.isFrozen(rel).catch(() => false)) await this.thaw(rel).catch(() => {});
    for (const pid of await this.procs(rel)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

async function subdirsDeepestFirst(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = join(d, e.name);
      await walk(p);
      out.push(p);
    }
  };
  await walk(dir);
  return out;
}

async function rmdirRetry(dir: string, deadline: number, onBusy: () => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() > deadline) throw e;
      if (attempt % 10 === 0) await onBusy();
      await sleep(5);
    }
  }
}
