/**
 * Quotas end to end through the HTTP API: profiles and their access rules, the three kinds of
 * assignment, strictest-wins, QUOTA_EXCEEDED, concurrency, release on every end, edits, rebuild
 * after the counters are wiped, stuck creates. Every store dialect × both counter
 * implementations, with a fake worker (no real bunkers).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newId, type Permission, type QuotaResource } from '@scaibunker/core';
import { type Principal, systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { type BucketRef, bucketKey } from '../../src/quotas/buckets.js';
import type { QuotaCounters } from '../../src/quotas/QuotaCounters.js';
import { RedisQuotaCounters } from '../../src/quotas/RedisQuotaCounters.js';
import type { BunkerRow } from '../../src/store/schema.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { addFakeWorker, FAKE_IMAGE_SHA } from '../helpers/fakeWorker.js';
import { COUNTERS, redisCommand, testRedisUrl } from '../helpers/redis.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const system = systemPrincipal('test');
const STUCK_MS = 60_000;

type Json = any;

for (const dialect of DIALECTS) {
  for (const impl of COUNTERS) {
    describe(`quotas (${dialect.name}, ${impl.name} counters)`, () => {
      let db: TestDatabase;
      let dir: string;
      let controller: Controller;
      let counters: QuotaCounters;
      let worker: Awaited<ReturnType<typeof addFakeWorker>>;
      let tenantA: string;
      let tenantB: string;
      let platformKey: string;
      let adminA: string;
      let adminB: string;
      let n = 0;
      const uniq = (s: string) => `${s}-${++n}`;

      const call = async (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, key: string, payload?: unknown) =>
        controller.http.inject({
          method,
          url: url.startsWith('/') ? url : `${API}/${url}`,
          headers: { authorization: `Bearer ${key}` },
          ...(payload === undefined ? {} : { payload: payload as object }),
        });
      const ok = async (res: Awaited<ReturnType<typeof call>>, status = 200): Promise<Json> => {
        assert.equal(res.statusCode, status, res.body);
        return res.json();
      };
      /** A key of tenant A (by default) acting as `userId` in `groups`. */
      const userKey = async (
        userId: string,
        groups: string[] = [],
        tenantId = tenantA,
        permissions: Permission[] = ['scaibunker:create'],
      ) => (await controller.services.tenants.createApiKey(system, tenantId, uniq('k'), permissions, { userId, groups })).key;
      const profile = async (body: Record<string, unknown>, key = adminA): Promise<Json> =>
        ok(await call('POST', 'quota-profiles', key, { name: uniq('p'), ...body }), 201);
      const assign = async (profileId: string, kind: string, subject: string, key = adminA): Promise<Json> =>
        ok(await call('POST', `quota-profiles/${profileId}/assignments`, key, { kind, subject }), 201);
      const create = (key: string, body: Record<string, unknown> = {}) => call('POST', 'bunkers', key, { image: 'minimal', ...body });
      const terminate = async (key: string, id: string) => ok(await call('DELETE', `bunkers/${id}`, key));
      const usage = async (key: string, query = ''): Promise<Json[]> =>
        (await ok(await call('GET', `quota-profiles/usage${query}`, key))).items;
      const bucketUsage = async (key: string, kind: string, id: string) => {
        const item = (await usage(key)).find((i) => i.bucket.kind === kind && i.bucket.id === id);
        assert.ok(item, `bucket ${kind} ${id} is in the usage`);
        return item.resources as Record<QuotaResource, { current: number; cap: number | null; remaining: number | null }>;
      };
      const counter = async (bucket: Omit<BucketRef, 'tenantId'>, resource: QuotaResource = 'bunkers') => {
        const k = bucketKey({ tenantId: tenantA, ...bucket }, resource);
        return (await counters.usage([k])).get(k);
      };
      const activeRows = async (tenantId = tenantA) =>
        (await controller.store.bunkers.listActive()).filter((r) => r.tenant_id === tenantId);
      /** Ends every active bunker of tenant A, so each test starts with none. */
      const endAll = async () => {
        for (const r of await activeRows()) await controller.services.bunkers.end(r, 'terminated', 'user');
      };

      before(async () => {
        if (impl.name === 'redis') await redisCommand('FLUSHALL');
        db = await dialect.create();
        dir = mkdtempSync(join(tmpdir(), 'sb-quota-'));
        counters = await impl.create();
        controller = await Controller.open({
          databaseUrl: db.url,
          blobDir: join(dir, 'blobs'),
          workerToken: WORKER_TOKEN,
          quotaCounters: counters,
          config: { stuckCreateMs: STUCK_MS },
        });
        platformKey = (await controller.services.tenants.bootstrap()) as string;
        tenantA = (await controller.services.tenants.createTenant(system, 'a')).id;
        tenantB = (await controller.services.tenants.createTenant(system, 'b')).id;
        adminA = await userKey('admin-a', [], tenantA, ['scaibunker:admin:tenant']);
        adminB = await userKey('admin-b', [], tenantB, ['scaibunker:admin:tenant']);
        worker = await addFakeWorker(controller);
      });
      after(async () => {
        await controller?.close();
        await db?.cleanup();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      test('profile CRUD: a tenant admin manages its own tenant only, platform admins every tenant, others get 403', async () => {
        const created = await profile({ max_bunkers: 5, max_memory_mb: 4096, allowed_lifecycles: ['ephemeral'] });
        assert.equal(created.tenant_id, tenantA);
        assert.match(created.id, /^qp_/);
        assert.equal(created.max_bunkers, 5);
        assert.equal(created.max_cpu_millicores, null);
        assert.deepEqual(created.allowed_lifecycles, ['ephemeral']);
        assert.equal(created.allowed_images, null);
        assert.deepEqual(created.assignments, []);
        const url = `quota-profiles/${created.id}`;
        assert.equal((await ok(await call('GET', url, adminA))).name, created.name);

        // tenant B's admin: another tenant's profile is not found, whatever the verb
        for (const [method, path, payload] of [
          ['GET', url, undefined],
          ['PATCH', url, { max_bunkers: 1 }],
          ['DELETE', url, undefined],
          ['POST', `${url}/assignments`, { kind: 'user', subject: 'x' }],
        ] as const) {
          const res = await call(method, path, adminB, payload);
          assert.equal(res.statusCode, 404, `${method} ${path}`);
          assert.equal(res.json().error.code, 'QUOTA_PROFILE_NOT_FOUND');
        }
        assert.ok(!(await ok(await call('GET', 'quota-profiles', adminB))).items.some((p: Json) => p.id === created.id));

        // non-admins: 403 on every profile route
        const plain = await userKey('plain', [], tenantA, ['scaibunker:read', 'scaibunker:create', 'scaibunker:execute']);
        for (const [method, path] of [
          ['GET', 'quota-profiles'],
          ['POST', 'quota-profiles'],
          ['GET', url],
          ['PATCH', url],
          ['DELETE', url],
          ['POST', `${url}/assignments`],
        ] as const) {
          const res = await call(method, path, plain, method === 'GET' || method === 'DELETE' ? undefined : {});
          assert.equal(res.statusCode, 403, `${method} ${path}`);
          assert.equal(res.json().error.code, 'PERMISSION_DENIED');
        }

        // update: only the fields given; null clears
        const updated = await ok(
          await call('PATCH', url, adminA, { max_bunkers: null, max_cpu_millicores: 8000, allowed_lifecycles: null }),
        );
        assert.equal(updated.max_bunkers, null);
        assert.equal(updated.max_cpu_millicores, 8000);
        assert.equal(updated.max_memory_mb, 4096);
        assert.equal(updated.allowed_lifecycles, null);
        assert.ok(updated.updated_at >= created.updated_at);

        // platform admins: every tenant's, create in any tenant, and manage another tenant's profile
        const inB = await profile({ tenant_id: tenantB, max_bunkers: 1 }, platformKey);
        assert.equal(inB.tenant_id, tenantB);
        const all = (await ok(await call('GET', 'quota-profiles', platformKey))).items.map((p: Json) => p.id);
        assert.ok(all.includes(created.id) && all.includes(inB.id));
        const onlyB = (await ok(await call('GET', `quota-profiles?tenant_id=${tenantB}`, platformKey))).items;
        assert.deepEqual(
          onlyB.map((p: Json) => p.tenant_id),
          onlyB.map(() => tenantB),
        );
        assert.equal((await ok(await call('PATCH', url, platformKey, { max_bunkers: 2 }))).max_bunkers, 2);
        assert.equal((await ok(await call('GET', `quota-profiles/${inB.id}`, adminB))).id, inB.id);

        // delete: gone, with its assignments
        await assign(created.id, 'user', 'someone');
        await ok(await call('DELETE', url, adminA));
        assert.equal((await call('GET', url, adminA)).statusCode, 404);
        assert.equal((await call('DELETE', url, adminA)).statusCode, 404);
      });

      test('naming another tenant is TENANT_NOT_FOUND for tenant admins; duplicates are QUOTA_PROFILE_CONFLICT', async () => {
        for (const res of [
          await call('POST', 'quota-profiles', adminA, { name: uniq('p'), tenant_id: tenantB }),
          await call('GET', `quota-profiles?tenant_id=${tenantB}`, adminA),
          await call('GET', `quota-profiles/usage?tenant_id=${tenantB}`, adminA),
          await call('POST', 'quota-profiles', platformKey, { name: uniq('p'), tenant_id: newId('tn') }),
        ]) {
          assert.equal(res.statusCode, 404, res.body);
          assert.equal(res.json().error.code, 'TENANT_NOT_FOUND');
        }
        const p = await profile({});
        const dup = await call('POST', 'quota-profiles', adminA, { name: p.name });
        assert.equal(dup.statusCode, 409);
        assert.equal(dup.json().error.code, 'QUOTA_PROFILE_CONFLICT');
        // the same name in another tenant is fine
        await profile({ name: p.name }, adminB);
        const other = await profile({});
        const rename = await call('PATCH', `quota-profiles/${other.id}`, adminA, { name: p.name });
        assert.equal(rename.statusCode, 409);
        assert.equal(rename.json().error.code, 'QUOTA_PROFILE_CONFLICT');
        await assign(p.id, 'group', 'g');
        const again = await call('POST', `quota-profiles/${p.id}/assignments`, adminA, { kind: 'group', subject: 'g' });
        assert.equal(again.statusCode, 409);
        assert.equal(again.json().error.code, 'QUOTA_PROFILE_CONFLICT');
        const bad = await call('POST', `quota-profiles/${p.id}/assignments`, adminA, { kind: 'team', subject: 'g' });
        assert.equal(bad.statusCode, 400);
        const unknown = await call('DELETE', `quota-profiles/${p.id}/assignments/qa_${'0'.repeat(20)}`, adminA);
        assert.equal(unknown.statusCode, 404);
        assert.equal(unknown.json().error.code, 'QUOTA_PROFILE_NOT_FOUND');
      });

      test('user, group and group_per_user assignments each count in their own bucket', async () => {
        const [team, crew] = [uniq('team'), uniq('crew')];
        const [alice, bob, carol] = [uniq('alice'), uniq('bob'), uniq('carol')];
        const ka = await userKey(alice, [team, crew]);
        const kb = await userKey(bob, [team, crew]);
        const kc = await userKey(carol, []);
        await assign((await profile({ max_bunkers: 1 })).id, 'user', carol);
        await assign((await profile({ max_bunkers: 3 })).id, 'group', team);
        await assign((await profile({ max_bunkers: 1 })).id, 'group_per_user', crew);

        // carol: her own bucket of 1
        const c1 = await ok(await create(kc), 201);
        const c2 = await create(kc);
        assert.equal(c2.statusCode, 429);
        assert.deepEqual(c2.json().error.details.bucket, { kind: 'user', id: carol, user_id: carol, group: null });

        // alice and bob: one each in crew (per user), both in team's shared bucket
        const a1 = await ok(await create(ka), 201);
        const b1 = await ok(await create(kb), 201);
        const a2 = await create(ka);
        assert.equal(a2.statusCode, 429);
        assert.deepEqual(a2.json().error.details.bucket, { kind: 'group_per_user', id: `${crew}:${alice}`, user_id: alice, group: crew });
        assert.equal(await counter({ kind: 'group', group: team, userId: null }), 2);
        assert.equal(await counter({ kind: 'group_per_user', group: crew, userId: alice }), 1);
        assert.equal(await counter({ kind: 'group_per_user', group: crew, userId: bob }), 1);
        assert.equal(await counter({ kind: 'user', userId: carol, group: null }), 1);

        // the shared bucket fills up for everyone in the group, whoever holds it
        const dave = uniq('dave');
        const kd = await userKey(dave, [team]);
        await ok(await create(kd), 201);
        const d2 = await create(kd);
        assert.equal(d2.statusCode, 429);
        assert.deepEqual(d2.json().error.details.bucket, { kind: 'group', id: team, user_id: null, group: team });
        assert.equal(d2.json().error.details.current, 3);
        await terminate(ka, a1.id);
        await ok(await create(kd), 201);
        assert.equal(await counter({ kind: 'group', group: team, userId: null }), 3);
        await endAll();
        assert.equal(await counter({ kind: 'group', group: team, userId: null }), 0);
        assert.equal(await counter({ kind: 'user', userId: carol, group: null }), 0);
        assert.ok(b1.id && c1.id);
      });

      test('the strictest cap wins across profiles on one bucket, and every applicable bucket is checked', async () => {
        const [user, group] = [uniq('u'), uniq('g')];
        const key = await userKey(user, [group]);
        const loose = await profile({ max_memory_mb: 4096, max_bunkers: 10 });
        const strict = await profile({ max_memory_mb: 1024 });
        await assign(loose.id, 'user', user);
        await assign(strict.id, 'user', user);
        const big = await create(key, { memory_mb: 1536 });
        assert.equal(big.statusCode, 429);
        const d = big.json().error.details;
        assert.equal(d.resource, 'memory_mb');
        assert.equal(d.cap, 1024);
        assert.equal(d.profile_id, strict.id);
        await ok(await create(key, { memory_mb: 512 }), 201);
        const mine = await bucketUsage(adminA, 'user', user);
        assert.deepEqual(mine.memory_mb, { current: 512, cap: 1024, remaining: 512 });
        assert.deepEqual(mine.bunkers, { current: 1, cap: 10, remaining: 9 });
        // a group bucket with a stricter count than the user's own: both are checked
        await assign((await profile({ max_bunkers: 1 })).id, 'group', group);
        await ok(await create(key, { memory_mb: 256 }), 201);
        const third = await create(key, { memory_mb: 128 });
        assert.equal(third.statusCode, 429);
        assert.equal(third.json().error.details.bucket.kind, 'group');
        assert.equal(third.json().error.details.resource, 'bunkers');
        await endAll();
      });

      test('QUOTA_EXCEEDED (429) names the bucket and the resource with current, cap and requested; a refused create leaves no row', async () => {
        const user = uniq('detail');
        const key = await userKey(user, [], tenantA, ['scaibunker:create', 'scaibunker:read']);
        const p = await profile({ max_cpu_millicores: 1500 });
        await assign(p.id, 'user', user);
        await ok(await create(key, { cpu_millicores: 1000, metadata: { t: 'detail' } }), 201);
        const res = await create(key, { cpu_millicores: 1000, metadata: { t: 'detail' } });
        assert.equal(res.statusCode, 429);
        const { error } = res.json();
        assert.equal(error.code, 'QUOTA_EXCEEDED');
        assert.deepEqual(error.details, {
          bucket: { kind: 'user', id: user, user_id: user, group: null },
          resource: 'cpu_millicores',
          current: 1000,
          cap: 1500,
          requested: 1000,
          profile_id: p.id,
        });
        assert.match(error.message, /cpu_millicores/);
        const rows = (await ok(await call('GET', 'bunkers?label=t=detail', key))).items;
        assert.equal(rows.length, 1, 'the refused create left no row');
        await endAll();
      });

      test("allow-lists: a lifecycle, image or network profile outside a profile's list is QUOTA_EXCEEDED naming it", async () => {
        const [user, group] = [uniq('u'), uniq('g')];
        const key = await userKey(user, [group]);
        const p = await profile({ allowed_lifecycles: ['session'], allowed_images: ['python'], allowed_network_profiles: ['isolated'] });
        await assign(p.id, 'group', group);
        const lifecycle = await create(key, { image: 'python' });
        assert.equal(lifecycle.statusCode, 429);
        assert.deepEqual(lifecycle.json().error.details, {
          bucket: { kind: 'group', id: group, user_id: null, group },
          resource: 'lifecycle',
          current: null,
          cap: null,
          requested: 'ephemeral',
          allowed: ['session'],
          profile_id: p.id,
        });
        const image = await create(key, { image: 'minimal', lifecycle: 'session' });
        assert.equal(image.statusCode, 429);
        assert.equal(image.json().error.details.resource, 'image');
        assert.deepEqual(image.json().error.details.allowed, ['python']);
        await ok(await create(key, { image: 'python', lifecycle: 'session' }), 201);
        await assign((await profile({ allowed_network_profiles: ['registry'] })).id, 'user', user);
        const network = await create(key, { image: 'python', lifecycle: 'session' });
        assert.equal(network.statusCode, 429);
        assert.equal(network.json().error.details.resource, 'network_profile');
        assert.equal(network.json().error.details.requested, 'isolated');
        assert.equal((await activeRows()).length, 1, 'refused creates leave no row');
        await endAll();
      });

      test('50 concurrent creates against a cap of 10: exactly 10 run and the counter never overshoots', async () => {
        const user = uniq('burst');
        const key = await userKey(user, [], tenantA, ['scaibunker:create', 'scaibunker:read']);
        await assign((await profile({ max_bunkers: 10 })).id, 'user', user);
        const label = uniq('burst');
        const results = await Promise.all(
          Array.from({ length: 50 }, () => create(key, { cpu_millicores: 100, memory_mb: 32, disk_mb: 16, metadata: { burst: label } })),
        );
        const codes = results.map((r) => r.statusCode);
        assert.equal(codes.filter((c) => c === 201).length, 10, JSON.stringify(codes));
        assert.equal(codes.filter((c) => c === 429).length, 40);
        for (const r of results.filter((x) => x.statusCode === 429)) {
          const d = r.json().error.details;
          assert.equal(d.resource, 'bunkers');
          assert.equal(d.current, 10, 'a refusal only ever saw the cap reached, never passed');
        }
        assert.equal(await counter({ kind: 'user', userId: user, group: null }), 10);
        assert.equal(await counter({ kind: 'user', userId: user, group: null }, 'cpu_millicores'), 1000);
        assert.deepEqual((await bucketUsage(adminA, 'user', user)).bunkers, { current: 10, cap: 10, remaining: 0 });
        const rows = (await ok(await call('GET', `bunkers?label=burst=${label}&limit=200`, key))).items;
        assert.equal(rows.length, 10, 'refused creates left no rows');
        assert.ok(rows.every((r: Json) => r.state === 'running'));
        await endAll();
        assert.equal(await counter({ kind: 'user', userId: user, group: null }), 0);
      });

      test('terminate releases the charge, once', async () => {
        const user = uniq('term');
        const key = await userKey(user);
        await assign((await profile({ max_bunkers: 2 })).id, 'user', user);
        const a = await ok(await create(key), 201);
        await ok(await create(key), 201);
        assert.equal((await create(key)).statusCode, 429);
        assert.equal((await terminate(key, a.id)).state, 'terminated');
        assert.equal(await counter({ kind: 'user', userId: user, group: null }), 1);
        await terminate(key, a.id);
        assert.equal(await counter({ kind: 'user', userId: user, group: null }), 1, 'terminating again releases nothing more');
        await ok(await create(key), 201);
        await endAll();
        assert.equal(await counter({ kind: 'user', userId: user, group: null }), 0);
      });

      test('a profile edited while bunkers run: charges made stay, the new caps apply to later creates only', async () => {
        const user = uniq('edit');
        const key = await userKey(user, [], tenantA, ['scaibunker:create', 'scaibunker:read']);
        const p = await profile({ max_bunkers: 3 });
        await assign(p.id, 'user', user);
        const made = [];
        for (let i = 0; i < 3; i++) made.push(await ok(await create(key), 201));
        await ok(await call('PATCH', `quota-profiles/${p.id}`, adminA, { max_bunkers: 1 }));
        for (const b of made) assert.equal((await ok(await call('GET', `bunkers/${b.id}`, key))).state, 'running');
        assert.deepEqual((await bucketUsage(adminA, 'user', user)).bunkers, { current: 3, cap: 1, remaining: 0 });
        const refused = await create(key);
        assert.equal(refused.statusCode, 429);
        assert.equal(refused.json().error.details.current, 3);
        assert.equal(refused.json().error.details.cap, 1);
        await terminate(key, made[0].id);
        await terminate(key, made[1].id);
        assert.equal((await create(key)).statusCode, 429, '1 running, cap 1');
        await terminate(key, made[2].id);
        await ok(await create(key), 201);
        await ok(await call('PATCH', `quota-profiles/${p.id}`, adminA, { max_bunkers: 5 }));
        await ok(await create(key), 201);
        assert.equal(await counter({ kind: 'user', userId: user, group: null }), 2);
        await endAll();
      });

      test('counters wiped (Redis FLUSHALL, a restart): the next creates rebuild them from the active rows once, with no drift', async () => {
        const user = uniq('wipe');
        const key = await userKey(user);
        await assign((await profile({ max_bunkers: 3 })).id, 'user', user);
        const first = await ok(await create(key, { cpu_millicores: 500 }), 201);
        await ok(await create(key, { cpu_millicores: 700 }), 201);
        await impl.wipe(counters);
        assert.equal(await counters.isReady(), false);
        // concurrent creates right after the wipe: one rebuild, nobody double-counted or let through
        const results = await Promise.all(Array.from({ length: 6 }, () => create(key, { cpu_millicores: 100 })));
        assert.deepEqual(results.map((r) => r.statusCode).sort(), [201, 429, 429, 429, 429, 429]);
        const rows = await activeRows();
        const bucket = { kind: 'user' as const, userId: user, group: null };
        assert.equal(await counter(bucket), rows.length);
        assert.equal(
          await counter(bucket, 'cpu_millicores'),
          rows.reduce((sum, r) => sum + r.cpu_millicores, 0),
        );
        assert.equal(await counter(bucket, 'cpu_millicores'), 1300);
        if (impl.name === 'redis') assert.equal(await redisCommand('EXISTS', 'quota:epoch'), 1);
        // a bunker charged before the wipe is released from its rebuilt decrement set
        await terminate(key, first.id);
        assert.equal(await counter(bucket), 2);
        assert.equal(await counter(bucket, 'cpu_millicores'), 800);
        await endAll();
        assert.equal(await counter(bucket), 0);
        assert.equal(await counter(bucket, 'cpu_millicores'), 0);
      });

      test('a bunker that fails at provisioning releases its charge (gpu_count on GPU-less workers, a spawn failure)', async () => {
        const user = uniq('fail');
        const key = await userKey(user, [], tenantA, ['scaibunker:create', 'scaibunker:read']);
        await assign((await profile({ max_bunkers: 5, max_gpu_count: 2 })).id, 'user', user);
        const bucket = { kind: 'user' as const, userId: user, group: null };
        const gpu = await create(key, { gpu_count: 1, metadata: { t: 'fail' } });
        assert.equal(gpu.statusCode, 503, gpu.body);
        assert.equal(gpu.json().error.code, 'NO_SUITABLE_WORKER');
        assert.ok((gpu.json().error.details.reasons as string[]).some((r) => r.includes('gpus')));
        const tooMany = await create(key, { gpu_count: 3 });
        assert.equal(tooMany.statusCode, 429, 'quotas are checked before placement');
        assert.equal(tooMany.json().error.details.resource, 'gpu_count');
        worker.failSpawns.on = true;
        try {
          const spawn = await create(key, { metadata: { t: 'fail' } });
          assert.equal(spawn.statusCode, 503);
          assert.equal(spawn.json().error.code, 'WORKER_UNAVAILABLE');
        } finally {
          worker.failSpawns.on = false;
        }
        const failed = (await ok(await call('GET', 'bunkers?label=t=fail&state=failed', key))).items;
        assert.equal(failed.length, 2);
        assert.ok(failed.every((b: Json) => String(b.termination_reason).startsWith('provision_failed')));
        assert.equal(failed.find((b: Json) => b.gpu_count === 1)?.termination_reason, 'provision_failed: NO_SUITABLE_WORKER');
        assert.equal(await counter(bucket), 0);
        assert.equal(await counter(bucket, 'gpu_count'), 0);
        assert.equal(await counter(bucket, 'memory_mb'), 0);
      });

      test('creates stuck in pending/provisioning after their controller died are failed by the sweeper, releasing their charge', async () => {
        const user = uniq('ghost');
        await assign((await profile({ max_bunkers: 5 })).id, 'user', user);
        const principal: Principal = {
          kind: 'api_key',
          tenantId: tenantA,
          actor: 'key:ghost',
          permissions: ['scaibunker:create'],
          userId: user,
          groups: [],
        };
        const plan = await controller.services.quotas.plan(principal, {
          lifecycle: 'ephemeral',
          image: 'minimal',
          networkProfile: 'isolated',
          amounts: { bunkers: 1, cpu_millicores: 1000, memory_mb: 512, disk_mb: 1024, gpu_count: 0 },
        });
        const longAgo = new Date(Date.now() - 2 * STUCK_MS).toISOString();
        // killed after charging and recording the charge on its row
        const charged = row(tenantA, longAgo, { state: 'pending' });
        await controller.store.bunkers.insert(charged, {});
        await controller.services.quotas.charge(charged.id, plan);
        // killed between the charge and recording it: only the counters' decrement set knows
        const unrecorded = row(tenantA, longAgo, { state: 'provisioning', worker_id: worker.id });
        await controller.store.bunkers.insert(unrecorded, {});
        assert.equal((await counters.tryCharge(unrecorded.id, plan)).status, 'ok');
        // a create in progress right now is left alone
        const recent = row(tenantA, new Date().toISOString(), { state: 'pending' });
        await controller.store.bunkers.insert(recent, {});
        await controller.services.quotas.charge(recent.id, plan);
        const bucket = { kind: 'user' as const, userId: user, group: null };
        assert.equal(await counter(bucket), 3);

        const ended = await controller.sweeper.sweep();
        assert.deepEqual(ended.map((e) => e.id).sort(), [charged.id, unrecorded.id].sort());
        for (const id of [charged.id, unrecorded.id]) {
          const r = await controller.store.bunkers.getById(id);
          assert.equal(r?.state, 'failed');
          assert.equal(r?.termination_reason, 'provision_failed: controller lost');
        }
        assert.equal((await controller.store.bunkers.getById(recent.id))?.state, 'pending');
        assert.equal(await counter(bucket), 1);
        await endAll();
        assert.equal(await counter(bucket), 0);
      });

      test('a release that fails (counters unreachable) is retried before the next quota operation', async () => {
        const user = uniq('retry');
        const key = await userKey(user);
        await assign((await profile({ max_bunkers: 1 })).id, 'user', user);
        const bucket = { kind: 'user' as const, userId: user, group: null };
        const a = await ok(await create(key), 201);
        const patched = counters as { release: QuotaCounters['release'] };
        patched.release = async () => {
          throw new Error('counters unreachable');
        };
        try {
          assert.equal((await terminate(key, a.id)).state, 'terminated', 'the bunker ends all the same');
        } finally {
          delete (patched as Partial<typeof patched>).release;
        }
        assert.equal(await counter(bucket), 1, 'not released yet');
        await ok(await create(key), 201);
        assert.equal(await counter(bucket), 1, 'the owed release ran before the charge');
        await endAll();
        assert.equal(await counter(bucket), 0);
      });

      test('release uses the decrement set: assignments changed (or the profile deleted) after create, the original buckets go down', async () => {
        const [user, group] = [uniq('u'), uniq('g')];
        const key = await userKey(user, [group]);
        const p = await profile({ max_bunkers: 10 });
        const byUser = await assign(p.id, 'user', user);
        const userBucket = { kind: 'user' as const, userId: user, group: null };
        const groupBucket = { kind: 'group' as const, userId: null, group };
        const x = await ok(await create(key, { memory_mb: 300 }), 201);
        await ok(await call('DELETE', `quota-profiles/${p.id}/assignments/${byUser.id}`, adminA));
        await assign(p.id, 'group', group);
        const y = await ok(await create(key, { memory_mb: 200 }), 201);
        assert.deepEqual([await counter(userBucket), await counter(groupBucket)], [1, 1]);
        await terminate(key, x.id);
        assert.deepEqual([await counter(userBucket), await counter(groupBucket)], [0, 1]);
        assert.deepEqual([await counter(userBucket, 'memory_mb'), await counter(groupBucket, 'memory_mb')], [0, 200]);
        await ok(await call('DELETE', `quota-profiles/${p.id}`, adminA));
        await terminate(key, y.id);
        assert.deepEqual([await counter(userBucket), await counter(groupBucket)], [0, 0]);
        assert.equal(await counter(groupBucket, 'memory_mb'), 0);
      });

      test('usage: a caller sees its own buckets; tenant admins every bucket of their tenant; platform admins name a tenant', async () => {
        const [u1, u2, g, pg] = [uniq('u'), uniq('u'), uniq('g'), uniq('pg')];
        const perms: Permission[] = ['scaibunker:create', 'scaibunker:read'];
        const k1 = await userKey(u1, [g, pg], tenantA, perms);
        const k2 = await userKey(u2, [pg], tenantA, perms);
        const p = await profile({ max_bunkers: 4, max_memory_mb: 4096 });
        await assign(p.id, 'user', u1);
        await assign(p.id, 'group', g);
        await assign(p.id, 'group_per_user', pg);
        await ok(await create(k1, { memory_mb: 512 }), 201);
        await ok(await create(k2, { memory_mb: 256 }), 201);
        const ids = (items: Json[]) => items.map((i) => `${i.bucket.kind}:${i.bucket.id}`).sort();
        assert.deepEqual(ids(await usage(k1)), [`group:${g}`, `group_per_user:${pg}:${u1}`, `user:${u1}`].sort());
        assert.deepEqual(ids(await usage(k2)), [`group_per_user:${pg}:${u2}`]);
        const own = (await usage(k1)).find((i) => i.bucket.kind === 'user');
        assert.deepEqual(own.profile_ids, [p.id]);
        assert.deepEqual(own.resources.bunkers, { current: 1, cap: 4, remaining: 3 });
        assert.deepEqual(own.resources.memory_mb, { current: 512, cap: 4096, remaining: 3584 });
        assert.deepEqual(own.resources.cpu_millicores, { current: 1000, cap: null, remaining: null });
        const wanted = [`group:${g}`, `group_per_user:${pg}:${u1}`, `group_per_user:${pg}:${u2}`, `user:${u1}`];
        const forAdmin = ids(await usage(adminA));
        for (const w of wanted) assert.ok(forAdmin.includes(w), `tenant admin sees ${w}`);
        const forB = ids(await usage(adminB));
        for (const w of wanted) assert.ok(!forB.includes(w), "another tenant's admin does not see it");
        const forPlatform = ids(await usage(platformKey, `?tenant_id=${tenantA}`));
        for (const w of wanted) assert.ok(forPlatform.includes(w), `platform admin sees ${w}`);
        const noRead = await userKey(uniq('u'), [], tenantA, ['scaibunker:create']);
        assert.equal((await call('GET', 'quota-profiles/usage', noRead)).statusCode, 403);
        await endAll();
      });

      if (dialect.name === 'postgres' && impl.name === 'redis') {
        test('two controllers on one database and one Redis: 50 concurrent creates against a cap of 10 never overshoot', async () => {
          const user = uniq('two');
          const key = await userKey(user);
          await assign((await profile({ max_bunkers: 10 })).id, 'user', user);
          const second = await Controller.open({
            databaseUrl: db.url,
            blobDir: join(dir, 'blobs2'),
            workerToken: WORKER_TOKEN,
            quotaCounters: await RedisQuotaCounters.connect(testRedisUrl()),
          });
          try {
            second.registerLocalWorker(worker.id, worker.api);
            const results = await Promise.all(
              Array.from({ length: 50 }, (_, i) =>
                (i % 2 ? second : controller).http.inject({
                  method: 'POST',
                  url: `${API}/bunkers`,
                  headers: { authorization: `Bearer ${key}` },
                  payload: { image: 'minimal', cpu_millicores: 100, memory_mb: 32, disk_mb: 16 },
                }),
              ),
            );
            assert.equal(results.filter((r) => r.statusCode === 201).length, 10);
            assert.equal(results.filter((r) => r.statusCode === 429).length, 40);
            assert.equal(await counter({ kind: 'user', userId: user, group: null }), 10);
          } finally {
            await second.close();
          }
          await endAll();
        });
      }
    });
  }
}

function row(tenantId: string, createdAt: string, patch: Partial<BunkerRow>): BunkerRow {
  return {
    id: newId('bk'),
    tenant_id: tenantId,
    created_by: 'key:ghost',
    image: 'minimal',
    image_sha256: FAKE_IMAGE_SHA,
    lifecycle: 'ephemeral',
    state: 'pending',
    termination_reason: null,
    worker_id: null,
    isolation: 'container',
    cpu_millicores: 1000,
    memory_mb: 512,
    disk_mb: 1024,
    gpu_count: 0,
    network_profile: 'isolated',
    network_allowlist: null,
    bandwidth_mbit: null,
    interfaces: null,
    idle_timeout_s: 300,
    max_lifetime_s: 3600,
    env: '{}',
    metadata: '{}',
    created_at: createdAt,
    started_at: null,
    last_activity_at: createdAt,
    ended_at: null,
    updated_at: createdAt,
    quota_charges: null,
    snapshot_id: null,
    recovered_from: null,
    auto_resume: 0,
    passivated: 0,
    ...patch,
  };
}
