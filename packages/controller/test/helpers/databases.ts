import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import pg from 'pg';

export interface TestDatabase {
  url: string;
  cleanup(): Promise<void>;
}

/** Every store dialect; the store suite runs once per entry. */
export const DIALECTS: Array<{ name: 'sqlite' | 'postgres' | 'mariadb'; create(): Promise<TestDatabase> }> = [
  {
    name: 'sqlite',
    async create() {
      const dir = mkdtempSync(join(tmpdir(), 'sb-store-'));
      return { url: `sqlite:${join(dir, 'test.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    async create() {
      const admin = process.env.SCAIBUNKER_TEST_PG_URL;
      if (!admin) throw new Error('SCAIBUNKER_TEST_PG_URL is not set: run the suite with `npm test` (it starts PostgreSQL)');
      const name = `sb_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
      const client = new pg.Client({ connectionString: admin });
      await client.connect();
      await client.query(`CREATE DATABASE ${name}`);
      await client.end();
      const url = new URL(admin);
      url.pathname = `/${name}`;
      return {
        url: url.toString(),
        async cleanup() {
          const c = new pg.Client({ connectionString: admin });
          await c.connect();
          // A closed pool resolves before its clients' sockets are gone; dropping WITH (FORCE)
          // under them makes those clients emit errors nobody listens to. Let them go first.
          for (let i = 0; i < 100; i++) {
            const r = await c.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
            if (r.rows[0].n === 0) break;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          await c.end();
        },
      };
    },
  },
  {
    name: 'mariadb',
    async create() {
      const admin = process.env.SCAIBUNKER_TEST_MARIADB_URL;
      if (!admin) throw new Error('SCAIBUNKER_TEST_MARIADB_URL is not set: run the suite with `npm test` (it starts MariaDB)');
      const name = `sb_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
      // The server's default character set (latin1 on a bare MariaDB): the tables declare their own.
      const conn = await mysql.createConnection(admin);
      await conn.query(`CREATE DATABASE ${name}`);
      await conn.end();
      const url = new URL(admin);
      url.pathname = `/${name}`;
      return {
        url: url.toString(),
        async cleanup() {
          const c = await mysql.createConnection(admin);
          await c.query(`DROP DATABASE IF EXISTS ${name}`);
          await c.end();
        },
      };
    },
  },
];
