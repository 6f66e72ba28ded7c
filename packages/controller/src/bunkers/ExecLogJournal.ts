import { closeSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ApiError } from '@scaibunker/core';
import type { ExecLogRow } from '../store/schema.js';

/**
 * Exec-log rows the database could not take (it was down), kept on local disk until it can:
 * one JSON row per line, appended and synced before the exec's result is returned, so neither
 * an outage nor a crash during one loses a row. A later write of the same exec (its completion)
 * replaces the earlier one. Bounded: past `maxRows` a write is refused (STORE_UNAVAILABLE), so
 * a long outage costs at most that much disk, never all of it.
 */
export class ExecLogJournal {
  private readonly rows = new Map<string, ExecLogRow>();
  private fd: number | undefined;
  /** Lines in the file: rows still held, and rows already in the database or replaced since. */
  private lines = 0;

  constructor(
    private readonly path: string,
    private readonly maxRows = 100_000,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (!line) continue;
      this.lines++;
      try {
        const row = JSON.parse(line) as ExecLogRow;
        this.rows.set(row.id, row);
      } catch {
        // A line torn by a crash mid-append: the exec it belonged to never got its answer.
      }
    }
  }

  get size(): number {
    return this.rows.size;
  }

  append(rows: readonly ExecLogRow[]): void {
    const fresh = rows.filter((r) => !this.rows.has(r.id)).length;
    if (this.rows.size + fresh > this.maxRows) {
      throw new ApiError('STORE_UNAVAILABLE', 'the database cannot be reached and the local exec-log journal is full; retry shortly', {
        dependency: 'database',
      });
    }
    if (this.fd === undefined) this.fd = openSync(this.path, 'a', 0o600);
    writeSync(this.fd, rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    fdatasyncSync(this.fd);
    this.lines += rows.length;
    for (const r of rows) this.rows.set(r.id, r);
  }

  /** Oldest first, at most `limit`. */
  peek(limit: number): ExecLogRow[] {
    const out: ExecLogRow[] = [];
    for (const r of this.rows.values()) {
      if (out.length >= limit) break;
      out.push(r);
    }
    return out;
  }

  /**
   * Forgets rows now in the database. The file is emptied once nothing is left, and rewritten
   * with what is left only when most of it is stale: rewriting it after every batch would cost
   * the square of its length. A row still in the file after being written is harmless: replayed
   * after a crash it is the same upsert again, and a finished row is never replaced.
   */
  remove(written: readonly ExecLogRow[]): void {
    for (const r of written) if (this.rows.get(r.id) === r) this.rows.delete(r.id);
    if (this.rows.size === 0) this.rewrite();
    else if (this.lines > 2 * this.rows.size + 1000) this.rewrite();
  }

  private rewrite(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, [...this.rows.values()].map((r) => `${JSON.stringify(r)}\n`).join(''));
      fdatasyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.path);
    this.lines = this.rows.size;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
