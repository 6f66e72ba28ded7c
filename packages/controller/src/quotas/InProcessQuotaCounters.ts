import { Mutex } from './Mutex.js';
import type { ChargeResult, ChargeSet, QuotaCharge, QuotaCounters } from './QuotaCounters.js';

/**
 * Quota counters in this process, for embedded mode (one controller). The same semantics as the
 * Redis counters; each operation runs under one mutex. A fresh instance (a restart) is not ready
 * until it is rebuilt from the bunker rows.
 */
export class InProcessQuotaCounters implements QuotaCounters {
  readonly kind = 'in-process' as const;
  private readonly counters = new Map<string, number>();
  private readonly sets = new Map<string, Array<{ key: string; amount: number }>>();
  private ready = false;
  private readonly ops = new Mutex();
  private readonly rebuildLock = new Mutex();

  tryCharge(bunkerId: string, charges: readonly QuotaCharge[]): Promise<ChargeResult> {
    return this.ops.run((): ChargeResult => {
      if (!this.ready) return { status: 'not_ready' };
      if (this.sets.has(bunkerId)) return { status: 'ok' };
      for (const [index, c] of charges.entries()) {
        const current = this.counters.get(c.key) ?? 0;
        if (c.amount > 0 && c.cap !== null && current + c.amount > c.cap) return { status: 'exceeded', index, current };
      }
      for (const c of charges) this.counters.set(c.key, (this.counters.get(c.key) ?? 0) + c.amount);
      this.sets.set(
        bunkerId,
        charges.map((c) => ({ key: c.key, amount: c.amount })),
      );
      return { status: 'ok' };
    });
  }

  release(bunkerId: string): Promise<boolean> {
    return this.ops.run(() => {
      const set = this.sets.get(bunkerId);
      if (!set) return false;
      for (const c of set) this.counters.set(c.key, (this.counters.get(c.key) ?? 0) - c.amount);
      this.sets.delete(bunkerId);
      return true;
    });
  }

  usage(keys: readonly string[]): Promise<Map<string, number>> {
    return this.ops.run(() => new Map(keys.map((k) => [k, this.counters.get(k) ?? 0])));
  }

  isReady(): Promise<boolean> {
    return this.ops.run(() => this.ready);
  }

  rebuild(sets: readonly ChargeSet[]): Promise<void> {
    return this.ops.run(() => {
      this.counters.clear();
      this.sets.clear();
      for (const s of sets) {
        this.sets.set(
          s.bunkerId,
          s.charges.map((c) => ({ key: c.key, amount: c.amount })),
        );
        for (const c of s.charges) this.counters.set(c.key, (this.counters.get(c.key) ?? 0) + c.amount);
      }
      this.ready = true;
    });
  }

  withRebuildLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.rebuildLock.run(fn);
  }

  /** What a process restart does: every counter gone, rebuilt from rows on next use. */
  wipe(): Promise<void> {
    return this.ops.run(() => {
      this.counters.clear();
      this.sets.clear();
      this.ready = false;
    });
  }

  async close(): Promise<void> {}
}
