/** One counter increment: `amount` added to `key`, refused when it would pass `cap` (null: never refused). */
export interface QuotaCharge {
  key: string;
  amount: number;
  cap: number | null;
}

/** What a bunker was charged: the decrement set its end releases, and what a rebuild re-counts. */
export interface ChargeSet {
  bunkerId: string;
  charges: ReadonlyArray<{ key: string; amount: number }>;
}

export type ChargeResult =
  | { status: 'ok' }
  /** The first charge (by index) that would pass its cap, and the counter's value now. */
  | { status: 'exceeded'; index: number; current: number }
  /** The counters are gone (Redis wiped, or a fresh process): rebuild, then try again. */
  | { status: 'not_ready' };

/**
 * Quota counters: Redis (several controllers) or in-process (embedded). Every operation is
 * atomic; a bunker's charges are kept with it so its release decrements exactly what was
 * charged, whatever happened to the profiles and assignments since.
 */
export interface QuotaCounters {
  readonly kind: 'redis' | 'in-process';
  /**
   * All or nothing: checks every charge whose amount is > 0 against its cap, and only if none
   * would pass it increments them all and keeps them as the bunker's decrement set. Charging
   * a bunker that already has a set is a no-op answering ok.
   */
  tryCharge(bunkerId: string, charges: readonly QuotaCharge[]): Promise<ChargeResult>;
  /** Decrements the bunker's set and forgets it; idempotent (false when there was nothing to release). */
  release(bunkerId: string): Promise<boolean>;
  /** Current values (0 when absent). */
  usage(keys: readonly string[]): Promise<Map<string, number>>;
  /** False when the counters must be rebuilt from rows before use. */
  isReady(): Promise<boolean>;
  /** Replaces every counter and decrement set by these, then marks the counters ready. */
  rebuild(sets: readonly ChargeSet[]): Promise<void>;
  /** Runs `fn` holding the rebuild lock (shared by every controller on the same Redis). */
  withRebuildLock<T>(fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
