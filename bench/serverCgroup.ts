import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import type { MemoryCharge } from './memoryCharge.js';

/**
 * A memory cgroup of its own for the server bench/density.ts starts, apart from the bench
 * process: the bench's client objects (and its heap's growth) are no cost of a bunker's.
 * Two children of the bench's memory cgroup, `density-server-<pid>` and
 * `density-bench-<pid>`: the bench is in the first only while it starts the server (which
 * inherits it, and its helper shells and runtimes after it), then in the second.
 * cgroup v1 only — v2 allows no process in a cgroup whose children get the memory
 * controller — so elsewhere `start` returns undefined and both share the bench's cgroup.
 */
export class ServerCgroup {
  private constructor(
    private readonly home: string,
    readonly server: string,
    private readonly bench: string,
  ) {}

  /** Starts the server with `start` in a cgroup of its own; undefined (and `start` run as is) when the host is not cgroup v1. */
  static async start<T>(charge: MemoryCharge, start: () => Promise<T>): Promise<{ cgroup: ServerCgroup | undefined; started: T }> {
    if (!existsSync('/sys/fs/cgroup/memory/cgroup.procs')) return { cgroup: undefined, started: await start() };
    const home = charge.cgroupOf(process.pid);
    const cgroup = new ServerCgroup(home, `${home}/density-server-${process.pid}`, `${home}/density-bench-${process.pid}`);
    mkdirSync(cgroup.server);
    mkdirSync(cgroup.bench);
    try {
      ServerCgroup.join(cgroup.server);
      const started = await start();
      ServerCgroup.join(cgroup.bench);
      return { cgroup, started };
    } catch (err) {
      cgroup.remove();
      throw err;
    }
  }

  /** Back to the bench's own cgroup and both removed; call once the server has exited. */
  remove(): void {
    ServerCgroup.join(this.home);
    for (const dir of [this.server, this.bench]) {
      try {
        rmdirSync(dir);
      } catch {
        /* never made, or a process of the server's still in it: left to the next reboot's tidy-up, named after this pid */
      }
    }
  }

  private static join(dir: string): void {
    writeFileSync(`${dir}/cgroup.procs`, String(process.pid));
  }
}
