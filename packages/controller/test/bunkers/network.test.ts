/**
 * Network profiles at the API edge: validation of `network_profile`, `network_allowlist` and
 * `bandwidth_mbit`, the per-profile permission (refused before quotas and before any worker is
 * asked), placement only on workers offering the profile, and what reaches the worker's spawn
 * request. Every store dialect, with a fake worker (no real bunkers, no traffic).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { NETWORK_PROFILES, type NetworkProfile, type Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { addFakeWorker, FAKE_IMAGE_SHA } from '../helpers/fakeWorker.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const system = systemPrincipal('test');

type Json = any;

const PERMISSION_OF: Record<Exclude<NetworkProfile, 'isolated' | 'transit'>, Permission> = {
  registry: 'scaibunker:network:registry',
  allowlisted: 'scaibunker:network:allowlisted',
  unrestricted: 'scaibunker:network:unrestricted',
};

for (const dialect of DIALECTS) {
  describe(`network profiles at create (${dialect.name})`, () => {
    let db: TestDatabase;
    let dir: string;
    let controller: Controller;
    let worker: Awaited<ReturnType<typeof addFakeWorker>>;
    let tenantId: string;
    let adminKey: string;
    let n = 0;

    const key = async (permissions: Permission[], userId = `u-${++n}`) =>
      (await controller.services.tenants.createApiKey(system, tenantId, `k-${++n}`, permissions, { userId })).key;
    const create = (k: string, body: Record<string, unknown>) =>
      controller.http.inject({
        method: 'POST',
        url: `${API}/bunkers`,
        headers: { authorization: `Bearer ${k}` },
        payload: { image: 'minimal', ...body },
      });
    const rowCount = async () => (await controller.store.bunkers.listActive()).filter((r) => r.tenant_id === tenantId).length;
    /** The fake worker's heartbeat, through the HTTP API, now offering `profiles`. */
    const offer = async (profiles: NetworkProfile[] | undefined) => {
      const res = await controller.http.inject({
        method: 'POST',
        url: `${API}/heartbeat`,
        headers: { authorization: `Bearer ${WORKER_TOKEN}` },
        payload: {
          worker_id: worker.id,
          name: 'fake',
          url: '',
          isolations: ['container'],
          ...(profiles ? { network_profiles: profiles } : {}),
          capacity: { cpu_millicores: 100_000_000, memory_mb: 100_000_000, disk_mb: 100_000_000 },
          cached_images: [FAKE_IMAGE_SHA],
          bunkers: [],
        },
      });
      assert.equal(res.statusCode, 200, res.body);
    };
    const endAll = async () => {
      for (const r of await controller.store.bunkers.listActive()) await controller.services.bunkers.end(r, 'terminated', 'user');
    };

    before(async () => {
      db = await dialect.create();
      dir = mkdtempSync(join(tmpdir(), 'sb-net-'));
      controller = await Controller.open({
        databaseUrl: db.url,
        blobDir: join(dir, 'blobs'),
        workerToken: WORKER_TOKEN,
        config: { monitorIntervalMs: 3_600_000, sweepIntervalMs: 3_600_000, usageIntervalMs: 3_600_000 },
      });
      await controller.services.tenants.bootstrap();
      tenantId = (await controller.services.tenants.createTenant(system, 'net')).id;
      adminKey = await key(['scaibunker:admin:tenant'], 'admin');
      worker = await addFakeWorker(controller, ['minimal'], [...NETWORK_PROFILES]);
    });
    beforeEach(async () => {
      await endAll();
      await offer([...NETWORK_PROFILES]);
      worker.spawns.length = 0;
    });
    after(async () => {
      await controller?.close();
      await db?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('transit without interfaces is VALIDATION_FAILED (transit.test.ts covers the rest); unknown profiles too', async () => {
      const res = await create(adminKey, { network_profile: 'transit' });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().error.code, 'VALIDATION_FAILED');
      assert.match(res.json().error.message, /transit/);
      assert.equal(res.json().error.details.field, 'body/interfaces');
      const unknown = await create(adminKey, { network_profile: 'open' });
      assert.equal(unknown.statusCode, 400);
      assert.equal(unknown.json().error.code, 'VALIDATION_FAILED');
      assert.equal(worker.spawns.length, 0);
      assert.equal(await rowCount(), 0);
    });

    test('network_allowlist is required and non-empty with allowlisted, refused with any other profile', async () => {
      for (const body of [{ network_profile: 'allowlisted' }, { network_profile: 'allowlisted', network_allowlist: [] }]) {
        const res = await create(adminKey, body);
        assert.equal(res.statusCode, 400, JSON.stringify(body));
        assert.equal(res.json().error.code, 'VALIDATION_FAILED');
        assert.match(res.json().error.message, /non-empty network_allowlist/);
        assert.equal(res.json().error.details.field, 'body/network_allowlist');
      }
      for (const profile of [undefined, 'isolated', 'registry', 'unrestricted']) {
        const res = await create(adminKey, { ...(profile ? { network_profile: profile } : {}), network_allowlist: ['pypi.org'] });
        assert.equal(res.statusCode, 400, String(profile));
        assert.equal(res.json().error.code, 'VALIDATION_FAILED');
        assert.match(res.json().error.message, /only accepted with the allowlisted profile/);
      }
      const tooMany = await create(adminKey, {
        network_profile: 'allowlisted',
        network_allowlist: Array.from({ length: 257 }, (_, i) => `h${i}.example.com`),
      });
      assert.equal(tooMany.statusCode, 400);
      assert.equal(tooMany.json().error.code, 'VALIDATION_FAILED');
      assert.equal(tooMany.json().error.details.field, 'body/network_allowlist');
      assert.equal(worker.spawns.length, 0);
      assert.equal(await rowCount(), 0);
    });

    test('every bad allowlist entry is refused with VALIDATION_FAILED naming it', async () => {
      const bad = [
        'https://pypi.org',
        'pypi.org/simple',
        'pypi.org:443',
        '**.example.com',
        '*',
        'a.*.com',
        'foo*.com',
        '*.com',
        `${'a'.repeat(64)}.example.com`,
        `${'abcdefghi.'.repeat(25)}example.com`,
        'a..example.com',
        'exa_mple.com',
        'ex ample.com',
        '10.0.0.1',
        '::1',
        '[2001:db8::1]',
        'localhost',
        '',
      ];
      for (const entry of bad) {
        const res = await create(adminKey, { network_profile: 'allowlisted', network_allowlist: ['pypi.org', entry] });
        assert.equal(res.statusCode, 400, `${JSON.stringify(entry)}: ${res.body}`);
        const error = res.json().error;
        assert.equal(error.code, 'VALIDATION_FAILED');
        assert.equal(error.details.field, 'body/network_allowlist/1', entry);
        if (entry !== '') {
          // The empty string is refused by the schema (minLength), which names its index.
          assert.ok(error.message.includes(JSON.stringify(entry)), `message names ${entry}: ${error.message}`);
          assert.equal(error.details.entry, entry);
          assert.equal(typeof error.details.reason, 'string');
        }
      }
      const several = await create(adminKey, { network_profile: 'allowlisted', network_allowlist: ['ok.example.com', 'a.*.com', 'x:1'] });
      assert.equal(several.statusCode, 400);
      assert.deepEqual(
        several.json().error.details.invalid_entries.map((e: Json) => [e.index, e.entry]),
        [
          [1, 'a.*.com'],
          [2, 'x:1'],
        ],
      );
      assert.match(several.json().error.message, /and 1 more/);
      assert.equal(worker.spawns.length, 0);
      assert.equal(await rowCount(), 0);
    });

    test('bandwidth_mbit must be an integer in 1..10000', async () => {
      for (const bandwidth of [0, 10001, 1.5, '100', -1]) {
        const res = await create(adminKey, { bandwidth_mbit: bandwidth });
        assert.equal(res.statusCode, 400, String(bandwidth));
        assert.equal(res.json().error.code, 'VALIDATION_FAILED');
        assert.equal(res.json().error.details.field, 'body/bandwidth_mbit');
      }
      assert.equal(worker.spawns.length, 0);
    });

    for (const [profile, permission] of Object.entries(PERMISSION_OF) as Array<[keyof typeof PERMISSION_OF, Permission]>) {
      test(`${profile} without ${permission} is NETWORK_PROFILE_DENIED, before quotas and with no worker call`, async () => {
        const user = `denied-${profile}`;
        // A quota profile that would refuse this create too (429): the permission answers first.
        const qp = await controller.http.inject({
          method: 'POST',
          url: `${API}/quota-profiles`,
          headers: { authorization: `Bearer ${adminKey}` },
          payload: { name: `only-isolated-${profile}`, max_bunkers: 0, allowed_network_profiles: ['isolated'] },
        });
        assert.equal(qp.statusCode, 201, qp.body);
        const assigned = await controller.http.inject({
          method: 'POST',
          url: `${API}/quota-profiles/${qp.json().id}/assignments`,
          headers: { authorization: `Bearer ${adminKey}` },
          payload: { kind: 'user', subject: user },
        });
        assert.equal(assigned.statusCode, 201, assigned.body);
        const others = (Object.values(PERMISSION_OF) as Permission[]).filter((p) => p !== permission);
        const k = await key(['scaibunker:create', 'scaibunker:read', ...others], user);
        const body = { network_profile: profile, ...(profile === 'allowlisted' ? { network_allowlist: ['pypi.org'] } : {}) };
        const res = await create(k, body);
        assert.equal(res.statusCode, 403, res.body);
        assert.equal(res.json().error.code, 'NETWORK_PROFILE_DENIED');
        assert.equal(res.json().error.details.network_profile, profile);
        assert.equal(res.json().error.details.permission, permission);
        assert.match(res.json().error.message, new RegExp(permission));
        assert.equal(worker.spawns.length, 0, 'no spawn reached the worker');
        assert.equal(await rowCount(), 0, 'no row was written');
        // Isolated needs no network permission (the quota profile then refuses it: 429).
        const isolated = await create(k, {});
        assert.equal(isolated.statusCode, 429, isolated.body);
      });
    }

    test('a permitted registry, allowlisted or unrestricted create reaches the worker with its allowlist and bandwidth', async () => {
      const k = await key(['scaibunker:create', 'scaibunker:read', ...Object.values(PERMISSION_OF)]);
      const registry = await create(k, { network_profile: 'registry', bandwidth_mbit: 50 });
      assert.equal(registry.statusCode, 201, registry.body);
      assert.equal(registry.json().network_profile, 'registry');
      assert.equal(registry.json().network_allowlist, null);
      assert.equal(registry.json().bandwidth_mbit, 50);

      const allowlisted = await create(k, {
        network_profile: 'allowlisted',
        network_allowlist: ['PyPI.org.', '*.Example.com', 'pypi.org', 'files.pythonhosted.org'],
      });
      assert.equal(allowlisted.statusCode, 201, allowlisted.body);
      assert.deepEqual(allowlisted.json().network_allowlist, ['pypi.org', '*.example.com', 'files.pythonhosted.org']);
      assert.equal(allowlisted.json().bandwidth_mbit, null);

      const unrestricted = await create(k, { network_profile: 'unrestricted', bandwidth_mbit: 10000 });
      assert.equal(unrestricted.statusCode, 201, unrestricted.body);

      assert.deepEqual(
        worker.spawns.map((s) => [s.bunkerId, s.networkProfile, s.networkAllowlist, s.bandwidthMbit]),
        [
          [registry.json().id, 'registry', undefined, 50],
          [allowlisted.json().id, 'allowlisted', ['pypi.org', '*.example.com', 'files.pythonhosted.org'], undefined],
          [unrestricted.json().id, 'unrestricted', undefined, 10000],
        ],
      );
      // Read back from the row: both columns survive the store.
      const got = await controller.http.inject({
        method: 'GET',
        url: `${API}/bunkers/${allowlisted.json().id}`,
        headers: { authorization: `Bearer ${k}` },
      });
      assert.deepEqual(got.json().network_allowlist, ['pypi.org', '*.example.com', 'files.pythonhosted.org']);
      const reg = await controller.http.inject({
        method: 'GET',
        url: `${API}/bunkers/${registry.json().id}`,
        headers: { authorization: `Bearer ${k}` },
      });
      assert.equal(reg.json().bandwidth_mbit, 50);
      assert.equal(reg.json().network_profile, 'registry');
    });

    test('tenant admins hold every network permission; an isolated create needs none', async () => {
      const res = await create(adminKey, { network_profile: 'unrestricted' });
      assert.equal(res.statusCode, 201, res.body);
      const plain = await key(['scaibunker:create']);
      const isolated = await create(plain, { bandwidth_mbit: 10 });
      assert.equal(isolated.statusCode, 201, isolated.body);
      assert.equal(isolated.json().network_profile, 'isolated');
      assert.equal(worker.spawns.at(-1)?.networkProfile, 'isolated');
      assert.equal(worker.spawns.at(-1)?.bandwidthMbit, 10);
    });

    test('no worker offering the profile: NO_SUITABLE_WORKER naming it, nothing spawned', async () => {
      await offer(undefined); // a worker that does not say: isolated only
      const listed = (await controller.services.workers.list()).find((w) => w.id === worker.id);
      assert.deepEqual(listed?.network_profiles, ['isolated']);
      const res = await create(adminKey, { network_profile: 'registry' });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().error.code, 'NO_SUITABLE_WORKER');
      assert.ok(
        res.json().error.details.reasons.some((r: string) => r.includes('no registry network profile')),
        JSON.stringify(res.json().error.details),
      );
      await offer(['isolated', 'registry']);
      const allow = await create(adminKey, { network_profile: 'allowlisted', network_allowlist: ['pypi.org'] });
      assert.equal(allow.statusCode, 503);
      assert.ok(allow.json().error.details.reasons.some((r: string) => r.includes('no allowlisted network profile')));
      assert.equal(worker.spawns.length, 0);
      assert.equal((await create(adminKey, { network_profile: 'registry' })).statusCode, 201);
      assert.equal(worker.spawns.length, 1);
    });

    test('quota profiles may still restrict network profiles (QUOTA_EXCEEDED naming network_profile)', async () => {
      const user = 'quota-limited';
      const qp = await controller.http.inject({
        method: 'POST',
        url: `${API}/quota-profiles`,
        headers: { authorization: `Bearer ${adminKey}` },
        payload: { name: 'registry-only', allowed_network_profiles: ['registry'] },
      });
      assert.equal(qp.statusCode, 201, qp.body);
      await controller.http.inject({
        method: 'POST',
        url: `${API}/quota-profiles/${qp.json().id}/assignments`,
        headers: { authorization: `Bearer ${adminKey}` },
        payload: { kind: 'user', subject: user },
      });
      const k = await key(['scaibunker:create', 'scaibunker:network:unrestricted', 'scaibunker:network:registry'], user);
      const refused = await create(k, { network_profile: 'unrestricted' });
      assert.equal(refused.statusCode, 429, refused.body);
      assert.equal(refused.json().error.details.resource, 'network_profile');
      assert.equal(refused.json().error.details.requested, 'unrestricted');
      assert.equal(worker.spawns.length, 0);
      assert.equal((await create(k, { network_profile: 'registry' })).statusCode, 201);
    });
  });
}
