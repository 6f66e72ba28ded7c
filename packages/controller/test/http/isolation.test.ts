/**
 * `isolation` at create: the default is `container`; `microvm` and `proot` go only to a worker
 * that advertises them, and the worker's spawn request carries it; `proot` (no network, no
 * snapshots) is refused what it cannot give. Runs on every store dialect.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newId, type Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { fakeWorker } from '../helpers/fakeWorker.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const SHA = 'f'.repeat(64);
const system = systemPrincipal('test');

for (const dialect of DIALECTS) {
  describe(`create with an isolation (${dialect.name})`, () => {
    let db: TestDatabase;
    let dir: string;
    let controller: Controller;
    let auth: { authorization: string };
    const containerOnly = { id: newId('wk'), ...fakeWorker() };
    const both = { id: newId('wk'), ...fakeWorker() };
    const withProot = { id: newId('wk'), ...fakeWorker() };

    const heartbeat = (workerId: string, name: string, isolations: string[], networkProfiles?: string[]) =>
      controller.http.inject({
        method: 'POST',
        url: `${API}/heartbeat`,
        headers: { authorization: `Bearer ${WORKER_TOKEN}` },
        payload: {
          worker_id: workerId,
          name,
          url: '',
          isolations,
          ...(networkProfiles ? { network_profiles: networkProfiles } : {}),
          capacity: { cpu_millicores: 4000, memory_mb: 8192, disk_mb: 65536 },
          cached_images: [SHA],
          bunkers: [],
        },
      });
    const create = (body: Record<string, unknown>) =>
      controller.http.inject({ method: 'POST', url: `${API}/bunkers`, headers: auth, payload: body });

    before(async () => {
      db = await dialect.create();
      dir = mkdtempSync(join(tmpdir(), 'sb-iso-'));
      controller = await Controller.open({ databaseUrl: db.url, blobDir: join(dir, 'blobs'), workerToken: WORKER_TOKEN });
      const tenant = await controller.services.tenants.createTenant(system, 'iso');
      const permissions: Permission[] = ['scaibunker:admin:tenant'];
      const { key } = await controller.services.tenants.createApiKey(system, tenant.id, 'iso-key', permissions);
      auth = { authorization: `Bearer ${key}` };
      await controller.store.images.upsertPlatform({
        id: newId('im'),
        tenant_id: null,
        name: 'minimal',
        scope: 'platform',
        state: 'ready',
        sha256: SHA,
        size_bytes: 300 * 1048576,
        created_at: new Date().toISOString(),
      });
      controller.registerLocalWorker(containerOnly.id, containerOnly.api);
      controller.registerLocalWorker(both.id, both.api);
      controller.registerLocalWorker(withProot.id, withProot.api);
      assert.equal((await heartbeat(containerOnly.id, 'container-only', ['container'])).statusCode, 200);
    });
    after(async () => {
      await controller?.close();
      await db?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('an unknown isolation is VALIDATION_FAILED naming the field', async () => {
      for (const isolation of ['vm', 'gvisor', '', 1, null]) {
        const res = await create({ image: 'minimal', isolation });
        assert.equal(res.statusCode, 400, JSON.stringify(isolation));
        assert.equal(res.json().error.code, 'VALIDATION_FAILED');
        assert.match(String(res.json().error.details.field), /isolation/);
      }
      assert.equal(containerOnly.spawns.length, 0);
    });

    test('a microvm too small to boot, or with a disk smaller than its image, is VALIDATION_FAILED before placement', async () => {
      const small = await create({ image: 'minimal', isolation: 'microvm', memory_mb: 64 });
      assert.equal(small.statusCode, 400);
      assert.equal(small.json().error.code, 'VALIDATION_FAILED');
      assert.equal(small.json().error.details.field, 'body/memory_mb');
      const tiny = await create({ image: 'minimal', isolation: 'microvm', disk_mb: 100 });
      assert.equal(tiny.statusCode, 400);
      assert.equal(tiny.json().error.details.field, 'body/disk_mb');
      assert.match(tiny.json().error.message, /300 MB/);
      // transit stays container-only: refused as a body field, before its bridges are even looked up
      const transit = await create({
        image: 'minimal',
        isolation: 'microvm',
        memory_mb: 256,
        disk_mb: 512,
        network_profile: 'transit',
        interfaces: [{ bridge_id: newId('br') }],
      });
      assert.equal(transit.statusCode, 400, transit.body);
      assert.equal(transit.json().error.code, 'VALIDATION_FAILED');
      assert.equal(transit.json().error.details.field, 'body/network_profile');
      assert.match(transit.json().error.message, /transit .*container bunkers only/);
      // the same sizes are fine for a container (its disk is a tmpfs upper layer over the image)
      const container = await create({ image: 'minimal', memory_mb: 64, disk_mb: 100 });
      assert.equal(container.statusCode, 201, container.body);
      assert.equal(containerOnly.spawns.length, 1);
      containerOnly.spawns.length = 0;
      const failed = (await controller.http.inject({ method: 'GET', url: `${API}/bunkers?state=failed`, headers: auth })).json().items;
      assert.equal(failed.length, 0, 'refused creates leave no row');
    });

    test('microvm with only a container worker online: NO_SUITABLE_WORKER naming the isolation, and the row fails', async () => {
      const res = await create({ image: 'minimal', isolation: 'microvm' });
      assert.equal(res.statusCode, 503);
      const { error } = res.json();
      assert.equal(error.code, 'NO_SUITABLE_WORKER');
      assert.ok(
        (error.details.reasons as string[]).some((r) => r.includes('container-only') && r.includes('microvm')),
        JSON.stringify(error.details),
      );
      assert.equal(containerOnly.spawns.length, 0, 'nothing was spawned');
      const failed = (await controller.http.inject({ method: 'GET', url: `${API}/bunkers?state=failed`, headers: auth })).json().items;
      assert.equal(failed.length, 1);
      assert.equal(failed[0].isolation, 'microvm');
      assert.equal(failed[0].worker_id, null);
      assert.equal(failed[0].termination_reason, 'provision_failed: NO_SUITABLE_WORKER');
    });

    test('no isolation given: a container, spawned as one', async () => {
      const res = await create({ image: 'minimal' });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().isolation, 'container');
      assert.equal(res.json().worker_id, containerOnly.id);
      assert.equal(containerOnly.spawns.length, 1);
      assert.equal(containerOnly.spawns[0]?.isolation, 'container');
      assert.equal(containerOnly.spawns[0]?.bunkerId, res.json().id);
    });

    test('a worker advertising both gets the microvm bunker, and its spawn request says microvm', async () => {
      assert.equal((await heartbeat(both.id, 'both', ['container', 'microvm'])).statusCode, 200);
      const res = await create({ image: 'minimal', isolation: 'microvm' });
      assert.equal(res.statusCode, 201, res.body);
      const bunker = res.json();
      assert.equal(bunker.state, 'running');
      assert.equal(bunker.isolation, 'microvm');
      assert.equal(bunker.worker_id, both.id);
      assert.equal(both.spawns.length, 1);
      assert.equal(both.spawns[0]?.bunkerId, bunker.id);
      assert.equal(both.spawns[0]?.isolation, 'microvm');
      assert.equal(containerOnly.spawns.length, 1, 'the container-only worker got nothing more');
      const got = await controller.http.inject({ method: 'GET', url: `${API}/bunkers/${bunker.id}`, headers: auth });
      assert.equal(got.json().isolation, 'microvm');
    });

    test('proot: placed only on a worker offering it; a network profile but isolated, persistence and snapshots are refused', async () => {
      const nowhere = await create({ image: 'minimal', isolation: 'proot' });
      assert.equal(nowhere.statusCode, 503, nowhere.body);
      assert.equal(nowhere.json().error.code, 'NO_SUITABLE_WORKER');
      assert.equal((await heartbeat(withProot.id, 'with-proot', ['container', 'proot'], ['isolated', 'unrestricted'])).statusCode, 200);
      const networked = await create({ image: 'minimal', isolation: 'proot', network_profile: 'unrestricted' });
      assert.equal(networked.statusCode, 400, networked.body);
      assert.equal(networked.json().error.code, 'VALIDATION_FAILED');
      assert.equal(networked.json().error.details.field, 'body/network_profile');
      const persistent = await create({ image: 'minimal', isolation: 'proot', lifecycle: 'persistent' });
      assert.equal(persistent.statusCode, 400, persistent.body);
      assert.equal(persistent.json().error.details.field, 'body/lifecycle');
      assert.equal(withProot.spawns.length, 0, 'refused creates spawn nothing');

      const res = await create({ image: 'minimal', isolation: 'proot' });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().isolation, 'proot');
      assert.equal(res.json().network_profile, 'isolated');
      assert.equal(res.json().worker_id, withProot.id);
      assert.equal(withProot.spawns.at(-1)?.isolation, 'proot');
      const snap = await controller.http.inject({
        method: 'POST',
        url: `${API}/bunkers/${res.json().id}/snapshots`,
        headers: auth,
        payload: {},
      });
      assert.equal(snap.statusCode, 400, snap.body);
      assert.equal(snap.json().error.code, 'VALIDATION_FAILED');
      assert.match(snap.json().error.message, /cannot be snapshotted/);
      assert.equal(withProot.snapshotCalls.length, 0, 'the worker was never asked');
    });

    test('a networked microvm (unrestricted) is accepted and placed on a worker offering both the isolation and the profile', async () => {
      assert.equal((await heartbeat(both.id, 'both', ['container', 'microvm'], ['isolated', 'unrestricted'])).statusCode, 200);
      const res = await create({ image: 'minimal', isolation: 'microvm', memory_mb: 256, disk_mb: 512, network_profile: 'unrestricted' });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().network_profile, 'unrestricted');
      assert.equal(res.json().worker_id, both.id);
      const spawn = both.spawns.at(-1);
      assert.equal(spawn?.isolation, 'microvm');
      assert.equal(spawn?.networkProfile, 'unrestricted');
    });
  });
}
