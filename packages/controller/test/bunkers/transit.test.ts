/**
 * Transit bridges and the `transit` profile at the API edge: the two-phase bridge create (and its
 * rollback when the worker refuses or does not answer), tenant isolation of bridges, delete
 * refused while attached, the transit and l2_transparency permissions (refused before any worker
 * call), placement on the bridge's worker only, and what reaches the worker's spawn request.
 * Every store dialect, with fake workers (no kernel objects, no traffic).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { NETWORK_PROFILES, newId, type Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { addFakeWorker, FAKE_IMAGE_SHA } from '../helpers/fakeWorker.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const system = systemPrincipal('test');

type Json = any;

for (const dialect of DIALECTS) {
  describe(`transit bridges and bunkers (${dialect.name})`, () => {
    let db: TestDatabase;
    let dir: string;
    let controller: Controller;
    let w1: Awaited<ReturnType<typeof addFakeWorker>>;
    let w2: Awaited<ReturnType<typeof addFakeWorker>>;
    let tenantA: string;
    let tenantB: string;
    let adminA: string;
    let adminB: string;
    let n = 0;

    const key = async (tenant: string, permissions: Permission[]) =>
      (await controller.services.tenants.createApiKey(system, tenant, `k-${++n}`, permissions, { userId: `u-${n}` })).key;
    const call = (k: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
      controller.http.inject({ method, url: `${API}${url}`, headers: { authorization: `Bearer ${k}` }, ...(payload ? { payload } : {}) });
    const makeBridge = async (k: string, name: string, workerId?: string): Promise<Json> => {
      const res = await call(k, 'POST', '/bridges', { name, ...(workerId ? { worker_id: workerId } : {}) });
      assert.equal(res.statusCode, 201, res.body);
      return res.json();
    };
    const createTransit = (k: string, interfaces: object[]) =>
      call(k, 'POST', '/bunkers', { image: 'minimal', network_profile: 'transit', interfaces });
    const spawns = () => w1.spawns.length + w2.spawns.length;
    const endAll = async () => {
      for (const r of await controller.store.bunkers.listActive()) await controller.services.bunkers.end(r, 'terminated', 'user');
    };
    const heartbeat = async (w: typeof w1, profiles = [...NETWORK_PROFILES]) => {
      await controller.services.workers.heartbeat({
        worker_id: w.id,
        name: w === w1 ? 'w1' : 'w2',
        url: '',
        isolations: ['container'],
        network_profiles: profiles,
        capacity: { cpu_millicores: 100_000_000, memory_mb: 100_000_000, disk_mb: 100_000_000 },
        cached_images: [FAKE_IMAGE_SHA],
        bridges: [...w.bridges.keys()],
        bunkers: [],
      });
    };

    before(async () => {
      db = await dialect.create();
      dir = mkdtempSync(join(tmpdir(), 'sb-transit-'));
      controller = await Controller.open({
        databaseUrl: db.url,
        blobDir: join(dir, 'blobs'),
        workerToken: WORKER_TOKEN,
        config: { monitorIntervalMs: 3_600_000, sweepIntervalMs: 3_600_000, usageIntervalMs: 3_600_000 },
      });
      await controller.services.tenants.bootstrap();
      tenantA = (await controller.services.tenants.createTenant(system, 'ta')).id;
      tenantB = (await controller.services.tenants.createTenant(system, 'tb')).id;
      adminA = await key(tenantA, ['scaibunker:admin:tenant']);
      adminB = await key(tenantB, ['scaibunker:admin:tenant']);
      w1 = await addFakeWorker(controller, ['minimal'], [...NETWORK_PROFILES]);
      w2 = await addFakeWorker(controller, ['minimal'], [...NETWORK_PROFILES]);
    });
    beforeEach(async () => {
      await endAll();
      for (const w of [w1, w2]) {
        w.failBridges.mode = 'no';
        w.spawns.length = 0;
        w.bridgeCalls.length = 0;
      }
    });
    after(async () => {
      await controller?.close();
      await db?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('create is two-phase: ready on the worker given; list, get; duplicate names are BRIDGE_CONFLICT', async () => {
      const br = await makeBridge(adminA, 'lan-1', w2.id);
      assert.match(br.id, /^br_[0-9a-z]{20}$/);
      assert.equal(br.state, 'ready');
      assert.equal(br.worker_id, w2.id);
      assert.equal(br.tenant_id, tenantA);
      assert.equal(w2.bridges.get(br.id), tenantA, 'the worker was asked with the tenant');
      const dup = await call(adminA, 'POST', '/bridges', { name: 'lan-1' });
      assert.equal(dup.statusCode, 409, dup.body);
      assert.equal(dup.json().error.code, 'BRIDGE_CONFLICT');
      // The same name in another tenant is another bridge.
      await makeBridge(adminB, 'lan-1');
      const reader = await key(tenantA, ['scaibunker:read']);
      const list = await call(reader, 'GET', '/bridges');
      assert.equal(list.statusCode, 200);
      assert.ok(list.json().items.every((b: Json) => b.tenant_id === tenantA));
      assert.ok(list.json().items.some((b: Json) => b.id === br.id));
      assert.equal((await call(reader, 'GET', `/bridges/${br.id}`)).json().name, 'lan-1');
      const denied = await call(reader, 'POST', '/bridges', { name: 'x' });
      assert.equal(denied.statusCode, 403);
      assert.equal(denied.json().error.code, 'PERMISSION_DENIED');
    });

    for (const mode of ['reject', 'unreachable'] as const) {
      test(`a worker that ${mode === 'reject' ? 'refuses' : 'does not answer'}: the row is rolled back`, async () => {
        w1.failBridges.mode = mode;
        const res = await call(adminA, 'POST', '/bridges', { name: `fail-${mode}`, worker_id: w1.id });
        assert.equal(res.statusCode, mode === 'reject' ? 502 : 503, res.body);
        assert.equal(res.json().error.code, mode === 'reject' ? 'BRIDGE_REJECTED' : 'WORKER_UNAVAILABLE');
        assert.ok(w1.bridgeCalls.includes(w1.bridgeCalls.find((c) => c.startsWith('create')) ?? 'none'));
        const names = (await controller.store.bridges.list(tenantA)).map((b) => b.name);
        assert.ok(!names.includes(`fail-${mode}`), 'no row is left');
        // The name is free again once the worker works.
        w1.failBridges.mode = 'no';
        await makeBridge(adminA, `fail-${mode}`, w1.id);
      });
    }

    test('no worker that can make bridges: NO_SUITABLE_WORKER, nothing written', async () => {
      await heartbeat(w1, ['isolated']);
      await heartbeat(w2, ['isolated']);
      try {
        const res = await call(adminA, 'POST', '/bridges', { name: 'nowhere' });
        assert.equal(res.statusCode, 503, res.body);
        assert.equal(res.json().error.code, 'NO_SUITABLE_WORKER');
        assert.equal(w1.bridgeCalls.length + w2.bridgeCalls.length, 0);
        const unknown = await call(adminA, 'POST', '/bridges', { name: 'nowhere', worker_id: 'wk_00000000000000000000' });
        assert.equal(unknown.json().error.code, 'WORKER_NOT_FOUND');
      } finally {
        await heartbeat(w1);
        await heartbeat(w2);
      }
    });

    test("another tenant's bridge is BRIDGE_NOT_FOUND for get, delete and attach", async () => {
      const br = await makeBridge(adminA, 'private', w1.id);
      for (const [method, url] of [
        ['GET', `/bridges/${br.id}`],
        ['DELETE', `/bridges/${br.id}`],
      ] as const) {
        const res = await call(adminB, method, url);
        assert.equal(res.statusCode, 404, `${method} ${url}`);
        assert.equal(res.json().error.code, 'BRIDGE_NOT_FOUND');
      }
      assert.ok(!(await call(adminB, 'GET', '/bridges')).json().items.some((b: Json) => b.id === br.id));
      const attach = await createTransit(adminB, [{ bridge_id: br.id }]);
      assert.equal(attach.statusCode, 404, attach.body);
      assert.equal(attach.json().error.code, 'BRIDGE_NOT_FOUND');
      const missing = await createTransit(adminB, [{ bridge_id: 'br_00000000000000000000' }]);
      assert.equal(missing.json().error.code, 'BRIDGE_NOT_FOUND');
      assert.deepEqual(Object.keys(attach.json().error.details).sort(), Object.keys(missing.json().error.details).sort());
      assert.equal(spawns(), 0);
      assert.equal(w1.bridges.has(br.id), true, 'still there');
    });

    test('a transit create is placed on the bridge’s worker and carries its interfaces; delete refused while attached', async () => {
      const br = await makeBridge(adminA, 'pinned', w2.id);
      const res = await createTransit(adminA, [{ bridge_id: br.id, mac: '02:AA:bb:cc:dd:01' }, { bridge_id: br.id }]);
      assert.equal(res.statusCode, 201, res.body);
      const bunker = res.json();
      assert.equal(bunker.worker_id, w2.id);
      assert.equal(bunker.network_profile, 'transit');
      assert.equal(bunker.interfaces.length, 2);
      assert.deepEqual(bunker.interfaces[0], { name: 'eth0', bridge_id: br.id, mac: '02:aa:bb:cc:dd:01', spoof_guard: true });
      assert.match(bunker.interfaces[1].mac, /^02(:[0-9a-f]{2}){5}$/, 'a locally administered MAC is generated');
      assert.equal(w1.spawns.length, 0);
      const spawn = w2.spawns.at(-1);
      assert.deepEqual(spawn?.interfaces?.[0], { bridgeId: br.id, tenantId: tenantA, mac: '02:aa:bb:cc:dd:01', spoofGuard: true });
      assert.equal(spawn?.interfaces?.length, 2);

      const refused = await call(adminA, 'DELETE', `/bridges/${br.id}`);
      assert.equal(refused.statusCode, 409, refused.body);
      assert.equal(refused.json().error.code, 'BRIDGE_CONFLICT');
      assert.deepEqual(refused.json().error.details.bunker_ids, [bunker.id]);
      assert.ok(w2.bridges.has(br.id));

      assert.equal((await call(adminA, 'DELETE', `/bunkers/${bunker.id}`)).statusCode, 200);
      const removed = await call(adminA, 'DELETE', `/bridges/${br.id}`);
      assert.equal(removed.statusCode, 200, removed.body);
      assert.ok(!w2.bridges.has(br.id), 'the worker was told to remove it');
      assert.equal((await call(adminA, 'GET', `/bridges/${br.id}`)).statusCode, 404);
      // A create naming it now is BRIDGE_NOT_FOUND.
      assert.equal((await createTransit(adminA, [{ bridge_id: br.id }])).json().error.code, 'BRIDGE_NOT_FOUND');
    });

    test('bridges on two workers cannot be combined; a worker no longer reporting its bridge is not used', async () => {
      const a = await makeBridge(adminA, 'on-w1', w1.id);
      const b = await makeBridge(adminA, 'on-w2', w2.id);
      const res = await createTransit(adminA, [{ bridge_id: a.id }, { bridge_id: b.id }]);
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'NO_SUITABLE_WORKER');
      // The worker lost the bridge (say, a host reinstall): its heartbeat no longer lists it.
      w1.bridges.delete(a.id);
      await heartbeat(w1);
      const lost = await createTransit(adminA, [{ bridge_id: a.id }]);
      assert.equal(lost.statusCode, 503, lost.body);
      assert.ok(
        lost.json().error.details.reasons.some((r: string) => r.includes(`does not report bridge ${a.id}`)),
        lost.body,
      );
      assert.equal(spawns(), 0);
    });

    test('permissions: transit needs scaibunker:network:transit, spoof_guard false also l2_transparency (audited)', async () => {
      const br = await makeBridge(adminA, 'perm', w1.id);
      const plain = await key(tenantA, ['scaibunker:create', 'scaibunker:read']);
      const noTransit = await createTransit(plain, [{ bridge_id: br.id }]);
      assert.equal(noTransit.statusCode, 403, noTransit.body);
      assert.equal(noTransit.json().error.code, 'NETWORK_PROFILE_DENIED');
      assert.equal(noTransit.json().error.details.permission, 'scaibunker:network:transit');
      // Without the permission a missing bridge is not even looked up.
      assert.equal((await createTransit(plain, [{ bridge_id: 'br_00000000000000000000' }])).json().error.code, 'NETWORK_PROFILE_DENIED');

      const transit = await key(tenantA, ['scaibunker:create', 'scaibunker:read', 'scaibunker:network:transit']);
      const unguarded = await createTransit(transit, [{ bridge_id: br.id, spoof_guard: false }]);
      assert.equal(unguarded.statusCode, 403, unguarded.body);
      assert.equal(unguarded.json().error.code, 'NETWORK_PROFILE_DENIED');
      assert.equal(unguarded.json().error.details.permission, 'scaibunker:l2_transparency');
      assert.equal(spawns(), 0, 'no worker call');
      assert.equal((await controller.store.bunkers.listActive()).length, 0, 'no row');

      assert.equal((await createTransit(transit, [{ bridge_id: br.id }])).statusCode, 201);
      const l2 = await key(tenantA, ['scaibunker:create', 'scaibunker:network:transit', 'scaibunker:l2_transparency']);
      const open = await createTransit(l2, [{ bridge_id: br.id, spoof_guard: false }]);
      assert.equal(open.statusCode, 201, open.body);
      assert.equal(w1.spawns.at(-1)?.interfaces?.[0]?.spoofGuard, false);
      // Written before the create answers (its `bunker.create` event is queued, and may be there too).
      const events = await controller.store.audit.listForTarget(tenantA, open.json().id);
      assert.deepEqual(
        events.filter((e) => e.action !== 'bunker.create').map((e) => e.action),
        ['bunker.l2_transparency'],
      );
      // Tenant admins hold both.
      assert.equal((await createTransit(adminA, [{ bridge_id: br.id, spoof_guard: false }])).statusCode, 201);
    });

    test('a reservation its controller never finished is swept: row gone, the worker told', async () => {
      const id = newId('br');
      const old = new Date(Date.now() - 3_600_000).toISOString();
      await controller.store.bridges.insert({
        id,
        tenant_id: tenantA,
        name: 'orphan',
        worker_id: w1.id,
        state: 'reserved',
        created_at: old,
      });
      const fresh = newId('br');
      await controller.store.bridges.insert({
        id: fresh,
        tenant_id: tenantA,
        name: 'in-flight',
        worker_id: w1.id,
        state: 'reserved',
        created_at: new Date().toISOString(),
      });
      // A reserved bridge takes no bunkers.
      assert.equal((await createTransit(adminA, [{ bridge_id: id }])).json().error.code, 'BRIDGE_NOT_FOUND');
      const removed = await controller.services.bridges.sweepReserved(new Date(Date.now() - 600_000).toISOString());
      assert.deepEqual(removed, [id]);
      assert.ok(w1.bridgeCalls.includes(`delete ${id}`));
      assert.equal(await controller.store.bridges.get(tenantA, id), undefined);
      assert.equal((await controller.store.bridges.get(tenantA, fresh))?.state, 'reserved', 'a create in flight is left alone');
      await controller.store.bridges.delete(fresh);
    });

    test('interfaces are validated: required iff transit, 1-8, unicast MACs without duplicates', async () => {
      const br = await makeBridge(adminA, 'valid', w1.id);
      const cases: Array<[object, string]> = [
        [{ image: 'minimal', network_profile: 'transit' }, 'body/interfaces'],
        [{ image: 'minimal', network_profile: 'transit', interfaces: [] }, 'body/interfaces'],
        [{ image: 'minimal', network_profile: 'registry', interfaces: [{ bridge_id: br.id }] }, 'body/interfaces'],
        [{ image: 'minimal', interfaces: [{ bridge_id: br.id }] }, 'body/interfaces'],
        [
          { image: 'minimal', network_profile: 'transit', interfaces: Array.from({ length: 9 }, () => ({ bridge_id: br.id })) },
          'body/interfaces',
        ],
        [
          { image: 'minimal', network_profile: 'transit', interfaces: [{ bridge_id: br.id, mac: '01:00:5e:00:00:01' }] },
          'body/interfaces/0/mac',
        ],
        [
          { image: 'minimal', network_profile: 'transit', interfaces: [{ bridge_id: br.id, mac: 'ff:ff:ff:ff:ff:ff' }] },
          'body/interfaces/0/mac',
        ],
        [
          { image: 'minimal', network_profile: 'transit', interfaces: [{ bridge_id: br.id, mac: '00:00:00:00:00:00' }] },
          'body/interfaces/0/mac',
        ],
        [
          { image: 'minimal', network_profile: 'transit', interfaces: [{ bridge_id: br.id, mac: '02-00-00-00-00-01' }] },
          'body/interfaces/0/mac',
        ],
        [
          {
            image: 'minimal',
            network_profile: 'transit',
            interfaces: [
              { bridge_id: br.id, mac: '02:00:00:00:00:01' },
              { bridge_id: br.id, mac: '02:00:00:00:00:01' },
            ],
          },
          'body/interfaces/1/mac',
        ],
        [{ image: 'minimal', network_profile: 'transit', interfaces: [{ bridge_id: br.id, extra: 1 }] }, ''],
      ];
      for (const [body, field] of cases) {
        const res = await call(adminA, 'POST', '/bunkers', body);
        assert.equal(res.statusCode, 400, `${JSON.stringify(body)} → ${res.body}`);
        assert.equal(res.json().error.code, 'VALIDATION_FAILED');
        if (field) assert.ok(String(res.json().error.details.field).startsWith(field), `${JSON.stringify(body)} → ${res.body}`);
      }
      assert.equal(spawns(), 0);
    });
  });
}
