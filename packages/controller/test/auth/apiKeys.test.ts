import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Controller } from '../../src/Controller.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { testRedisUrl } from '../helpers/redis.js';
import { tenantWithKey, testController, WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API keys: list, revoke, expiry, scoping (one controller)', () => {
  let ctl: Awaited<ReturnType<typeof testController>>;
  before(async () => {
    ctl = await testController();
  });
  after(async () => ctl?.cleanup());

  const call = (method: 'GET' | 'POST' | 'DELETE', url: string, key: string, payload?: object) =>
    ctl.controller.http.inject({ method, url, headers: bearer(key), ...(payload ? { payload } : {}) });

  test('a platform admin lists a tenant’s keys: every field but the secret', async () => {
    const { tenantId, key } = await tenantWithKey(ctl.controller, 'list-a', ['scaibunker:read']);
    const created = await call('POST', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey, {
      name: 'ci',
      permissions: ['scaibunker:execute'],
      user_id: 'alice',
      groups: ['devs'],
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().expires_at, null);
    const res = await call('GET', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey);
    assert.equal(res.statusCode, 200, res.body);
    const items = res.json().items as Array<Record<string, unknown>>;
    assert.equal(items.length, 2);
    const ci = items.find((k) => k.name === 'ci');
    assert.deepEqual(Object.keys(ci ?? {}).sort(), [
      'created_at',
      'expires_at',
      'groups',
      'id',
      'last_used_at',
      'name',
      'permissions',
      'revoked_at',
      'tenant_id',
      'user_id',
    ]);
    assert.equal(ci?.id, created.json().id);
    assert.deepEqual(ci?.permissions, ['scaibunker:execute']);
    assert.equal(ci?.user_id, 'alice');
    assert.deepEqual(ci?.groups, ['devs']);
    assert.equal(ci?.revoked_at, null);
    for (const secret of [key, created.json().key as string]) {
      assert.ok(!res.body.includes(secret.slice(4, 20)), 'no secret in the answer');
    }
    assert.ok(!res.body.includes('hash'), 'no hash in the answer');
  });

  test('last_used_at is written on use', async () => {
    const { tenantId, key } = await tenantWithKey(ctl.controller, 'used', ['scaibunker:read']);
    const before = (await call('GET', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey)).json().items[0];
    assert.equal(before.last_used_at, null);
    assert.equal((await call('GET', `${API}/bunkers`, key)).statusCode, 200);
    let used: string | null = null;
    for (let i = 0; i < 50 && !used; i++) {
      await sleep(20);
      used = (await call('GET', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey)).json().items[0].last_used_at;
    }
    assert.ok(used && Date.parse(used) > Date.now() - 10_000, `last_used_at ${used}`);
    // A second use within the minute writes nothing.
    assert.equal((await call('GET', `${API}/bunkers`, key)).statusCode, 200);
    await sleep(50);
    assert.equal((await call('GET', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey)).json().items[0].last_used_at, used);
  });

  test('a revoked key is 401 at once on the same controller, even while cached', async () => {
    const { tenantId, key } = await tenantWithKey(ctl.controller, 'revoke', ['scaibunker:read']);
    assert.equal((await call('GET', `${API}/bunkers`, key)).statusCode, 200); // now cached
    const keyId = (await call('GET', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey)).json().items[0].id;
    const del = await call('DELETE', `/v1/admin/tenants/${tenantId}/api-keys/${keyId}`, ctl.adminKey);
    assert.equal(del.statusCode, 200, del.body);
    assert.ok(del.json().revoked_at);
    const after = await call('GET', `${API}/bunkers`, key);
    assert.equal(after.statusCode, 401);
    assert.equal(after.json().error.code, 'UNAUTHENTICATED');
    // Idempotent; the list shows it revoked.
    assert.equal((await call('DELETE', `/v1/admin/tenants/${tenantId}/api-keys/${keyId}`, ctl.adminKey)).statusCode, 200);
    assert.ok((await call('GET', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey)).json().items[0].revoked_at);
    const missing = await call('DELETE', `/v1/admin/tenants/${tenantId}/api-keys/ak_00000000000000000000`, ctl.adminKey);
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'API_KEY_NOT_FOUND');
  });

  test('an expired key is 401 UNAUTHENTICATED; an expiry in the past is refused at create', async () => {
    const { tenantId } = await tenantWithKey(ctl.controller, 'expiry', ['scaibunker:read']);
    const expiresAt = new Date(Date.now() + 1000).toISOString();
    const created = await call('POST', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey, {
      name: 'short',
      permissions: ['scaibunker:read'],
      expires_at: expiresAt,
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().expires_at, expiresAt);
    assert.equal((await call('GET', `${API}/bunkers`, created.json().key)).statusCode, 200);
    await sleep(Date.parse(expiresAt) - Date.now() + 50);
    const res = await call('GET', `${API}/bunkers`, created.json().key);
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().error.code, 'UNAUTHENTICATED');
    assert.match(res.json().error.message, /expired/);
    for (const bad of [new Date(Date.now() - 1000).toISOString(), '2024-02-30T00:00:00Z']) {
      const r = await call('POST', `/v1/admin/tenants/${tenantId}/api-keys`, ctl.adminKey, {
        name: 'past',
        permissions: ['scaibunker:read'],
        expires_at: bad,
      });
      assert.equal(r.statusCode, 400, bad);
      assert.equal(r.json().error.code, 'VALIDATION_FAILED');
    }
  });

  test("a tenant admin lists and revokes its own tenant's keys and cannot see another's (404)", async () => {
    const a = await tenantWithKey(ctl.controller, 'scope-a', ['scaibunker:admin:tenant']);
    const b = await tenantWithKey(ctl.controller, 'scope-b', ['scaibunker:admin:tenant']);
    const own = await call('GET', `/v1/admin/tenants/${a.tenantId}/api-keys`, a.key);
    assert.equal(own.statusCode, 200, own.body);
    assert.equal(own.json().items.length, 1);
    const bKeyId = (await call('GET', `/v1/admin/tenants/${b.tenantId}/api-keys`, b.key)).json().items[0].id;
    const list = await call('GET', `/v1/admin/tenants/${b.tenantId}/api-keys`, a.key);
    assert.equal(list.statusCode, 404);
    assert.equal(list.json().error.code, 'TENANT_NOT_FOUND');
    const del = await call('DELETE', `/v1/admin/tenants/${b.tenantId}/api-keys/${bKeyId}`, a.key);
    assert.equal(del.statusCode, 404);
    assert.equal(del.json().error.code, 'TENANT_NOT_FOUND');
    // B's key still works; A's key id under A's tenant path does not reach B's key either.
    assert.equal((await call('GET', `${API}/bunkers`, b.key)).statusCode, 200);
    const cross = await call('DELETE', `/v1/admin/tenants/${a.tenantId}/api-keys/${bKeyId}`, a.key);
    assert.equal(cross.statusCode, 404);
    assert.equal(cross.json().error.code, 'API_KEY_NOT_FOUND');
    assert.equal((await call('GET', `${API}/bunkers`, b.key)).statusCode, 200);
    // Creating keys stays with platform admins; plain keys may not list.
    const create = await call('POST', `/v1/admin/tenants/${a.tenantId}/api-keys`, a.key, { name: 'x', permissions: ['scaibunker:admin'] });
    assert.equal(create.statusCode, 403);
    const reader = await tenantWithKey(ctl.controller, 'scope-r', ['scaibunker:read']);
    assert.equal((await call('GET', `/v1/admin/tenants/${reader.tenantId}/api-keys`, reader.key)).statusCode, 403);
    // A tenant admin may revoke its own tenant's keys (its own included).
    const ownId = own.json().items[0].id;
    assert.equal((await call('DELETE', `/v1/admin/tenants/${a.tenantId}/api-keys/${ownId}`, a.key)).statusCode, 200);
    assert.equal((await call('GET', `/v1/admin/tenants/${a.tenantId}/api-keys`, a.key)).statusCode, 401);
  });
});

