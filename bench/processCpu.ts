import { readdirSync, readFileSync } from 'node:fs';

/** USER_HZ: /proc/PID/stat counts CPU time in these ticks (100 on every Linux we run on). */
const TICKS_PER_S = 100;

/**
 * CPU time (user + system) a process has used so far, in microseconds, from /proc/PID/stat:
 * the benches read it for processes they started (controllers, workers) without touching them.
 */
export function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / TICKS_PER_S;
}

/** CPU µs the processes used between two readings, divided by `per` (operations). */
export function cpuUsPer(before: number[], after: number[], per: number): number {
  const used = after.reduce((sum, a, i) => sum + a - (before[i] as number), 0);
  return per > 0 ? Math.round(used / per) : Number.NaN;
}

/** CPU µs used so far by each process whose command line contains `needle` (pid → µs); gone processes are left out. */
export function matchingProcessesCpuUs(needle: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (!readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle)) continue;
      out.set(Number(name), processCpuUs(Number(name)));
    } catch {
      /* it ended meanwhile */
    }
  }
  return out;
}

/** The whole machine's busy CPU µs so far (every core: user, nice, system, irq, softirq, steal), from /proc/stat. */
export function machineBusyUs(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return ((user + nice + system + irq + softirq + steal) * 1_000_000) / TICKS_PER_S;
}
