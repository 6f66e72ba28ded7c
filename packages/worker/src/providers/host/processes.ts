/** Host process checks by pid (for processes a restarted worker did not spawn itself). */
import { readFileSync } from 'node:fs';

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export function readPid(pidFile: string): number | undefined {
  const n = Number.parseInt(readText(pidFile).trim(), 10);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

export function processAlive(pid: number): boolean {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** True when `pid` is alive and belongs to the cgroup `rel` (guards against pid reuse). */
export function processInCgroup(pid: number, rel: string): boolean {
  if (!processAlive(pid)) return false;
  const cg = readText(`/proc/${pid}/cgroup`);
  return cg.split('\n').some((l) => l.endsWith(`:${rel}`) || l.includes(`:${rel}/`));
}
