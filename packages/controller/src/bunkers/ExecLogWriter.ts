import { AUDIT_FLUSH_INTERVAL_MS } from '../audit/AuditWriter.js';
import { isStoreUnavailable } from '../health/failures.js';
import type { ExecLogStore } from '../store/ExecLogStore.js';
import type { ExecLogRow } from '../store/schema.js';
import type { ExecLogJournal } from './ExecLogJournal.js';

interface Pending {
  row: ExecLogRow;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

/** Rows per statement: far below PostgreSQL's 65535 and SQLite's 32766 bound parameters. */
const MAX_BATCH = 256;
/** How often journaled rows are offered to the database again. */
const REPLAY_INTERVAL_MS = 1000;
/**
 * A blocking exec's start row is written once it has run this long; a shorter exec writes its
 * completed row only. The bound is the audit trail's: an exec that ran longer than this has its
 * audit event and its start row stored, so a controller that dies mid-exec leaves both; one
 * killed within it may leave neither.
 */
export const START_ROW_DELAY_MS = AUDIT_FLUSH_INTERVAL_MS;

/**
 * Group commit under load, as PostgreSQL's own `commit_delay` / `commit_siblings` do it: a flush
 * starting while at least `siblings` other blocking execs of this controller are running (started
 * within START_ROW_DELAY_MS, so likely to end soon) waits for their rows, and goes as soon as
 * every one of them has queued its row. Without it, under load most statements carried one row
 * (measured: 5,463 of 7,630 in a `bench:load` run), and a statement — its round trip, its commit
 * and WAL flush — costs the database and the controller far more than a row. The wait is at most
 * `latencyShare` of what this controller's short blocking execs took lately, and never over
 * `maxLingerMs`: on a saturated machine, where an exec's latency is mostly its queueing, it costs
 * nothing the saved CPU does not pay back; on a fast one it stays a small share of the exec. A
 * caller with fewer execs in flight never waits.
 */
export interface GroupCommit {
  siblings: number;
  maxLingerMs: number;
  latencyShare: number;
  /** Monotonic milliseconds (tests set it). */
  now?: () => number;
}
export const DEFAULT_GROUP_COMMIT: GroupCommit = { siblings: 8, maxLingerMs: 8, latencyShare: 1 / 3 };
/** Weight of the newest exec in the running average of their durations. */
const RECENT_WEIGHT = 0.1;

/**
 * Group commit for exec-log rows. An exec writes its row when it starts (so a worker or
 * controller that dies mid-exec still leaves it; a blocking exec's start only once it has run
 * START_ROW_DELAY_MS, see `writeStartLater`) and when it ends, and under load those writes were
 * most of the exec path's database round trips. Here writes queue up and go out as one multi-row
 * upsert per flush; one flush runs at a time, and whatever queued meanwhile goes in the next.
 * Under load a flush first waits briefly for the rows of the execs running beside it (GroupCommit).
 * A write resolves only once its statement has committed, so an exec's result is never returned
 * before its completed row is stored. A completion that arrives while the start is still queued
 * is merged into it (one row written, complete). Flushes are serial, so a completion queued after
 * its start went out is written after that start committed.
 *
 * While the database is down (STORE_UNAVAILABLE) rows go to the journal instead, and a write
 * resolves once its row is synced there; the journal is replayed into the database, oldest
 * first, when it answers again. While the journal holds rows every write joins it, so rows
 * reach the database in the order they were written.
 */
export class ExecLogWriter {
  private queue = new Map<string, Pending>();
  /** Start rows not yet queued: an exec that ends first writes only its completion. */
  private deferred = new Map<string, { row: ExecLogRow; timer: NodeJS.Timeout; startedAt: number }>();
  private flushing = false;
  /** Set while a flush waits for its siblings' rows. */
  private lingering: NodeJS.Timeout | undefined;
  /** Running average of how long blocking execs that ended within START_ROW_DELAY_MS took (ms). */
  private recentExecMs: number | undefined;
  private readonly now: () => number;
  private replayTimer: NodeJS.Timeout | undefined;
  private replaying: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly store: ExecLogStore,
    private readonly journal?: ExecLogJournal,
    private readonly log: (msg: string) => void = (m) => console.error(m),
    private readonly groupCommit: GroupCommit = DEFAULT_GROUP_COMMIT,
  ) {
    this.now = groupCommit.now ?? (() => performance.now());
    // Rows journaled before a restart.
    if (journal && journal.size > 0) this.scheduleReplay(0);
  }

  /**
   * A blocking exec's start row, written only if the exec is still running `delayMs` from now;
   * its completion (`write` of the same id) replaces it before that. Short execs — most of them
   * under load — so cost the database one row and about half the statements instead of two rows.
   * The start of a longer one is there while it runs (a controller that dies mid-exec leaves it);
   * one shorter than the delay is on record once its result is, as before.
   */
  writeStartLater(row: ExecLogRow, delayMs = START_ROW_DELAY_MS): void {
    const timer = setTimeout(() => {
      this.deferred.delete(row.id);
      // Its completion replaces it either way: a failed start write is not an error of its own.
      this.write(row).catch(() => undefined);
    }, delayMs);
    timer.unref();
    this.deferred.set(row.id, { row, timer, startedAt: this.now() });
  }

