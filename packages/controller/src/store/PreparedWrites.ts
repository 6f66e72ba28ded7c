import type pg from 'pg';

/** A write whose result has no columns: INSERT, UPDATE or DELETE without RETURNING. */
const WRITE = /^\s*(insert|update|delete)\b/i;
const RETURNING = /\breturning\b/i;
/**
 * Parameters a named write may have. A prepared statement keeps its parse tree and plan in
 * every backend that ran it, and that grows with its parameters: measured on the exec-log upsert
 * when it bound one parameter per column, ~85 KiB for 1 row (23 parameters), ~170 KiB for 16
 * rows, 1.6 MiB for 256. Writes with more are parsed anew each time; the exec-log upsert now
 * binds its rows as one JSON parameter (ExecLogStore), so no batch size of it is one of those.
 */
const MAX_PARAMETERS = 256;

/**
 * node-postgres sends every parameterised query as an unnamed statement, which PostgreSQL
 * parses, analyses and plans anew each time. On the exec path's group-committed writes (the
 * exec-log upsert, audit inserts) that was ~40 % of the backend's CPU per statement: a 4-row
 * exec-log upsert took 435 µs of backend CPU unnamed and 270 µs as a named statement.
 *
 * So writes go out as named statements, parsed once per connection and then only bound and
 * executed. Only writes without RETURNING: their result has no columns, so a migration another
 * controller runs (a rolling upgrade) cannot change it under a prepared plan — PostgreSQL
 * re-plans a prepared statement after DDL on its tables by itself, and refuses only a plan whose
 * result columns changed, which a SELECT could see. One name per text for every connection (node-postgres
 * refuses one name for two texts); at most `max` texts get a name, so statements whose text
 * varies (a batch size, an IN list) cannot grow the backends' memory without bound: with the
 * defaults at most 32 × ~170 KiB per connection.
 */
export class PreparedWrites {
  private readonly names = new Map<string, string>();

  constructor(private readonly max = 32) {}

  /** The statement name for `text`, or undefined to send it unnamed. */
  nameFor(text: string): string | undefined {
    const known = this.names.get(text);
    if (known !== undefined) return known;
    if (this.names.size >= this.max || !WRITE.test(text) || RETURNING.test(text)) return undefined;
    const name = `sb_w${this.names.size}`;
    this.names.set(text, name);
    return name;
  }

  /** Makes `client.query(text, values)` (how Kysely calls it) use a named statement for a write. */
  install(client: pg.PoolClient): void {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const [text, values] = args;
      if (args.length === 2 && typeof text === 'string' && Array.isArray(values) && values.length > 0 && values.length <= MAX_PARAMETERS) {
        const name = this.nameFor(text);
        if (name !== undefined) return query({ name, text, values });
      }
      return query(...args);
    }) as typeof client.query;
  }
}
