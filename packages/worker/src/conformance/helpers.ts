/** Small helpers of the provider suites: a shell command in a bunker, a race against a timeout, a host pid check. */
import { readFileSync } from 'node:fs';
import type { AgentClient } from '../agent/AgentClient.js';

export interface ShResult {
  code: number | null;
  signal: string | null;
  out: string;
  err: string;
}

export async function sh(c: AgentClient, script: string, timeoutMs = 20_000): Promise<ShResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const r = await c.exec(
    { argv: ['/bin/sh', '-c', script], timeoutMs },
    {
      onStdout: (d) => {
        out.push(d);
      },
      onStderr: (d) => {
        err.push(d);
      },
    },
  );
  return { code: r.exitCode, signal: r.signal, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
}

export function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);
}

/** A live (not zombie) process. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return false;
  }
}
