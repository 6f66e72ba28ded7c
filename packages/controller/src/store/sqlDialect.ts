import { type CreateTableBuilder, type Expression, type InsertQueryBuilder, type Kysely, MysqlAdapter, PostgresAdapter, sql } from 'kysely';

/**
 * Whether `db` (a Kysely instance or a transaction) talks to MySQL/MariaDB: the one dialect whose
 * upserts, advisory locks and key columns differ from SQLite's and PostgreSQL's.
 */
export function isMysql(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof MysqlAdapter;
}

/** Whether `db` talks to PostgreSQL. */
export function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * PostgreSQL: `select <columns> from json_populate_recordset(null::<table>, $1::json)`, an
 * insert's source whose rows travel as one parameter, a JSON array of them (bound as `'[]'`
 * here). One statement text for every number of rows, so prepared once per connection.
 */
export function jsonRecordset(table: string, columns: readonly string[]): Expression<unknown> {
  return sql`select ${sql.join(columns.map((c) => sql.ref(c)))} from json_populate_recordset(null::${sql.table(table)}, ${'[]'}::json)`;
}

/** A column type `addColumn` takes: a named type, or raw SQL for dialect-specific ones. */
export type ColumnType = 'text' | 'integer' | 'bigint' | 'double precision' | Expression<unknown>;

/**
 * Key lengths on MySQL/MariaDB, in characters. Columns that are a primary or foreign key, unique
 * or in an index must have a length there (InnoDB cannot index `TEXT` whole) and an index holds
 * at most 3072 bytes, 768 utf8mb4 characters: the longest (bunker_labels' tenant, key and value)
 * is 640. A longer value is refused (strict mode), never cut.
 */
export const KEY_LENGTH = {
  /** Ids (`newId`: a prefix and 20 characters; worker ids given by their operator). */
  id: 128,
  /** ISO-8601 UTC timestamps (`2025-01-01T00:00:00.000Z`: 24; years past 9999: 27). */
  ts: 32,
} as const;

/**
 * The column types migrations declare, per dialect. SQLite and PostgreSQL: `text` for every
 * string (they index it whole). MySQL/MariaDB: `varchar(N)` for key and indexed columns (ids,
 * timestamps, and `key(N)` with N chosen per column), `mediumtext` (16 MiB) for the others
 * (`text` there is 64 KiB), and every table in `utf8mb4` with a binary collation that does not
 * pad (MariaDB `utf8mb4_nopad_bin`, MySQL 8 `utf8mb4_0900_bin`; `utf8mb4_bin` where neither
 * exists), so that comparisons and ordering are byte-wise as on the other two: ids are
 * case-sensitive (`a` ≠ `A`), a trailing space makes another value, and cursors over
 * (timestamp, id) order alike.
 */
export async function columnTypes(db: Kysely<any>) {
  const mysql = isMysql(db);
  const collation = mysql ? await binaryCollation(db) : '';
  const varchar = (n: number): ColumnType => (mysql ? sql.raw(`varchar(${n})`) : 'text');
  return {
    id: varchar(KEY_LENGTH.id),
    ts: varchar(KEY_LENGTH.ts),
    key: varchar,
    text: (mysql ? sql.raw('mediumtext') : 'text') as ColumnType,
    /** `.$call(t.table)` on every `createTable`: InnoDB, utf8mb4, binary collation on MySQL. */
    table: <B extends CreateTableBuilder<any, any>>(b: B): B =>
      mysql ? (b.modifyEnd(sql.raw(`engine=InnoDB default charset=utf8mb4 collate=${collation}`)) as B) : b,
  };
}

async function binaryCollation(db: Kysely<any>): Promise<string> {
  const { rows } = await sql<{ name: string }>`SELECT collation_name AS name FROM information_schema.collations
    WHERE collation_name IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin')`.execute(db);
  const names = rows.map((r) => r.name);
  return names.includes('utf8mb4_nopad_bin')
    ? 'utf8mb4_nopad_bin'
    : names.includes('utf8mb4_0900_bin')
      ? 'utf8mb4_0900_bin'
      : 'utf8mb4_bin';
}

/**
 * `INSERT … ON CONFLICT (column) DO NOTHING`, or on MySQL the no-op
 * `ON DUPLICATE KEY UPDATE column = column` (not `INSERT IGNORE`, which would also turn other
 * errors, a foreign key or a value too long, into warnings). For `.$call(skipDuplicates(db, 'id'))`.
 */
export function skipDuplicates(db: Kysely<any>, column: string) {
  return <QB extends InsertQueryBuilder<any, any, any>>(qb: QB): QB =>
    (isMysql(db) ? qb.onDuplicateKeyUpdate({ [column]: sql.ref(column) }) : qb.onConflict((oc) => oc.column(column).doNothing())) as QB;
}
