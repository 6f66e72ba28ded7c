import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { ApiError } from '@scaibunker/core';
import SQLite from 'better-sqlite3';
import { CompiledQuery, type Dialect, Kysely, MysqlDialect, PostgresDialect, SqliteDialect } from 'kysely';
import { Migrator } from 'kysely/migration';
import mysql from 'mysql2';
import pg from 'pg';
import type { DependencyState } from '../health/DependencyState.js';
import { messageOf } from '../health/DependencyState.js';
import { guardDialect } from './GuardedDialect.js';
import { InCodeMigrations } from './migrations.js';
import { PreparedWrites } from './PreparedWrites.js';
import type { Database } from './schema.js';

/** `mysql`: MySQL or MariaDB (tested on MariaDB). */
export type DialectName = 'sqlite' | 'postgres' | 'mysql';

/**
 * The dialect a `DATABASE_URL` names, before anything is opened or created: `postgres://` or
 * `postgresql://` → PostgreSQL; `mysql://` or `mariadb://` → MySQL/MariaDB; `sqlite:PATH`, a
 * plain path or `:memory:` → SQLite. Any other scheme is refused with an error that names the scheme only (the rest of a URL can hold a
 * password), rather than being taken for a file path.
 */
export function dialectNameOf(url: string): DialectName {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined || scheme === 'sqlite') return 'sqlite';
  const slashes = url.slice(scheme.length + 1).startsWith('//');
  if ((scheme === 'postgres' || scheme === 'postgresql') && slashes) return 'postgres';
  if ((scheme === 'mysql' || scheme === 'mariadb') && slashes) return 'mysql';
  throw new Error(
    `DATABASE_URL: unsupported scheme "${scheme}:"; use sqlite:PATH (or a plain file path), postgres://…, postgresql://…, mysql://… or mariadb://…`,
  );
}

/** `postgres://…` → PostgreSQL; `mysql://…`/`mariadb://…` → MySQL/MariaDB; `sqlite:PATH`, a file path or `:memory:` → SQLite. */
export function dialectFor(url: string, log: (msg: string) => void = (m) => console.error(m)): { name: DialectName; dialect: Dialect } {
  const name = dialectNameOf(url);
  if (name === 'mysql') {
    return {
      name,
      dialect: new MysqlDialect({
        pool: openMysqlPool(url, log),
        // Strict for every table (a value too long for its varchar is an error, never cut short).
        onCreateConnection: async (conn) => {
          await conn.executeQuery(CompiledQuery.raw(`SET SESSION sql_mode = '${MYSQL_SQL_MODE}'`));
        },
      }),
    };
  }
  if (name === 'postgres') {
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
 * fresh connection, or fails fast (connect timeout) into STORE_UNAVAILABLE. Writes are sent as
 * named statements (PreparedWrites).
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
  const prepared = new PreparedWrites();
  pool.on('connect', (client) => {
    last = '';
    client.on('error', onError);
    prepared.install(client);
  });
  return pool;
}

const MYSQL_SQL_MODE = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION';

/**
 * A mysql2 pool for `mysql://user:password@host:port/database` (`mariadb://` alike;
 * `?socket=/path` for a Unix socket). Sums come back as numbers (`decimalNumbers`), 64-bit
 * integers as numbers (as on the other dialects: counters here stay far below 2^53), the
 * connection in utf8mb4 with the binary collation of the tables. A connection that dies between
 * two queries emits `error`: logged once per distinct message (with no listener it would end the
 * process); the pool drops it and the next query opens a new one or fails into STORE_UNAVAILABLE.
 */
function openMysqlPool(url: string, log: (msg: string) => void): mysql.Pool {
  const u = new URL(url);
  const socketPath = u.searchParams.get('socket') ?? undefined;
  // mysql2's options take no undefined members: no database in the URL leaves it out.
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const pool = mysql.createPool({
    ...(socketPath ? { socketPath } : { host: u.hostname || '127.0.0.1', port: u.port ? Number(u.port) : 3306 }),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    ...(database ? { database } : {}),
    connectionLimit: 10,
    connectTimeout: 5000,
    charset: 'UTF8MB4_BIN',
    decimalNumbers: true,
    supportBigNumbers: false,
  });
  let last = '';
  const onError = (err: unknown) => {
    const msg = messageOf(err);
    if (msg !== last) log(`[database] connection lost: ${msg}`);
    last = msg;
  };
  pool.on('connection', (conn) => {
    last = '';
    conn.on('error', onError);
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
