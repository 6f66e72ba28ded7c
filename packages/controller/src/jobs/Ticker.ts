import type { JobLeaseStore } from '../store/JobLeaseStore.js';

export interface TickerLease {
  store: JobLeaseStore;
  /** This controller process. */
  holder: string;
}

/**
 * Runs a job every interval. A tick never overlaps the previous one, a failing tick is logged,
 * not fatal, and with a lease only the controller holding it runs the job (it renews the
 * lease each tick; another controller takes over once it lapses).
 */
export class Ticker {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

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
      if (this.lease && !(await this.lease.store.claim(this.name, this.lease.holder, this.intervalMs * 1.5))) return;
      ran = true;
      await this.job();
    })().catch((err) => this.log(`[${this.name}] tick failed: ${(err as Error).message}`));
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
