/**
 * The SDK's quota helpers and QuotaError details against a real controller (SQLite, in-process
 * counters, a fake worker): profiles, assignments, usage, and a create refused by a quota.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { Bunker, NotFoundError, QuotaError, ScaiBunkerClient } from '../src/index.js';

describe('SDK quotas against a real controller', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let platform: ScaiBunkerClient;
  let tenantAdmin: ScaiBunkerClient;
  let alice: ScaiBunkerClient;
  let tenantId: string;

  before(async () => {
    served = await servedController();
    platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    tenantId = (await platform.admin.createTenant('acme')).id;
    const admin = await platform.admin.createApiKey(tenantId, 'admin', ['scaibunker:admin:tenant']);
    tenantAdmin = new ScaiBunkerClient({ baseUrl: served.url, apiKey: admin.key });
    const key = await platform.admin.createApiKey(tenantId, 'alice', ['scaibunker:create', 'scaibunker:read'], {
      user_id: 'alice',
      groups: ['ml'],
    });
    assert.equal(key.user_id, 'alice');
    assert.deepEqual(key.groups, ['ml']);
    alice = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
  });
  after(async () => served?.close());

  test('create, list, get, update, assign, unassign and delete a profile', async () => {
    const p = await tenantAdmin.quotas.create({ name: 'small', max_bunkers: 2, allowed_lifecycles: ['ephemeral', 'session'] });
    assert.equal(p.tenant_id, tenantId);
    assert.deepEqual(
      (await tenantAdmin.quotas.list()).map((x) => x.id),
      [p.id],
    );
    assert.deepEqual(
      (await platform.quotas.list({ tenantId })).map((x) => x.id),
      [p.id],
    );
    const a = await tenantAdmin.quotas.assign(p.id, 'group_per_user', 'ml');
    assert.equal(a.kind, 'group_per_user');
    assert.deepEqual(
      (await tenantAdmin.quotas.get(p.id)).assignments.map((x) => x.id),
      [a.id],
    );
    const updated = await tenantAdmin.quotas.update(p.id, { max_bunkers: 3, allowed_lifecycles: null });
    assert.equal(updated.max_bunkers, 3);
    assert.equal(updated.allowed_lifecycles, null);
    await tenantAdmin.quotas.unassign(p.id, a.id);
    assert.deepEqual((await tenantAdmin.quotas.get(p.id)).assignments, []);
    await tenantAdmin.quotas.delete(p.id);
    await assert.rejects(
      tenantAdmin.quotas.get(p.id),
      (err: unknown) => err instanceof NotFoundError && err.code === 'QUOTA_PROFILE_NOT_FOUND',
    );
  });

  test('a create over a quota is a QuotaError whose details name the bucket; usage shows current / cap / remaining', async () => {
    const p = await tenantAdmin.quotas.create({ name: 'ml-shared', max_bunkers: 1, max_memory_mb: 1024 });
    await tenantAdmin.quotas.assign(p.id, 'group', 'ml');
    const first = await Bunker.create({ image: 'minimal', memory_mb: 256 }, alice);
    const err = await Bunker.create({ image: 'minimal', memory_mb: 256 }, alice).then(
      () => assert.fail('the second create should be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof QuotaError);
    assert.equal(err.code, 'QUOTA_EXCEEDED');
    assert.equal(err.status, 429);
    assert.deepEqual(err.details, {
      bucket: { kind: 'group', id: 'ml', user_id: null, group: 'ml' },
      resource: 'bunkers',
      current: 1,
      cap: 1,
      requested: 1,
      profile_id: p.id,
    });
    const [mine] = await alice.quotas.usage();
    assert.equal(mine?.bucket.group, 'ml');
    assert.deepEqual(mine?.resources.memory_mb, { current: 256, cap: 1024, remaining: 768 });
    assert.deepEqual(mine?.profile_ids, [p.id]);
    await first.terminate();
    assert.equal((await alice.quotas.usage())[0]?.resources.bunkers.current, 0);
  });
});
