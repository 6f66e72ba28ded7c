import type { BunkerRow } from '../store/schema.js';

/**
 * Rows of running bunkers, kept in process for the exec and file paths: without it each exec
 * read its bunker's row from the database, which under load cost more than the exec itself.
 * Every write to a bunker row invalidates its entry (on every controller, via the change feed),
 * so a paused or ended bunker is never served from here; the TTL bounds what a lost notice can
 * leave behind, and the worker still refuses a bunker it no longer runs.
 *
 * A read that started before an invalidation must not put its older row back: `version(id)`
 * taken before the read, passed to `put`, makes such a put a no-op.
 */
export class RunningBunkerCache {
  private readonly rows = new Map<string, { row: BunkerRow; expiresAt: number }>();
  private readonly versions = new Map<string, number>();
  private generation = 0;

  constructor(
    private readonly ttlMs = 5000,
    private readonly maxEntries = 50_000,
  ) {}

  get(id: string): BunkerRow | undefined {
    const hit = this.rows.get(id);
    return hit && hit.expiresAt > Date.now() ? hit.row : undefined;
  }

  /**
   * The row last cached, even past its TTL: for when the database cannot be read. A row cannot
   * change while the database is down, and invalidation still drops it, so this is the row as
   * it was when the outage began (the worker refuses a bunker it no longer runs).
   */
  getStale(id: string): BunkerRow | undefined {
    return this.rows.get(id)?.row;
  }

  version(id: string): string {
    return `${this.generation}.${this.versions.get(id) ?? 0}`;
  }

  put(id: string, row: BunkerRow, version: string): void {
    if (row.state !== 'running' || version !== this.version(id)) return;
    if (this.rows.size >= this.maxEntries) this.rows.clear();
    this.rows.set(id, { row, expiresAt: Date.now() + this.ttlMs });
  }

  /** `null`: everything (change notices may have been lost). */
  invalidate(id: string | null): void {
    if (id === null) {
      this.generation++;
      this.rows.clear();
      this.versions.clear();
      return;
    }
    this.rows.delete(id);
    this.versions.set(id, (this.versions.get(id) ?? 0) + 1);
    if (this.versions.size > this.maxEntries) {
      // Forgetting counts would let an in-flight read's put through: a new generation refuses them all.
      this.generation++;
      this.versions.clear();
    }
  }
}
