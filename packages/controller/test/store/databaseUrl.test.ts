import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dialectFor, dialectNameOf } from '../../src/store/openDatabase.js';
import { Store } from '../../src/store/Store.js';

describe('DATABASE_URL schemes', () => {
  let dir: string;
  let cwd: string;
  before(() => {
    cwd = process.cwd();
    dir = mkdtempSync(join(tmpdir(), 'sb-dburl-'));
    // A URL taken for a relative file path would create its directory here.
    process.chdir(dir);
  });
  after(() => {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  });

  test('sqlite: and plain paths are SQLite; postgres:// and postgresql:// PostgreSQL; mysql:// and mariadb:// MySQL', () => {
    assert.equal(dialectNameOf('sqlite:/var/lib/scaibunker/db.sqlite'), 'sqlite');
    assert.equal(dialectNameOf('sqlite:relative/db.sqlite'), 'sqlite');
    assert.equal(dialectNameOf('/var/lib/scaibunker/db.sqlite'), 'sqlite');
    assert.equal(dialectNameOf('data/db.sqlite'), 'sqlite');
    assert.equal(dialectNameOf(':memory:'), 'sqlite');
    assert.equal(dialectNameOf('postgres://u:p@db:5432/sb'), 'postgres');
    assert.equal(dialectNameOf('postgresql://u:p@db/sb'), 'postgres');
    assert.equal(dialectNameOf('POSTGRES://u:p@db/sb'), 'postgres');
    assert.equal(dialectNameOf('mysql://u:p@db:3306/sb'), 'mysql');
    assert.equal(dialectNameOf('mariadb://u:p@db/sb'), 'mysql');
    // Opening a pool connects nothing yet: no server needed to get the dialect.
    assert.equal(dialectFor('mariadb://u:p@127.0.0.1:1/sb').name, 'mysql');
  });

  for (const url of [
    'mysqlx://root:s3cret@db/sb',
    'redis://:s3cret@db:6379/0',
    'http://admin:s3cret@db/',
    'file:/tmp/s3cret.db',
    'sqlserver://sa:s3cret@db',
  ]) {
    const scheme = url.slice(0, url.indexOf(':'));
    test(`${scheme}: is refused at start, naming the scheme and not the password; nothing is created`, async () => {
      assert.throws(
        () => dialectFor(url),
        (err: Error) => err.message.includes(`"${scheme}:"`) && !err.message.includes('s3cret') && /DATABASE_URL/.test(err.message),
      );
      await assert.rejects(Store.open(url), (err: Error) => err.message.includes(`"${scheme}:"`) && !err.message.includes('s3cret'));
      assert.deepEqual(readdirSync(dir), []);
    });
  }

  test('a plain path opens a SQLite file there', async () => {
    const store = await Store.open(join(dir, 'sub', 'plain.db'));
    await store.close();
    assert.deepEqual(
      readdirSync(join(dir, 'sub')).filter((f) => f === 'plain.db'),
      ['plain.db'],
    );
    rmSync(join(dir, 'sub'), { recursive: true, force: true });
  });
});
