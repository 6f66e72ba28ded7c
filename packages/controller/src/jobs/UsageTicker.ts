import type { BunkerStats } from '@scaibunker/core';
import { newId } from '@scaibunker/core';
import type { Store } from '../store/Store.js';
import type { BunkerRow, UsageRow } from '../store/schema.js';
import type { LastSample } from '../store/UsageStore.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';

const MB = 1024 * 1024;
/** Terminated bunkers' last readings closed per tick (the rest wait for the next one). */
const FINALS_PER_TICK = 1000;
/** How long `end()` waits for a terminated bunker's last reading before destroying it anyway. */
const FINAL_SAMPLE_TIMEOUT_MS = 2000;

export interface UsageTickResult {
  /** Samples counted (inserted, or added to the bunker's row of the minute). */
  recorded: number;
  /** Workers that did not answer: their bunkers are metered by the next tick, from the same reading. */
  skipped_workers: string[];
  /** Terminated bunkers whose last reading became their last usage. */
  closed: number;
}

/**
 * Meters running and paused bunkers into the usage table, one tick a minute (under the job lease,
 * so one controller at a time). Per tick: every bunker's worker is asked once for the readings of
 * all its bunkers; each bunker's deltas are taken from its latest usage row (the cumulative CPU
 * reading and the time stored there — in the database, so whichever controller holds the lease
 * next continues the chain), or from its start for its first row:
 *   cpu_seconds       = Δ cumulative CPU (0 while paused; a reading that went backwards counts 0)
 *   memory_mb_minutes = current memory MB × minutes elapsed
 *   disk_mb_minutes   = disk used MB × minutes elapsed (the allocation when the worker cannot say)
 *   wall_seconds      = seconds elapsed
 * A worker that does not answer is skipped (logged); its bunkers' next row covers the gap.
 * A terminated bunker's last reading is taken by `sampleFinal` before its worker destroys it and
 * recorded by the next tick, so a bunker that lived less than a tick still has its usage.
 */
export class UsageTicker {
  private readonly statsTimeoutMs: number;

  constructor(
    private readonly store: Store,
    private readonly directory: WorkerDirectory,
    intervalMs: number,
    public log: (msg: string) => void = (m) => console.error(m),
  ) {
    this.statsTimeoutMs = Math.min(10_000, Math.max(1000, intervalMs / 2));
  }

  async tick(now = new Date()): Promise<UsageTickResult> {
    const metered = await this.store.bunkers.listMetered();
    const last = await this.store.usage.lastSamples(metered.map((b) => b.id));
    const byWorker = new Map<string, BunkerRow[]>();
    for (const b of metered) byWorker.set(b.worker_id as string, [...(byWorker.get(b.worker_id as string) ?? []), b]);
    const samples: UsageRow[] = [];
    const skipped: string[] = [];
    await Promise.all(
      [...byWorker].map(async ([workerId, bunkers]) => {
        let stats: Record<string, BunkerStats>;
        try {
          const worker = await this.directory.get(workerId);
          stats = await withTimeout(worker.stats(bunkers.map((b) => b.id)), this.statsTimeoutMs, `worker ${workerId} stats`);
        } catch (err) {
          skipped.push(workerId);
          this.log(
            `[usage] worker ${workerId} did not answer (${(err as Error).message}); its ${bunkers.length} bunker(s) wait for the next tick`,
          );
          return;
        }
        for (const b of bunkers) {
          const s = stats[b.id];
          const row = s && usageRow(b, last.get(b.id), s, b.state === 'paused', now);
          if (row) samples.push(row);
        }
      }),
    );
    const recorded = await this.store.usage.record(samples);
    return { recorded, skipped_workers: skipped, closed: await this.closeFinals() };
  }

  /**
   * Called as a bunker is terminated, before its worker destroys it: keeps its last reading for
   * the next tick. Best effort and bounded: a worker that does not answer in time loses the bunker's
   * usage since its last tick.
   */
  async sampleFinal(row: BunkerRow, paused: boolean): Promise<void> {
    if (!row.worker_id || !row.started_at) return;
    try {
      const worker = await this.directory.get(row.worker_id);
      const s = (await withTimeout(worker.stats([row.id]), FINAL_SAMPLE_TIMEOUT_MS, `worker ${row.worker_id} stats`))[row.id];
      if (!s) return;
      await this.store.usage.stashFinal({
        bunker_id: row.id,
        paused: paused ? 1 : 0,
        cpu_usage_ns: Math.round(s.cpuUsageNs),
        memory_bytes: Math.round(s.memoryBytes),
        disk_used_bytes: s.diskUsedBytes === undefined ? null : Math.round(s.diskUsedBytes),
        sampled_at: new Date().toISOString(),
      });
    } catch (err) {
      this.log(`[usage] last reading of ${row.id} not taken: ${(err as Error).message}`);
    }
  }

  /** Turns stashed last readings into the bunkers' last usage rows. */
  private async closeFinals(): Promise<number> {
    const finals = await this.store.usage.listFinals(FINALS_PER_TICK);
    if (finals.length === 0) return 0;
    const ids = finals.map((f) => f.bunker_id);
    const bunkers = new Map((await this.store.bunkers.getByIds(ids)).map((b) => [b.id, b]));
    const last = await this.store.usage.lastSamples(ids);
    const rows: UsageRow[] = [];
    for (const f of finals) {
      const b = bunkers.get(f.bunker_id);
      const reading = {
        cpuUsageNs: f.cpu_usage_ns,
        memoryBytes: f.memory_bytes,
        pids: 0,
        ...(f.disk_used_bytes === null ? {} : { diskUsedBytes: f.disk_used_bytes }),
      };
      const row = b && usageRow(b, last.get(b.id), reading, f.paused === 1, new Date(f.sampled_at));
      if (row) rows.push(row);
    }
    const closed = await this.store.usage.record(rows);
    await this.store.usage.deleteFinals(ids);
    return closed;
  }
}

/** The usage row for one reading, or nothing when no time passed since the bunker's last row. */
function usageRow(b: BunkerRow, last: LastSample | undefined, s: BunkerStats, paused: boolean, at: Date): UsageRow | undefined {
  const since = last?.sampled_at ?? b.started_at;
  if (!since) return undefined;
  const seconds = (at.getTime() - Date.parse(since)) / 1000;
  if (!(seconds > 0)) return undefined;
  const cpuNs = Math.round(s.cpuUsageNs);
  const minutes = seconds / 60;
  const sampledAt = at.toISOString();
  return {
    id: newId('us'),
    tenant_id: b.tenant_id,
    bunker_id: b.id,
    image: b.image,
    minute_start: new Date(Math.floor(at.getTime() / 60_000) * 60_000).toISOString(),
    since_at: since,
    sampled_at: sampledAt,
    // Cumulative counters only grow while a bunker lives; one that went backwards is not charged.
    cpu_seconds: paused ? 0 : Math.max(0, cpuNs - (last?.cpu_usage_ns ?? 0)) / 1e9,
    memory_mb_minutes: (s.memoryBytes / MB) * minutes,
    disk_mb_minutes: ((s.diskUsedBytes ?? b.disk_mb * MB) / MB) * minutes,
    wall_seconds: seconds,
    cpu_usage_ns: cpuNs,
    created_at: new Date().toISOString(),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
