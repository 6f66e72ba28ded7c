/**
 * Tenant-scoped availability groups through the HTTP API, on every store dialect: tenant admins
 * create, list, fill and delete their own tenant's groups; another tenant's group and a platform
 * group are AVAILABILITY_GROUP_NOT_FOUND to them; only images the tenant can use go in; the
 * images warm on the workers the tenant's bunkers were placed on (and nowhere else); placement
 * is unchanged by a tenant group; the per-tenant caps answer AVAILABILITY_GROUP_LIMIT.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newId, type Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { TENANT_GROUP_IMAGE_LIMIT, TENANT_GROUP_LIMIT } from '../../src/availability/AvailabilityGroupService.js';
import { Controller } from '../../src/Controller.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { addFakeWorker, FAKE_IMAGE_SHA } from '../helpers/fakeWorker.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const system = systemPrincipal('test');
const A_SHA = 'a'.repeat(64);
const B_SHA = 'b'.repeat(64);

type Json = any;

for (const dialect of DIALECTS) {
  describe(`tenant availability groups (${dialect.name})`, () => {
    let db: TestDatabase;
    let dir: string;
    let controller: Controller;
    let platformKey: string;
    let tenantA: string;
    let tenantB: string;
    let adminA: string;
    let adminB: string;
    let userA: string;
    let imageA: string;
    let imageB: string;
    let workerId: string;
    let heartbeats = 0;
    /** sha256s the worker was asked to warm, and who waits for one. */
    const ensured: string[] = [];
    const waiting = new Map<string, () => void>();

    const call = async (method: 'GET' | 'POST' | 'DELETE', url: string, key: string, payload?: unknown) =>
      controller.http.inject({
        method,
        url: `${API}/${url}`,
        headers: { authorization: `Bearer ${key}` },
        ...(payload === undefined ? {} : { payload: payload as object }),
      });
    const ok = async (res: Awaited<ReturnType<typeof call>>, status = 200): Promise<Json> => {
      assert.equal(res.statusCode, status, res.body);
      return status === 204 ? undefined : res.json();
    };
    const code = (res: Awaited<ReturnType<typeof call>>) => res.json().error.code;
    const keyOf = async (tenantId: string, name: string, permissions: Permission[]) =>
      (await controller.services.tenants.createApiKey(system, tenantId, name, permissions)).key;
    const tenantImage = async (tenantId: string, name: string, sha256: string) => {
      const id = newId('im');
      await controller.store.images.insert({
        id,
        tenant_id: tenantId,
        name,
        scope: 'tenant',
        state: 'ready',
        sha256,
        size_bytes: 1048576,
        created_at: new Date().toISOString(),
      });
      return id;
    };
    /** A heartbeat whose report differs from the last (so the row is written and warm-up runs). */
    const heartbeat = () =>
      controller.services.workers.heartbeat({
        worker_id: workerId,
        name: 'fake',
        url: `http://127.0.0.1:9/hb-${++heartbeats}`,
        isolations: ['container'],
        network_profiles: ['isolated'],
        capacity: { cpu_millicores: 100_000_000, memory_mb: 100_000_000, disk_mb: 100_000_000 },
        cached_images: [FAKE_IMAGE_SHA],
        bridges: [],
        bunkers: [],
      });

    before(async () => {
      db = await dialect.create();
      dir = mkdtempSync(join(tmpdir(), 'sb-taggroups-'));
      controller = await Controller.open({ databaseUrl: db.url, blobDir: join(dir, 'blobs'), workerToken: WORKER_TOKEN });
      platformKey = (await controller.services.tenants.bootstrap()) as string;
      tenantA = (await controller.services.tenants.createTenant(system, 'a')).id;
      tenantB = (await controller.services.tenants.createTenant(system, 'b')).id;
      adminA = await keyOf(tenantA, 'admin-a', ['scaibunker:admin:tenant']);
      adminB = await keyOf(tenantB, 'admin-b', ['scaibunker:admin:tenant']);
      userA = await keyOf(tenantA, 'user-a', ['scaibunker:create', 'scaibunker:read']);
      const fake = await addFakeWorker(controller);
      workerId = fake.id;
      controller.registerLocalWorker(workerId, {
        ...fake.api,
        ensureImage: async (sha) => {
          ensured.push(sha);
          waiting.get(sha)?.();
          return { source: 'proxy', bytes: 1 };
        },
      });
      imageA = await tenantImage(tenantA, 'a-img', A_SHA);
      imageB = await tenantImage(tenantB, 'b-img', B_SHA);
    });
    after(async () => {
      await controller?.close();
      await db?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test("a tenant admin's groups are its tenant's; other tenants and platform groups are not found", async () => {
      const mine = await ok(await call('POST', 'availability-groups', adminA, { name: 'warm' }), 201);
      assert.equal(mine.tenant_id, tenantA);
      assert.deepEqual(mine.workers, []);
      // Names are unique per tenant: B and the platform may use the same one.
      const theirs = await ok(await call('POST', 'availability-groups', adminB, { name: 'warm' }), 201);
      const platform = await ok(await call('POST', 'availability-groups', platformKey, { name: 'warm' }), 201);
      assert.equal(platform.tenant_id, null);
      assert.equal(code(await call('POST', 'availability-groups', adminA, { name: 'warm' })), 'AVAILABILITY_GROUP_CONFLICT');
      // A tenant admin cannot make another tenant's group, nor a platform group.
      const other = await call('POST', 'availability-groups', adminA, { name: 'x', tenant_id: tenantB });
      assert.equal(other.statusCode, 404);
      assert.equal(code(other), 'TENANT_NOT_FOUND');

      assert.deepEqual(
        (await ok(await call('GET', 'availability-groups', adminA))).items.map((g: Json) => g.id),
        [mine.id],
      );
      for (const id of [theirs.id, platform.id]) {
        for (const [method, url] of [
          ['GET', `availability-groups/${id}`],
          ['DELETE', `availability-groups/${id}`],
          ['POST', `availability-groups/${id}/images`],
        ] as const) {
          const res = await call(method, url, adminA, method === 'POST' ? { image_id: imageA } : undefined);
          assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
          assert.equal(code(res), 'AVAILABILITY_GROUP_NOT_FOUND');
        }
      }
      assert.equal(code(await call('GET', 'availability-groups?tenant_id=' + tenantB, adminA)), 'TENANT_NOT_FOUND');

      // Platform admins see every group, or one tenant's; they may make a tenant's group.
      const all = (await ok(await call('GET', 'availability-groups', platformKey))).items.map((g: Json) => g.id);
      for (const id of [mine.id, theirs.id, platform.id]) assert.ok(all.includes(id));
      assert.deepEqual(
        (await ok(await call('GET', `availability-groups?tenant_id=${tenantB}`, platformKey))).items.map((g: Json) => g.id),
        [theirs.id],
      );
      const made = await ok(await call('POST', 'availability-groups', platformKey, { name: 'for-a', tenant_id: tenantA }), 201);
      assert.equal(made.tenant_id, tenantA);
      await ok(await call('DELETE', `availability-groups/${made.id}`, adminA), 204);

      // Members are platform business: tenant admins are 403; a tenant group takes none.
      const add = await call('POST', `availability-groups/${mine.id}/workers`, adminA, { worker_id: workerId });
      assert.equal(add.statusCode, 403);
      const byPlatform = await call('POST', `availability-groups/${mine.id}/workers`, platformKey, { worker_id: workerId });
      assert.equal(byPlatform.statusCode, 400, byPlatform.body);
      assert.equal(code(byPlatform), 'VALIDATION_FAILED');
      // Users without the tenant-admin permission: 403.
      assert.equal((await call('POST', 'availability-groups', userA, { name: 'nope' })).statusCode, 403);
      assert.equal((await call('GET', 'availability-groups', userA)).statusCode, 403);

      await ok(await call('DELETE', `availability-groups/${theirs.id}`, adminB), 204);
      await ok(await call('DELETE', `availability-groups/${platform.id}`, platformKey), 204);
      // A tenant group's changes are in its tenant's audit trail, and only there.
      const trail = async (key: string) =>
        (await ok(await call('GET', 'audit-events?action=availability_group.create', key))).items.map((e: Json) => e.target_id);
      assert.ok((await trail(adminA)).includes(mine.id));
      assert.ok(!(await trail(adminA)).includes(theirs.id));
      assert.ok(!(await trail(adminB)).includes(mine.id));
    });

    test("only images the tenant can use; they warm on the workers the tenant's bunkers use, and nowhere for another tenant", async () => {
      const group = (await ok(await call('GET', 'availability-groups', adminA))).items.find((g: Json) => g.name === 'warm');
      assert.ok(group);
      const refused = await call('POST', `availability-groups/${group.id}/images`, adminA, { image_id: imageB });
      assert.equal(refused.statusCode, 404);
      assert.equal(code(refused), 'IMAGE_NOT_FOUND');
      // B's group holds B's image: its tenant has no bunkers, so it warms nowhere.
      const groupB = await ok(await call('POST', 'availability-groups', adminB, { name: 'b-warm' }), 201);
      await ok(await call('POST', `availability-groups/${groupB.id}/images`, adminB, { image_id: imageB }));

      // A's tenant has no bunker yet: the group has no workers, nothing is fetched.
      const added = await ok(await call('POST', `availability-groups/${group.id}/images`, adminA, { image_id: imageA }));
      assert.deepEqual(added.workers, []);
      assert.deepEqual(
        added.images.map((i: Json) => [i.id, i.name]),
        [[imageA, 'a-img']],
      );
      assert.equal(ensured.length, 0);

      // A bunker of A's lands on the worker: the next heartbeat asks it for A's image.
      const warmed = new Promise<void>((resolve) => waiting.set(A_SHA, resolve));
      const created = await call('POST', 'bunkers', userA, { image: 'minimal' });
      assert.equal(created.statusCode, 201, created.body);
      await heartbeat();
      await warmed;
      assert.ok(ensured.includes(A_SHA));
      assert.ok(controller.metrics.imageWarmFetches.get({ source: 'proxy' }) >= 1, 'the warm-up is counted on /metrics');
      assert.ok(!ensured.includes(B_SHA), "B's image is not warmed where only A's bunkers ran");
      assert.equal(await controller.store.imageCache.get(workerId, B_SHA), undefined);
      const shown = await ok(await call('GET', `availability-groups/${group.id}`, adminA));
      assert.deepEqual(shown.workers, [workerId]);
      assert.equal(shown.images[0].workers[0].worker_id, workerId);
      assert.ok(['warming', 'ready'].includes(shown.images[0].workers[0].state), shown.images[0].workers[0].state);
      // B sees nothing of A's workers.
      assert.deepEqual((await ok(await call('GET', `availability-groups/${groupB.id}`, adminB))).workers, []);
    });

    test('a tenant group does not change placement: its image (lazy_pull false) still goes to a worker without it', async () => {
      const res = await call('POST', 'bunkers', userA, { image: 'a-img' });
      assert.equal(res.statusCode, 201, res.body);
    });

    test('caps: at most 10 groups per tenant and 20 images per tenant group', async () => {
      const have = (await ok(await call('GET', 'availability-groups', adminA))).items.length;
      const made: string[] = [];
      for (let i = have; i < TENANT_GROUP_LIMIT; i++) {
        made.push((await ok(await call('POST', 'availability-groups', adminA, { name: `g${i}` }), 201)).id);
      }
      const over = await call('POST', 'availability-groups', adminA, { name: 'one-too-many' });
      assert.equal(over.statusCode, 409, over.body);
      assert.equal(code(over), 'AVAILABILITY_GROUP_LIMIT');
      // Another tenant's count is its own.
      await ok(await call('POST', 'availability-groups', adminB, { name: 'still-fine' }), 201);

      const gid = made[0] as string;
      for (let i = 0; i < TENANT_GROUP_IMAGE_LIMIT; i++) {
        const image = await tenantImage(tenantA, `many-${i}`, `${i}`.padStart(64, 'c'));
        await ok(await call('POST', `availability-groups/${gid}/images`, adminA, { image_id: image }));
      }
      const extra = await call('POST', `availability-groups/${gid}/images`, adminA, { image_id: imageA });
      assert.equal(extra.statusCode, 409, extra.body);
      assert.equal(code(extra), 'AVAILABILITY_GROUP_LIMIT');
      // Deleting one makes room again.
      await ok(await call('DELETE', `availability-groups/${gid}`, adminA), 204);
      assert.equal(code(await call('GET', `availability-groups/${gid}`, adminA)), 'AVAILABILITY_GROUP_NOT_FOUND');
      await ok(await call('POST', 'availability-groups', adminA, { name: 'room-again' }), 201);
    });
  });
}
