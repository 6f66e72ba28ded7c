import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { DialectName } from './openDatabase.js';
import type { Database } from './schema.js';

/**
 * Named locks shared by every controller on one database, for short critical sections whose
 * data lives in the rows (placement reads the allocations of every worker and then commits one).
 *
 * PostgreSQL: a transaction-scoped advisory lock (`pg_advisory_xact_lock`) on a connection of its
 * own, held open while `fn` runs its queries on the pool and released when that transaction ends.
 * So `fn`'s writes are committed before the next holder reads, a holder that dies (process or
 * connection) releases at once (no lease to expire, no TTL to outlive), and waiters queue in
 * PostgreSQL instead of polling. MySQL/MariaDB: the same with `GET_LOCK` on one pooled
 * connection held for the critical section (a session-level named lock, released by
 * `RELEASE_LOCK` or when that connection goes), `fn` running its queries on the pool as well.
 * SQLite: no cross-process lock (a SQLite file serves one controller); callers serialize within
 * the process.
 */
export class LockStore {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly dialect: DialectName,
  ) {}

  async with<T>(name: string, fn: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
    if (this.dialect === 'mysql') return this.withMysql(name, fn, timeoutMs);
    if (this.dialect !== 'postgres') return fn();
    const key = lockKey(name);
    return this.db.transaction().execute(async (trx) => {
      // lock_timeout bounds the wait (a stuck holder turns into an error here, not a hang).
      await sql`WITH t AS (SELECT set_config('lock_timeout', ${`${Math.max(1, Math.round(timeoutMs))}ms`}, true))
        SELECT pg_advisory_xact_lock(${key}::bigint) FROM t`.execute(trx);
      return fn();
    });
  }

  private withMysql<T>(name: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
    const lock = mysqlLockName(name);
    return this.db.connection().execute(async (conn) => {
      // The wait is bounded like lock_timeout (whole seconds): 0 back means another holder kept it.
      const r = await sql<{ got: number | null }>`SELECT GET_LOCK(${lock}, ${Math.max(1, Math.ceil(timeoutMs / 1000))}) AS got`.execute(
        conn,
      );
      if (Number(r.rows[0]?.got) !== 1)
        throw new Error(`lock timeout: ${name} not acquired within ${timeoutMs} ms (another controller holds it)`);
      try {
        return await fn();
      } finally {
        // A connection lost meanwhile released it with its session; nothing to undo then.
        await sql`SELECT RELEASE_LOCK(${lock})`.execute(conn).catch(() => undefined);
      }
    });
  }
}

/** A MySQL lock name (at most 64 characters) per lock name, in the `scaibunker:` namespace. */
function mysqlLockName(name: string): string {
  const plain = `scaibunker:${name}`;
  return plain.length <= 64 ? plain : `scaibunker:${createHash('sha256').update(name).digest('hex').slice(0, 48)}`;
}

/** A stable signed 64-bit key per lock name, in the `scaibunker:` namespace. */
function lockKey(name: string): string {
  return createHash('sha256').update(`scaibunker:${name}`).digest().readBigInt64BE(0).toString();
}