describe('API keys: revocation reaches a second controller (PostgreSQL + Redis)', () => {
  let db: TestDatabase;
  const dirs: string[] = [];
  const controllers: Controller[] = [];
  const postgres = DIALECTS.find((d) => d.name === 'postgres');

  before(async () => {
    db = await (postgres as (typeof DIALECTS)[number]).create();
  });
  after(async () => {
    await Promise.all(controllers.map((c) => c.close()));
    await db?.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const open = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-keys-'));
    dirs.push(dir);
    const c = await Controller.open({
      databaseUrl: db.url,
      blobDir: join(dir, 'blobs'),
      workerToken: WORKER_TOKEN,
      redisUrl: testRedisUrl(),
    });
    controllers.push(c);
    return c;
  };

  test('revoked on A: 401 on B within a second, though B had it cached', async () => {
    const a = await open();
    const b = await open();
    const adminKey = (await a.services.tenants.bootstrap()) as string;
    const { tenantId, key } = await tenantWithKey(a, 'two-ctl', ['scaibunker:read']);
    const get = (c: Controller) => c.http.inject({ method: 'GET', url: `${API}/bunkers`, headers: bearer(key) });
    assert.equal((await get(a)).statusCode, 200);
    assert.equal((await get(b)).statusCode, 200); // cached on B for 10 s
    const keyId = (await a.http.inject({ method: 'GET', url: `/v1/admin/tenants/${tenantId}/api-keys`, headers: bearer(adminKey) })).json()
      .items[0].id;
    const revokedAt = Date.now();
    const del = await a.http.inject({
      method: 'DELETE',
      url: `/v1/admin/tenants/${tenantId}/api-keys/${keyId}`,
      headers: bearer(adminKey),
    });
    assert.equal(del.statusCode, 200, del.body);
    assert.equal((await get(a)).statusCode, 401);
    let status = 200;
    while (Date.now() - revokedAt < 1000) {
      status = (await get(b)).statusCode;
      if (status === 401) break;
      await sleep(10);
    }
    assert.equal(status, 401, 'B refuses the key within a second');
  });
});