  /** Writes (or completes) the row; resolves once it is committed (or journaled). */
  write(row: ExecLogRow): Promise<void> {
    const deferred = this.deferred.get(row.id);
    if (deferred) {
      clearTimeout(deferred.timer);
      this.deferred.delete(row.id);
      if (row.finished_at !== null) {
        const took = this.now() - deferred.startedAt;
        this.recentExecMs = this.recentExecMs === undefined ? took : this.recentExecMs + (took - this.recentExecMs) * RECENT_WEIGHT;
      }
    }
    return new Promise<void>((resolve, reject) => {
      const queued = this.queue.get(row.id);
      if (queued) {
        queued.row = row;
        queued.waiters.push({ resolve, reject });
      } else {
        this.queue.set(row.id, { row, waiters: [{ resolve, reject }] });
      }
      if (!this.flushing) {
        this.flushing = true;
        // Timers count whole milliseconds: a shorter wait is none.
        const linger = Math.min(this.groupCommit.maxLingerMs, (this.recentExecMs ?? 0) * this.groupCommit.latencyShare);
        if (this.deferred.size >= this.groupCommit.siblings && linger >= 1) this.lingering = setTimeout(() => this.flushSoon(), linger);
        // Writes made in the same turn of the event loop share the first statement.
        else setImmediate(() => void this.flush());
      } else if (this.lingering && this.deferred.size === 0) {
        this.flushSoon();
      }
    });
  }

  /** Ends a linger: the flush goes at the end of this turn of the event loop. */
  private flushSoon(): void {
    clearTimeout(this.lingering);
    this.lingering = undefined;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    while (this.queue.size > 0) {
      const batch: Pending[] = [];
      for (const [id, p] of this.queue) {
        batch.push(p);
        this.queue.delete(id);
        if (batch.length >= MAX_BATCH) break;
      }
      try {
        if (this.journal && this.journal.size > 0) {
          this.toJournal(batch);
          continue;
        }
        await this.store.upsertMany(batch.map((p) => p.row));
        for (const p of batch) settle(p);
      } catch (err) {
        if (this.journal && isStoreUnavailable(err)) this.toJournal(batch);
        else if (batch.length === 1) settle(batch[0] as Pending, err);
        // One row the database refuses must not fail the others' execs: write them one by one.
        else
          await Promise.all(
            batch.map((p) =>
              this.store.upsertMany([p.row]).then(
                () => settle(p),
                (e) => settle(p, e),
              ),
            ),
          );
      }
    }
    this.flushing = false;
  }

  private toJournal(batch: Pending[]): void {
    try {
      this.journal?.append(batch.map((p) => p.row));
      for (const p of batch) settle(p);
    } catch (err) {
      for (const p of batch) settle(p, err);
      return;
    }
    this.scheduleReplay(REPLAY_INTERVAL_MS);
  }

  private scheduleReplay(delayMs: number): void {
    if (this.replayTimer || this.replaying || this.closed) return;
    this.replayTimer = setTimeout(() => {
      this.replayTimer = undefined;
      this.replaying = this.replay().finally(() => {
        this.replaying = undefined;
      });
    }, delayMs);
  }

  /** Moves journaled rows into the database, oldest first, until it is empty or the database fails again. */
  private async replay(): Promise<void> {
    const journal = this.journal;
    if (!journal) return;
    let moved = 0;
    while (journal.size > 0 && !this.closed) {
      const rows = journal.peek(MAX_BATCH);
      const done = await this.writeReplayed(rows);
      journal.remove(done);
      moved += done.length;
      if (done.length < rows.length) {
        this.scheduleReplay(REPLAY_INTERVAL_MS);
        break;
      }
    }
    if (moved > 0) this.log(`[exec-log] ${moved} journaled exec-log rows written to the database`);
  }

  /**
   * The rows the database took (or refused for good, logged: one bad row must not block the
   * rest); stops at the first outage, leaving that row and the later ones journaled.
   */
  private async writeReplayed(rows: ExecLogRow[]): Promise<ExecLogRow[]> {
    try {
      await this.store.upsertMany(rows);
      return rows;
    } catch (err) {
      if (isStoreUnavailable(err)) return [];
    }
    const done: ExecLogRow[] = [];
    for (const r of rows) {
      try {
        await this.store.upsertMany([r]);
      } catch (err) {
        if (isStoreUnavailable(err)) break;
        this.log(`[exec-log] journaled row ${r.id} refused by the database: ${(err as Error).message}`);
      }
      done.push(r);
    }
    return done;
  }

  /** Stops replaying; journaled rows stay on disk for the next start. */
  async close(): Promise<void> {
    // Execs still running at shutdown leave their start rows.
    const starts = [...this.deferred.values()].map(({ row }) => this.write(row));
    await Promise.allSettled(starts);
    this.closed = true;
    clearTimeout(this.replayTimer);
    await this.replaying;
    this.journal?.close();
  }
}

function settle(p: Pending, err?: unknown): void {
  for (const w of p.waiters) {
    if (err === undefined) w.resolve();
    else w.reject(err);
  }
}
