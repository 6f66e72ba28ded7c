import type { Bunker } from '@scaibunker/sdk';
import { processCpuUs } from './processCpu.js';

/** A set of processes read together (pid → CPU µs so far); its members may change between readings. */
export type CpuGroup = () => Map<number, number>;

/**
 * One closed loop of `exec(['true'])` per bunker, run in slices (bench:load alternates the
 * controller loop with the worker-direct one): counts, latencies, errors, time spent, and the
 * CPU time the given processes (and groups of processes) used while it ran.
 */
export class ExecLoop {
  count = 0;
  errors = 0;
  private seconds = 0;
  private readonly latencies = new Float64Array(4_000_000);
  private readonly cpuUs: number[];
  private readonly groupUs = new Map<string, number>();

  constructor(
    /** Processes whose CPU time is charged to this loop (/proc/PID/stat). */
    private readonly pids: number[],
    private readonly execOne: (b: Bunker) => Promise<void>,
    private readonly log: (msg: string) => void = (m) => process.stderr.write(`[bench] ${m}\n`),
    /** Groups read at each slice's start and end: a member's time counts from its first reading in the slice. */
    private readonly groups: Record<string, CpuGroup> = {},
  ) {
    this.cpuUs = pids.map(() => 0);
  }

  /** Every bunker execs in a loop for `seconds`. */
  async run(bunkers: Bunker[], seconds: number): Promise<void> {
    const cpu0 = this.pids.map(processCpuUs);
    const groups0 = Object.entries(this.groups).map(([name, read]) => [name, read(), read] as const);
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    await Promise.all(
      bunkers.map(async (b) => {
        while (performance.now() < deadline) {
          const s = performance.now();
          try {
            await this.execOne(b);
            if (this.count < this.latencies.length) this.latencies[this.count] = performance.now() - s;
            this.count++;
          } catch (err) {
            this.errors++;
            if (this.errors <= 5) this.log(`exec failed: ${(err as Error).message}`);
          }
        }
      }),
    );
    this.seconds += (performance.now() - t0) / 1000;
    this.pids.forEach((pid, i) => {
      this.cpuUs[i] = (this.cpuUs[i] as number) + processCpuUs(pid) - (cpu0[i] as number);
    });
    for (const [name, before, read] of groups0) {
      let used = 0;
      for (const [pid, us] of read()) used += us - (before.get(pid) ?? 0);
      this.groupUs.set(name, (this.groupUs.get(name) ?? 0) + used);
    }
  }

  /** CPU µs per exec of a group given to the constructor. */
  groupCpuUsPerExec(name: string): number {
    return this.count > 0 ? Math.round((this.groupUs.get(name) ?? 0) / this.count) : Number.NaN;
  }

  perS(): number {
    return this.seconds > 0 ? Math.round(this.count / this.seconds) : Number.NaN;
  }

  /** The p-th percentile latency (ms) of the execs so far. */
  pct(p: number): number {
    const sorted = this.latencies.slice(0, Math.min(this.count, this.latencies.length)).sort();
    if (sorted.length === 0) return Number.NaN;
    return Number((sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number).toFixed(2));
  }

  /** CPU µs per exec of the i-th process. */
  cpuUsPerExec(i: number): number {
    return this.count > 0 ? Math.round((this.cpuUs[i] as number) / this.count) : Number.NaN;
  }
}
