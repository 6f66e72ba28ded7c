import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';

/** KiB charged to one cgroup (and its descendants). */
export interface Charged {
  /** Usage less the file LRU (page cache MemAvailable counts as free): anon + tmpfs + kernel. */
  unreclaimable: number;
  /** The kernel part: page tables, kernel stacks, slab (dentries, inodes, sockets, namespaces), per-CPU data. */
  kernel: number;
  /** Anonymous pages of its processes. */
  anon: number;
}

const ZERO: Charged = { unreclaimable: 0, kernel: 0, anon: 0 };

/**
 * Memory charged to cgroups (cgroup v1 memory hierarchy or v2), for bench/density.ts.
 *
 * The host-wide MemTotal − MemAvailable swings by hundreds of MB on a shared box, which at
 * 2,000 bunkers is ±0.1 MB per bunker; memory charged to the cgroups holding the server and
 * the bunkers moves only with what they do. Kernel memory charged to no cgroup at all is
 * estimated from the host's kernel counters (see uncountedKernelKb).
 */
export class MemoryCharge {
  private readonly root: string;
  private readonly v1: boolean;

  constructor() {
    this.v1 = existsSync('/sys/fs/cgroup/memory/cgroup.procs');
    this.root = this.v1 ? '/sys/fs/cgroup/memory' : '/sys/fs/cgroup';
  }

  /** The memory cgroup directory of a process. */
  cgroupOf(pid: number): string {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const line = this.v1 ? lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l)) : lines.find((l) => l.startsWith('0::'));
    if (!line) throw new Error(`no memory cgroup for pid ${pid}`);
    return this.root + line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1).replace(/\/$/, '');
  }

  /** The directory of an OCI cgroupsPath such as /scaibunker/<id>. */
  dirOf(cgroupsPath: string): string {
    return this.root + cgroupsPath;
  }

  /** What `dir` and its descendants are charged; undefined when it is gone. */
  charged(dir: string): Charged | undefined {
    try {
      const usage = Number(readFileSync(`${dir}/${this.v1 ? 'memory.usage_in_bytes' : 'memory.current'}`, 'utf8'));
      const s = this.stat(dir);
      const file = this.v1 ? (s.total_active_file ?? 0) + (s.total_inactive_file ?? 0) : (s.active_file ?? 0) + (s.inactive_file ?? 0);
      const kernel = this.v1 ? Number(readFileSync(`${dir}/memory.kmem.usage_in_bytes`, 'utf8')) : (s.kernel ?? 0);
      const anon = (this.v1 ? s.total_rss : s.anon) ?? 0;
      return { unreclaimable: (usage - file) / 1024, kernel: kernel / 1024, anon: anon / 1024 };
    } catch {
      return undefined;
    }
  }

  /** What `dir` is charged itself and none of its children is: e.g. its children's per-CPU memcg data. */
  ownCharge(dir: string): Charged {
    const own = { ...(this.charged(dir) ?? ZERO) };
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const c = this.charged(`${dir}/${e.name}`) ?? ZERO;
      own.unreclaimable -= c.unreclaimable;
      own.kernel -= c.kernel;
      own.anon -= c.anon;
    }
    return own;
  }

  /**
   * The host's kernel memory (KiB) of the kinds a cgroup can be charged: slab (reclaimable
   * too, as a cgroup's kernel charge includes its dentries and inodes), kernel stacks, page
   * tables, per-CPU data. Its growth less the growth of the kernel memory charged to the
   * bunkers' and server's cgroups is what the kernel allocated for them without charging
   * anyone (e.g. the per-cgroup shrinker slots, cgroupfs file nodes). Shared-box noise reaches
   * it too, but far less than MemAvailable (no page cache, no other processes' heaps).
   */
  hostKernelKb(): number {
    const info = readFileSync('/proc/meminfo', 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(info)?.[1] ?? 0);
    return kb('Slab') + kb('KernelStack') + kb('PageTables') + kb('Percpu');
  }

  /**
   * KiB of kmalloc-1k objects one new, empty memory cgroup takes: the kernel gives every memory
   * cgroup a 1 KiB unit per 64 memcg-aware shrinkers (one per superblock), sized by the most
   * shrinkers the host ever had at once and never shrunk — so this is what each bunker's
   * cgroup pays for the host's superblocks, and how high that peak is (× 64). Measured on `n`
   * empty cgroups made (and removed) beside the bunkers' parent; other kmalloc-1k users on the
   * host in those few milliseconds count too.
   */
  shrinkerUnitsKb(n = 32): number {
    const objects = () => Number(/^kmalloc-1k\s+(\d+)/m.exec(readFileSync('/proc/slabinfo', 'utf8'))?.[1] ?? Number.NaN);
    const dir = `${this.root}/scaibunker-bench-${process.pid}`;
    const made: string[] = [];
    mkdirSync(dir);
    try {
      const before = objects();
      for (let i = 0; i < n; i++) {
        mkdirSync(`${dir}/${i}`);
        made.push(`${dir}/${i}`);
      }
      return (objects() - before) / n;
    } finally {
      for (const d of made) rmdirSync(d);
      rmdirSync(dir);
    }
  }

  private stat(dir: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const line of readFileSync(`${dir}/memory.stat`, 'utf8').split('\n')) {
      const [k, v] = line.split(' ');
      if (k && v) out[k] = Number(v);
    }
    return out;
  }
}
