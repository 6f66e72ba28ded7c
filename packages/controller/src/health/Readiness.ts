import { statfs } from 'node:fs/promises';
import { messageOf } from './DependencyState.js';

/** One thing `/readyz` checks: a name and a probe that throws when it is not ready. */
export interface ReadinessCheck {
  name: string;
  probe(): Promise<Record<string, unknown> | undefined>;
}

export interface ReadinessReport {
  ready: boolean;
  /** Per check: `ok`, why not (`error`), and what the check measured (the disk's figures). */
  checks: Record<string, { ok: boolean; error?: string } & Record<string, unknown>>;
}

/** A probe that does not answer within this is a failed one: a load balancer must not hang on us. */
const PROBE_TIMEOUT_MS = 2000;

/**
 * `GET /readyz`: every dependency probed now, in parallel, each bounded in time. Ready only when
 * all are; the report says which is not and why. `/healthz` is the cheap liveness answer.
 */
export class Readiness {
  constructor(private readonly checks: readonly ReadinessCheck[]) {}

  async report(): Promise<ReadinessReport> {
    const results = await Promise.all(
      this.checks.map(async (c) => {
        let timer: NodeJS.Timeout | undefined;
        try {
          const extra = await Promise.race([
            c.probe(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
            }),
          ]);
          return [c.name, { ok: true, ...(extra ?? {}) }] as const;
        } catch (err) {
          const extra = (err as { readiness?: Record<string, unknown> }).readiness ?? {};
          return [c.name, { ok: false, error: messageOf(err), ...extra }] as const;
        } finally {
          clearTimeout(timer);
        }
      }),
    );
    const checks = Object.fromEntries(results) as ReadinessReport['checks'];
    return { ready: results.every(([, r]) => r.ok), checks };
  }
}

/** Free space on the filesystem holding `path`, refused under `reserveBytes`. */
export async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path);
  return fs.bavail * fs.bsize;
}

export function diskCheck(path: string, reserveBytes: number): ReadinessCheck {
  return {
    name: 'disk',
    async probe() {
      const free = await freeBytes(path);
      const figures = { path, free_bytes: free, reserve_bytes: reserveBytes };
      if (free < reserveBytes) {
        throw Object.assign(new Error(`${free} bytes free under ${path}, under the reserve of ${reserveBytes}`), { readiness: figures });
      }
      return figures;
    },
  };
}
