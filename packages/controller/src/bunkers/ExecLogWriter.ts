import type { ExecLogStore } from '../store/ExecLogStore.js';
import type { ExecLogRow } from '../store/schema.js';

interface Pending {
  row: ExecLogRow;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

/** Rows per statement: far below PostgreSQL's 65535 and SQLite's 32766 bound parameters. */
const MAX_BATCH = 256;

/**
 * Group commit for exec-log rows. Each exec writes its row twice — when it starts (so a worker
 * that dies mid-exec still leaves it) and when it ends — and under load those writes were most
 * of the exec path's database round trips. Here writes queue up and go out as one multi-row
 * upsert per flush; one flush runs at a time, and whatever queued meanwhile goes in the next.
 * A write resolves only once its statement has committed, so an exec's result is never returned
 * before its completed row is stored. A completion that arrives while the start is still queued
 * is merged into it (one row written, complete). Flushes are serial, so a completion queued after
 * its start went out is written after that start committed.
 */
export class ExecLogWriter {
  private queue = new Map<string, Pending>();
  private flushing = false;

  constructor(private readonly store: ExecLogStore) {}

  /** Writes (or completes) the row; resolves once it is committed. */
  write(row: ExecLogRow): Promise<void> {
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
        // Writes made in the same turn of the event loop share the first statement.
        setImmediate(() => void this.flush());
      }
    });
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
        await this.store.upsertMany(batch.map((p) => p.row));
        for (const p of batch) settle(p);
      } catch (err) {
        if (batch.length === 1) settle(batch[0] as Pending, err);
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
}

function settle(p: Pending, err?: unknown): void {
  for (const w of p.waiters) {
    if (err === undefined) w.resolve();
    else w.reject(err);
  }
}
