/**
 * Controllers starting together on one fresh PostgreSQL database (the scale-out deployment):
 * one platform tenant and admin key, each built-in image registered once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Controller } from '../../src/Controller.js';
import { InProcessQuotaCounters } from '../../src/quotas/InProcessQuotaCounters.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';

const postgres = DIALECTS.find((d) => d.name === 'postgres');

describe('controllers starting together on one PostgreSQL database', () => {
  let db: TestDatabase;
  let dir: string;
  const controllers: Controller[] = [];

  before(async () => {
    if (!postgres) throw new Error('no postgres dialect');
    db = await postgres.create();
    dir = mkdtempSync(join(tmpdir(), 'sb-startup-'));
    writeFileSync(
      join(dir, 'catalog.json'),
      JSON.stringify(['minimal', 'python', 'extra'].map((name, i) => ({ name, sha256: String(i).repeat(64), size_bytes: 1 }))),
    );
  });
  after(async () => {
    for (const c of controllers) await c.close();
    await db?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('four at once: one bootstrap key, one platform tenant, each image once', async () => {
    controllers.push(
      ...(await Promise.all(
        Array.from({ length: 4 }, () =>
          Controller.open({ databaseUrl: db.url, blobDir: join(dir, 'blobs'), quotaCounters: new InProcessQuotaCounters() }),
        ),
      )),
    );
    await Promise.all(controllers.map((c) => c.registerCatalog(dir)));
    const keys = await Promise.all(controllers.map((c) => c.services.tenants.bootstrap()));
    assert.equal(keys.filter(Boolean).length, 1, 'one controller created the admin key');
    const store = (controllers[0] as Controller).store;
    const tenants = await store.db.selectFrom('tenants').select('id').where('name', '=', 'platform').execute();
    assert.equal(tenants.length, 1);
    const images = await store.db.selectFrom('images').select('name').where('scope', '=', 'platform').execute();
    assert.deepEqual(images.map((i) => i.name).sort(), ['extra', 'minimal', 'python']);
  });
});
