import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type Kysely, sql } from 'kysely';
import pg from 'pg';
import { DependencyState } from '../../src/health/DependencyState.js';
import { openDatabase } from '../../src/store/openDatabase.js';
import { PreparedWrites } from '../../src/store/PreparedWrites.js';
import type { Database } from '../../src/store/schema.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';

test('writes without RETURNING get a name, one per text; reads, RETURNING and texts past the cap do not', () => {
  const p = new PreparedWrites(2);
  const insert = 'insert into "t" ("a") values ($1)';
  const name = p.nameFor(insert);
  assert.ok(name);
  assert.equal(p.nameFor(`  ${insert}`.trim()), name, 'the same text, the same name');
  assert.equal(p.nameFor('select * from "t" where "a" = $1'), undefined);
  assert.equal(p.nameFor('insert into "t" ("a") values ($1) returning "a"'), undefined);
  const update = p.nameFor('update "t" set "a" = $1');
  assert.ok(update);
  assert.notEqual(update, name);
  assert.equal(p.nameFor('delete from "t" where "a" = $1'), undefined, 'at the cap, a new text goes unnamed');
  assert.equal(p.nameFor(insert), name, 'texts named before the cap keep their names');
});

const postgres = DIALECTS.find((d) => d.name === 'postgres');
if (!postgres) throw new Error('no postgres dialect');
let tdb: TestDatabase;
let db: Kysely<Database>;
before(async () => {
  tdb = await postgres.create();
  ({ db } = await openDatabase(tdb.url, new DependencyState('database', () => undefined)));
});
after(async () => {
  await db?.destroy();
  await tdb?.cleanup();
});

/** The statements the connection `conn` has prepared (PostgreSQL's own view of its session). */
async function preparedOn(conn: Kysely<Database>): Promise<string[]> {
  const r = await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(conn);
  return r.rows.map((row) => row.statement);
}

test('on PostgreSQL a write through Kysely is prepared once per connection, and survives a column another connection adds', async () => {
  await db.connection().execute(async (conn) => {
    const now = new Date().toISOString();
    const tenant = (id: string) => ({ id, name: id, created_at: now });
    await conn.insertInto('tenants').values(tenant('tn_prepared_1')).execute();
    await conn.insertInto('tenants').values(tenant('tn_prepared_2')).execute();
    const statements = await preparedOn(conn);
    const inserts = statements.filter((s) => s.startsWith('insert into "tenants"'));
    assert.equal(inserts.length, 1, `one prepared insert for two executions: ${JSON.stringify(statements)}`);
    assert.ok(!statements.some((s) => s.startsWith('select')), 'reads are not prepared');

    // A batch past MAX_PARAMETERS is parsed anew: its plan would hold megabytes in every backend.
    const many = Array.from({ length: 100 }, (_, i) => tenant(`tn_bulk_${i}`));
    await conn.insertInto('tenants').values(many).execute();
    assert.equal((await conn.selectFrom('tenants').where('id', 'like', 'tn_bulk_%').select('id').execute()).length, 100);
    assert.equal((await preparedOn(conn)).length, statements.length, 'a 300-parameter insert is not prepared');

    // A rolling upgrade: another controller migrates while this connection holds the prepared insert.
    const other = new pg.Client({ connectionString: tdb.url });
    await other.connect();
    try {
      await other.query('alter table tenants add column prepared_probe integer default 7');
    } finally {
      await other.end();
    }
    await conn.insertInto('tenants').values(tenant('tn_prepared_3')).execute();
    const rows = await sql<{
      id: string;
      prepared_probe: number;
    }>`select id, prepared_probe from tenants where id like 'tn_prepared_%' order by id`.execute(conn);
    assert.deepEqual(
      rows.rows.map((r) => [r.id, r.prepared_probe]),
      [
        ['tn_prepared_1', 7],
        ['tn_prepared_2', 7],
        ['tn_prepared_3', 7],
      ],
    );
  });
});
