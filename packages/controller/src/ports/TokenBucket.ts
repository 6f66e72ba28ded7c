/**
 * A byte rate with a burst: `take(n)` lets n bytes through at once and says how long the taker
 * should hold off so that, over time, no more than `bytesPerS` pass (the bucket goes into debt
 * rather than splitting a chunk). The clock is injectable so the arithmetic is testable.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly bytesPerS: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Takes n bytes; the milliseconds to wait before more may pass (0: none). */
  take(n: number): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.bytesPerS) / 1000);
    this.last = t;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.bytesPerS);
  }
}
