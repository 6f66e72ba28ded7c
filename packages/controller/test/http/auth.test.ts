import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { hashApiKey } from '../../src/auth/apiKeys.js';
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
    tenantId = (
      await controller.services.tenants.createTenant({ kind: 'api_key', tenantId: '', actor: 't', permissions: [] }, 'jwt-tenant')
    ).id;
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
    const { key, id } = await controller.services.tenants.createApiKey(
      { kind: 'api_key', tenantId: '', actor: 't', permissions: [] },
      tenantId,
      'k',
      ['scaibunker:read'],
    );
    const row = await controller.store.db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    assert.equal(row.key_hash, hashApiKey(key));
    assert.ok(!JSON.stringify(row).includes(key.slice(4)), 'the key itself is not stored');
    assert.equal((await get(key)).statusCode, 200);
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
