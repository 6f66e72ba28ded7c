import { ApiError, type ErrorCode } from '@scaibunker/core';
import type { JobLeaseStore } from '../store/JobLeaseStore.js';

/** A tick failing with one of these waits for its dependency: the job pauses, and resumes by itself. */
const OUTAGES = new Set<ErrorCode>(['STORE_UNAVAILABLE', 'LIVE_STATE_UNAVAILABLE', 'BLOB_STORE_UNAVAILABLE']);

/** One tick a controller ran under its lease (for tracing which controller ran what, when). */
export interface TickRecord {
  job: string;
  holder: string;
  startedAt: number;
  endedAt: number;
  result: unknown;
}

export interface TickerLease {
  store: JobLeaseStore;
  /** This controller process. */
  holder: string;
  /** Called after every tick this controller ran (`--trace-jobs`). */
  onTick?: (tick: TickRecord) => void;
  /** Told after every tick this controller ran: whether it succeeded (metrics). */
  observe?: (job: string, ok: boolean) => void;
}

/**
 * Runs a job every interval. A tick never overlaps the previous one, a failing tick is logged,
 * not fatal, and with a lease only the controller holding it runs the job: it claims (or
 * renews) the lease before each tick and keeps renewing it while the tick runs, so a tick that
 * outlasts the lease's 1.5 intervals is not started a second time by another controller. A
 * controller that dies lets its leases lapse; one that stops releases them.
 *
 * While a dependency is down (the database, Redis, the blob store) ticks fail with its code:
 * the job counts as paused, logged once, and resumes (logged once) with the first tick that
 * succeeds; the lease is claimed afresh by compare-and-set, so after an outage each tick still
 * runs on one controller.
 */
export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  /** The outage this job is paused for, if any. */
  private pausedFor: ErrorCode | undefined;

  constructor(
    readonly name: string,
    private readonly intervalMs: number,
    private readonly job: () => Promise<unknown>,
    private readonly lease?: TickerLease,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Runs one tick now; resolves false when another controller holds the job. */
  async tick(): Promise<boolean> {
    if (this.running) return false;
    let ran = false;
    this.running = (async () => {
      const lease = this.lease;
      if (!lease) {
        ran = true;
        await this.job();
        return;
      }
      const ttlMs = this.intervalMs * 1.5;
      if (!(await lease.store.claim(this.name, lease.holder, ttlMs))) return;
      ran = true;
      // The tick ends only once a renewal in flight has landed: one committing after `stop`'s
      // release would hand the lease back to this controller for another TTL.
      let renewing: Promise<void> = Promise.resolve();
      const renew = setInterval(() => {
        renewing = lease.store.claim(this.name, lease.holder, ttlMs).then(
          (held) => {
            if (!held) this.log(`[${this.name}] lost the lease while a tick was running`);
          },
          (err) => this.log(`[${this.name}] lease renewal failed: ${(err as Error).message}`),
        );
      }, ttlMs / 3);
      const startedAt = Date.now();
      let result: unknown;
      try {
        result = await this.job();
      } finally {
        clearInterval(renew);
        await renewing;
        lease.onTick?.({ job: this.name, holder: lease.holder, startedAt, endedAt: Date.now(), result });
      }
    })().then(
      () => {
        if (ran) this.lease?.observe?.(this.name, true);
        if (!this.pausedFor) return;
        this.log(`[${this.name}] resumed (${this.pausedFor} is over)`);
        this.pausedFor = undefined;
      },
      (err) => {
        // A failed lease claim (the database is down) counts too: the job did not run when due.
        this.lease?.observe?.(this.name, false);
        if (err instanceof ApiError && OUTAGES.has(err.code)) {
          if (this.pausedFor !== err.code) this.log(`[${this.name}] paused: ${err.code} (${err.message})`);
          this.pausedFor = err.code;
          return;
        }
        this.log(`[${this.name}] tick failed: ${(err as Error).message}`);
      },
    );
    try {
      await this.running;
    } finally {
      this.running = undefined;
    }
    return ran;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
    if (this.lease) await this.lease.store.release(this.name, this.lease.holder).catch(() => undefined);
  }
}
