import { isStoreUnavailable } from '../health/failures.js';
import type { AuditEventRow } from '../store/schema.js';

/** The part of the store the writer needs (tests hand it one that fails). */
export interface AuditSink {
  insertMany(rows: readonly AuditEventRow[]): Promise<void>;
}

export interface AuditWriterOptions {
  /** How long a row may wait for others to share its statement. */
  flushIntervalMs?: number;
  /** Rows per statement; a queue this long is flushed at once. */
  batchSize?: number;
  /** Rows kept while the database does not take them; later ones are dropped (counted, logged). */
  maxPending?: number;
  /** Wait before offering rows again after a failed flush. */
  retryMs?: number;
  log?: (msg: string) => void;
}

/** How long a hot-path audit event may wait for others to share its statement (the default). */
export const AUDIT_FLUSH_INTERVAL_MS = 100;

const DEFAULTS = { flushIntervalMs: AUDIT_FLUSH_INTERVAL_MS, batchSize: 500, maxPending: 10_000, retryMs: 1000 };

/**
 * Group commit for audit events on the hot path (exec, files). `write` only queues the row and
 * returns: an exec or a file call never waits for an audit round trip. Queued rows go out as
 * one multi-row insert per flush — every `flushIntervalMs`, or at once when `batchSize` are
 * waiting — one flush at a time, oldest first.
 *
 * While the database is down (STORE_UNAVAILABLE) a flush keeps its rows at the head of the
 * queue and is retried every `retryMs`; no request waits to be told. So the queue is bounded
 * (`maxPending`, 10,000 by default — at ~1 KiB a row, ~10 MB); rows written while it is full
 * are dropped, counted, and logged once per outage, with the total when the database takes
 * rows again. Any other failure is a row the database refuses: the batch is retried row by row
 * and the refused ones are logged and dropped, so one cannot block the queue for ever.
 *
 * `close` flushes what is queued (one attempt) and leaves no timer behind.
 */
export class AuditWriter {
  private readonly queue: AuditEventRow[] = [];
  private readonly opts: typeof DEFAULTS;
  private readonly log: (msg: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  /** The last flush failed: wait for the retry timer rather than flushing on size. */
  private failing = false;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly sink: AuditSink,
    opts: AuditWriterOptions = {},
  ) {
    const { log, ...rest } = opts;
    this.opts = { ...DEFAULTS, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) };
    this.log = log ?? ((m) => console.error(m));
  }

  /** Rows waiting to be written. */
  get pending(): number {
    return this.queue.length;
  }

  /** Rows dropped since the queue was last full. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** Queues the row; never throws, never waits. */
  write(row: AuditEventRow): void {
    if (this.closed) {
      this.drop(1, 'the audit writer is closed');
      return;
    }
    if (this.queue.length >= this.opts.maxPending) {
      this.drop(1, `${this.opts.maxPending} audit events are waiting for the database`);
      return;
    }
    this.queue.push(row);
    if (this.queue.length >= this.opts.batchSize && !this.failing) this.flushSoon(0);
    else this.flushSoon(this.opts.flushIntervalMs);
  }

  /** Writes everything queued now (one attempt per batch); for `close` and tests. */
  async flush(): Promise<void> {
    // A flush already under way finishes first: one at a time keeps the rows in order.
    while (this.flushing) await this.flushing;
    this.clearTimer();
    this.flushing = this.flushQueue().finally(() => {
      this.flushing = undefined;
    });
    await this.flushing;
    // Rows queued after the flush's last batch (none unless it failed and set its retry timer).
    if (this.queue.length > 0 && !this.timer) this.flushSoon(this.opts.flushIntervalMs);
  }

  /** Flushes what is queued and stops; rows the database still refuses are logged as lost. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    this.clearTimer();
    if (this.queue.length > 0) {
      this.log(`[audit] ${this.queue.length} audit events could not be written before shutdown and are lost`);
      this.queue.length = 0;
    }
  }

  private flushSoon(delayMs: number): void {
    if (this.closed || this.flushing) return;
    if (this.timer) {
      if (delayMs > 0) return;
      this.clearTimer();
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private clearTimer(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async flushQueue(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.slice(0, this.opts.batchSize);
      let taken = batch.length;
      try {
        await this.sink.insertMany(batch);
      } catch (err) {
        if (isStoreUnavailable(err)) {
          this.failed(err);
          return;
        }
        // Not an outage: one row the database refuses must not hold back the others.
        taken = await this.oneByOne(batch);
        if (taken < batch.length) {
          this.queue.splice(0, taken);
          this.failed(new Error('the database became unavailable'));
          return;
        }
      }
      this.queue.splice(0, taken);
      this.recovered();
    }
  }

  /**
   * After a batch failed for another reason than an outage: the rows one by one, refused ones
   * logged and dropped. How many rows are done with; stops at the first outage.
   */
  private async oneByOne(batch: AuditEventRow[]): Promise<number> {
    let done = 0;
    for (const row of batch) {
      try {
        await this.sink.insertMany([row]);
      } catch (err) {
        if (isStoreUnavailable(err)) return done;
        this.log(`[audit] audit event ${row.id} (${row.action}) refused by the database: ${(err as Error).message}`);
      }
      done++;
    }
    return done;
  }

  private failed(err: unknown): void {
    if (!this.failing) this.log(`[audit] writing audit events failed, keeping them to retry: ${(err as Error).message}`);
    this.failing = true;
    if (!this.closed) {
      this.clearTimer();
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.opts.retryMs);
    }
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    if (this.dropped > 0) this.log(`[audit] the database takes audit events again; ${this.dropped} were dropped meanwhile`);
    else this.log('[audit] the database takes audit events again');
    this.dropped = 0;
  }

  private drop(n: number, why: string): void {
    if (this.dropped === 0) this.log(`[audit] dropping audit events: ${why}`);
    this.dropped += n;
  }
}
