import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ApiError } from '@scaibunker/core';
import SQLite from 'better-sqlite3';
import { type Dialect, Kysely, Migrator, PostgresDialect, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { DependencyState } from '../health/DependencyState.js';
import { messageOf } from '../health/DependencyState.js';
import { guardDialect } from './GuardedDialect.js';
import { InCodeMigrations } from './migrations.js';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

/**
 * The dialect a `DATABASE_URL` names, before anything is opened or created: `postgres://` or
 * `postgresql://` → PostgreSQL; `sqlite:PATH`, a plain path or `:memory:` → SQLite. Any other
 * scheme is refused with an error that names the scheme only (the rest of a URL can hold a
 * password), rather than being taken for a file path.
 */
export function dialectNameOf(url: string): DialectName {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === 'sqlite') return 'sqlite';
  if ((scheme === 'postgres' || scheme === 'postgresql') && url.slice(scheme.length + 1).startsWith('//')) return 'postgres';
  throw new Error(`DATABASE_URL: unsupported scheme "${scheme}:"; use sqlite:PATH (or a plain file path), postgres://… or postgresql://…`);
}

/** `postgres://…` → PostgreSQL; `sqlite:PATH`, a file path or `:memory:` → SQLite. */
export function dialectFor(url: string, log: (msg: string) => void = (m) => console.error(m)): { name: DialectName; dialect: Dialect } {
  if (dialectNameOf(url) === 'postgres') {
    // Counts come back as bigint strings; parse them (row counts here never approach 2^53).
    pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));
    return { name: 'postgres', dialect: new PostgresDialect({ pool: openPool(url, log) }) };
  }
  const file = url.replace(/^sqlite:/, '');
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new SQLite(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  cachePreparedStatements(db);
  return { name: 'sqlite', dialect: new SqliteDialect({ database: db }) };
}

/**
 * A pool that survives the server going away. node-postgres emits `error` on a pooled client
 * whose connection dies (a restart terminates every backend); with no listener that event kills
 * the process. The pool's listener covers idle clients and drops them; ours covers clients
 * checked out between two queries. Both log once per distinct message: the next query gets a
 * fresh connection, or fails fast (connect timeout) into STORE_UNAVAILABLE.
 */
function openPool(url: string, log: (msg: string) => void): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5000 });
  let last = '';
  const onError = (err: unknown) => {
    const msg = messageOf(err);
    if (msg !== last) log(`[database] connection lost: ${msg}`);
    last = msg;
  };
  pool.on('error', onError);
  pool.on('connect', (client) => {
    last = '';
    client.on('error', onError);
  });
  return pool;
}

/** Opens (and migrates) the database; every query through it reports to `state`. */
export async function openDatabase(url: string, state: DependencyState): Promise<{ db: Kysely<Database>; dialect: DialectName }> {
  const { name, dialect: inner } = dialectFor(url);
  const dialect = guardDialect(inner, state);
  const db = new Kysely<Database>({ dialect });
  const { error, results } = await new Migrator({ db, provider: new InCodeMigrations() }).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    await db.destroy();
    // The database not answering at start is said as such (STORE_UNAVAILABLE), not as a migration bug.
    if (error instanceof ApiError) throw error;
    throw new Error(`database migration failed${failed ? ` at ${failed.migrationName}` : ''}: ${String(error)}`);
  }
  return { db, dialect: name };
}

/**
 * Kysely prepares every query anew; on the exec hot path that was a third of SQLite's cost.
 * Statements are reusable in better-sqlite3 (each call binds its own parameters), so keep the
 * most recent ones by SQL text.
 */
function cachePreparedStatements(db: SQLite.Database, max = 256): void {
  const prepare = db.prepare.bind(db);
  const cache = new Map<string, SQLite.Statement>();
  db.prepare = ((sql: string) => {
    let stmt = cache.get(sql);
    if (stmt) {
      cache.delete(sql);
    } else {
      stmt = prepare(sql);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
    }
    cache.set(sql, stmt);
    return stmt;
  }) as typeof db.prepare;
}
