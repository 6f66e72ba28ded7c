import { readFileSync } from 'node:fs';

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
