/**
 * `scaibunker serve` on MariaDB (`DATABASE_URL=mysql://…`, the test server of
 * scripts/test-services.sh): a bunker's whole life, real crun bunkers, and its rows kept across
 * a restart of serve.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import mysql from 'mysql2/promise';
import { DIALECTS, type TestDatabase } from '../../packages/controller/test/helpers/databases.js';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  eventually,
  FAST_INTERVALS,
  freePort,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
  tempDataDir,
} from './harness.js';

describe('scaibunker serve on MariaDB', () => {
  const data = tempDataDir();
  let db: TestDatabase;
  let server: ServerProcess | undefined;
  let port = 0;

  const startServer = () =>
    ServerProcess.start(['serve', '--port', String(port), '--data-dir', data.dir, '--image-dir', IMAGE_DIR, ...FAST_INTERVALS], {
      DATABASE_URL: db.url,
    });

  before(async () => {
    const mariadb = DIALECTS.find((d) => d.name === 'mariadb');
    if (!mariadb) throw new Error('no mariadb dialect in the test helpers');
    db = await mariadb.create();
    port = await freePort();
    server = await startServer();
  });

  after(async () => {
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(`${data.dir}/worker`);
    const left = mountsUnder(data.dir);
    data.remove();
    await db?.cleanup();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was terminated through the API');
  });

  test('create, exec, restart serve, exec again, terminate: the rows are in MariaDB throughout', async () => {
    assert.ok(server);
    const admin = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
    const tenant = await admin.admin.createTenant('maria');
    const { key } = await admin.admin.createApiKey(tenant.id, 'maria-key', ['scaibunker:admin:tenant'] as never);
    const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });

    const b = await Bunker.create({ image: 'minimal', lifecycle: 'session' }, client);
    assert.equal((await b.exec('echo before')).stdout, 'before\n');
    await b.files.write('/tmp/kept', 'across the restart');

    await server.kill('SIGKILL');
    server = await startServer();
    assert.equal(server.url, `http://127.0.0.1:${port}`);

    const again = await Bunker.connect(b.id, client);
    assert.equal(again.state, 'running');
    assert.equal((await again.files.read('/tmp/kept')).toString(), 'across the restart');
    assert.equal((await again.exec('echo after')).stdout, 'after\n');
    await again.terminate();
    assert.equal((await Bunker.connect(b.id, client)).state, 'terminated');

    // The rows are MariaDB's, not a SQLite file's.
    const conn = await mysql.createConnection(db.url);
    try {
      const [bunkers] = await conn.query('SELECT state, tenant_id FROM bunkers WHERE id = ?', [b.id]);
      assert.deepEqual(bunkers, [{ state: 'terminated', tenant_id: tenant.id }]);
      // Exec-log rows are written in batches: wait for the one of the exec after the restart.
      await eventually('the exec log rows in MariaDB', async () => {
        const [execs] = await conn.query('SELECT count(*) AS n FROM exec_logs WHERE bunker_id = ?', [b.id]);
        return Number((execs as Array<{ n: number }>)[0]?.n) >= 1 ? true : undefined;
      });
    } finally {
      await conn.end();
    }
  });
});
