import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { Authenticator } from '../../src/auth/Authenticator.js';
import { hashApiKey } from '../../src/auth/apiKeys.js';
import { JwtVerifier } from '../../src/auth/JwtVerifier.js';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';

const SECRET = 'a-test-secret-of-sufficient-length-0123456789';
const API = '/v1/modules/scaibunker';

async function jwt(claims: Record<string, unknown>, opts: { secret?: string; expiresIn?: string } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('user-1')
    .setIssuedAt()
    .setExpirationTime(opts.expiresIn ?? '5m')
    .sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

describe('authentication', () => {
  let dir: string;
  let controller: Controller;
  let tenantId: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-auth-'));
    controller = await Controller.open({
      databaseUrl: `sqlite:${join(dir, 'db')}`,
      blobDir: join(dir, 'blobs'),
      jwt: { hs256Secret: SECRET },
    });
    tenantId = (await controller.services.tenants.createTenant(systemPrincipal('t'), 'jwt-tenant')).id;
  });
  after(async () => {
    await controller?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const get = (token: string) =>
    controller.http.inject({ method: 'GET', url: `${API}/bunkers`, headers: { authorization: `Bearer ${token}` } });

  test('a valid HS256 JWT with tenant_id and permissions is accepted', async () => {
    const res = await get(await jwt({ tenant_id: tenantId, permissions: ['scaibunker:read'] }));
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().items, []);
  });

  test('scope claims work like permissions', async () => {
    assert.equal((await get(await jwt({ tenant_id: tenantId, scope: 'openid scaibunker:read' }))).statusCode, 200);
    assert.equal((await get(await jwt({ tenant_id: tenantId, scope: 'openid' }))).statusCode, 403);
  });

  test('a JWT signed with another secret, expired, or without a tenant is refused', async () => {
    for (const token of [
      await jwt({ tenant_id: tenantId, permissions: ['scaibunker:read'] }, { secret: 'another-secret-of-sufficient-length-000000' }),
      await jwt({ tenant_id: tenantId, permissions: ['scaibunker:read'] }, { expiresIn: '-1m' }),
      await jwt({ permissions: ['scaibunker:read'] }),
      'not.a.jwt',
    ]) {
      const res = await get(token);
      assert.equal(res.statusCode, 401);
      assert.equal(res.json().error.code, 'UNAUTHENTICATED');
    }
  });

  test('API keys are stored as their SHA-256 only', async () => {
    const { key, id } = await controller.services.tenants.createApiKey(systemPrincipal('t'), tenantId, 'k', ['scaibunker:read']);
    const row = await controller.store.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(row.key_hash, hashApiKey(key));
    assert.ok(!JSON.stringify(row).includes(key.slice(4)), 'the key itself is not stored');
    assert.equal((await get(key)).statusCode, 200);
  });

  test("a JWT's sub and groups claim are the caller's user and groups (absent groups: none); a malformed groups claim is refused", async () => {
    const auth = new Authenticator(controller.store, new JwtVerifier({ hs256Secret: SECRET }), undefined);
    const withGroups = await auth.authenticate(
      `Bearer ${await jwt({ tenant_id: tenantId, permissions: ['scaibunker:read'], groups: ['ml', 'ops', 'ml'] })}`,
    );
    assert.equal(withGroups.userId, 'user-1');
    assert.deepEqual(withGroups.groups, ['ml', 'ops']);
    assert.equal(withGroups.actor, 'jwt:user-1');
    const none = await auth.authenticate(`Bearer ${await jwt({ tenant_id: tenantId, permissions: ['scaibunker:read'] })}`);
    assert.deepEqual(none.groups, []);
    for (const groups of ['ml', [1], [''], { a: 1 }]) {
      const res = await get(await jwt({ tenant_id: tenantId, permissions: ['scaibunker:read'], groups }));
      assert.equal(res.statusCode, 401, JSON.stringify(groups));
    }
  });

  test('API keys act as the user_id and groups they were created with; by default as their own actor, in no group', async () => {
    const platformKey = (await controller.services.tenants.bootstrap()) as string;
    const created = await controller.http.inject({
      method: 'POST',
      url: `/v1/admin/tenants/${tenantId}/api-keys`,
      headers: { authorization: `Bearer ${platformKey}` },
      payload: { name: 'alice', permissions: ['scaibunker:read'], user_id: 'alice@example.com', groups: ['ml', 'ops'] },
    });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal(created.json().user_id, 'alice@example.com');
    assert.deepEqual(created.json().groups, ['ml', 'ops']);
    const auth = new Authenticator(controller.store, undefined, undefined);
    const alice = await auth.authenticate(`Bearer ${created.json().key}`);
    assert.equal(alice.userId, 'alice@example.com');
    assert.deepEqual(alice.groups, ['ml', 'ops']);
    assert.equal(alice.actor, `key:${created.json().id}`);

    const plain = await controller.http.inject({
      method: 'POST',
      url: `/v1/admin/tenants/${tenantId}/api-keys`,
      headers: { authorization: `Bearer ${platformKey}` },
      payload: { name: 'plain', permissions: ['scaibunker:read'] },
    });
    assert.equal(plain.json().user_id, `key:${plain.json().id}`);
    assert.deepEqual(plain.json().groups, []);
    const p = await auth.authenticate(`Bearer ${plain.json().key}`);
    assert.equal(p.userId, `key:${plain.json().id}`);
    assert.deepEqual(p.groups, []);

    for (const bad of [{ user_id: '' }, { groups: [''] }, { groups: ['a', 'a'] }, { groups: 'ml' }, { user_id: 'a\nb' }]) {
      const res = await controller.http.inject({
        method: 'POST',
        url: `/v1/admin/tenants/${tenantId}/api-keys`,
        headers: { authorization: `Bearer ${platformKey}` },
        payload: { name: 'bad', permissions: ['scaibunker:read'], ...bad },
      });
      assert.equal(res.statusCode, 400, JSON.stringify(bad));
    }
  });

  test('without a worker token configured, no token passes as a worker', async () => {
    const res = await controller.http.inject({
      method: 'POST',
      url: `${API}/heartbeat`,
      headers: { authorization: 'Bearer ', 'content-type': 'application/json' },
      payload: '{}',
    });
    assert.equal(res.statusCode, 401);
  });
});
