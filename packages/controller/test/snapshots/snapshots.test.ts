/**
 * Snapshots, restores, fork and passivation at the API edge, on every store dialect, with the
 * fake worker (it answers `snapshot` with a made-up archive and records spawns): the rows and
 * state moves, what reaches the worker, tenant isolation, refusals, quota, delete and cleanup.
 * The archive itself (real files, byte for byte) is tested on real workers in the e2e suite.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { addFakeWorker } from '../helpers/fakeWorker.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const system = systemPrincipal('test');
const ALL: Permission[] = ['scaibunker:create', 'scaibunker:read', 'scaibunker:execute', 'scaibunker:admin:tenant'];

type Json = any;

for (const dialect of DIALECTS) {
  describe(`snapshots (${dialect.name})`, () => {
    let db: TestDatabase;
    let dir: string;
    let controller: Controller;
    let worker: Awaited<ReturnType<typeof addFakeWorker>>;
    let keyA: string;
    let keyB: string;
    let n = 0;

    const key = async (tenant: string) =>
      (await controller.services.tenants.createApiKey(system, tenant, `k-${++n}`, ALL, { userId: `u-${n}` })).key;
    const call = (k: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
      controller.http.inject({ method, url: `${API}${url}`, headers: { authorization: `Bearer ${k}` }, ...(payload ? { payload } : {}) });
    const ok = async (k: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<Json> => {
      const res = await call(k, method, url, payload);
      assert.ok(res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`);
      return res.statusCode === 204 ? undefined : res.json();
    };
    const bunker = (k = keyA, body: object = {}) => ok(k, 'POST', '/bunkers', { image: 'minimal', ...body });
    /** Until the snapshot left `creating` (the fake worker answers at once unless held). */
    const settled = async (k: string, id: string): Promise<Json> => {
      for (;;) {
        const s = await ok(k, 'GET', `/snapshots/${id}`);
        if (s.state !== 'creating') return s;
        await new Promise((r) => setImmediate(r));
      }
    };
    const code = async (p: Promise<{ statusCode: number; json(): Json }>) => {
      const res = await p;
      return `${res.statusCode} ${res.json().error?.code}`;
    };

    before(async () => {
      db = await dialect.create();
      dir = mkdtempSync(join(tmpdir(), 'sb-snap-'));
      controller = await Controller.open({
        databaseUrl: db.url,
        blobDir: join(dir, 'blobs'),
        workerToken: WORKER_TOKEN,
        config: {
          monitorIntervalMs: 3_600_000,
          sweepIntervalMs: 3_600_000,
          usageIntervalMs: 3_600_000,
          snapshotCleanupIntervalMs: 3_600_000,
        },
      });
      await controller.services.tenants.bootstrap();
      keyA = await key((await controller.services.tenants.createTenant(system, 'sa')).id);
      keyB = await key((await controller.services.tenants.createTenant(system, 'sb')).id);
      worker = await addFakeWorker(controller);
    });
    after(async () => {
      await controller.close();
      await db.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a snapshot answers 202 creating, becomes ready with what the worker stored; the bunker runs on', async () => {
      const b = await bunker();
      const res = await call(keyA, 'POST', `/bunkers/${b.id}/snapshots`, { name: 'first', expires_in_s: 3600 });
      assert.equal(res.statusCode, 202, res.body);
      const s = res.json();
      assert.match(s.id, /^sn_/);
      assert.equal(s.state, 'creating');
      assert.equal(s.bunker_id, b.id);
      assert.equal(s.source, 'user');
      assert.ok(s.expires_at);
      const ready = await settled(keyA, s.id);
      assert.equal(ready.state, 'ready');
      assert.equal(ready.sha256, 'a'.repeat(64));
      assert.equal(ready.size_bytes, 4096);
      assert.deepEqual(worker.snapshotCalls.at(-1), `${b.id}:${s.id}`);
      assert.equal((await ok(keyA, 'GET', `/bunkers/${b.id}`)).state, 'running');
      // No body at all is a snapshot with no name and no expiry.
      const bare = await controller.http.inject({
        method: 'POST',
        url: `${API}/bunkers/${b.id}/snapshots`,
        headers: { authorization: `Bearer ${keyA}` },
      });
      assert.equal(bare.statusCode, 202, bare.body);
      assert.equal(bare.json().expires_at, null);
      await settled(keyA, bare.json().id);
    });

    test("another tenant's snapshots are not found anywhere; unknown fields and memory snapshots are refused", async () => {
      const b = await bunker();
      const s = await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {});
      await settled(keyA, s.id);
      assert.equal(await code(call(keyB, 'GET', `/snapshots/${s.id}`)), '404 SNAPSHOT_NOT_FOUND');
      assert.equal(await code(call(keyB, 'DELETE', `/snapshots/${s.id}`)), '404 SNAPSHOT_NOT_FOUND');
      assert.equal(await code(call(keyB, 'POST', '/bunkers', { snapshot_id: s.id })), '404 SNAPSHOT_NOT_FOUND');
      assert.equal(await code(call(keyB, 'POST', `/bunkers/${b.id}/snapshots`, {})), '404 BUNKER_NOT_FOUND');
      assert.equal(await code(call(keyB, 'POST', `/bunkers/${b.id}/fork`, { count: 1 })), '404 BUNKER_NOT_FOUND');
      const listed = await ok(keyB, 'GET', '/snapshots');
      assert.equal(
        listed.items.some((x: Json) => x.id === s.id),
        false,
      );
      assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/snapshots`, { memory: true })), '400 VALIDATION_FAILED');
      assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/fork`, { count: 21 })), '400 VALIDATION_FAILED');
    });

    test('list pages by cursor, newest first, and filters by bunker', async () => {
      const b = await bunker();
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const s = await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, { name: `p${i}` });
        ids.push(s.id);
        await settled(keyA, s.id);
      }
      const first = await ok(keyA, 'GET', `/snapshots?bunker_id=${b.id}&limit=2`);
      assert.equal(first.items.length, 2);
      assert.ok(first.next_cursor);
      const second = await ok(keyA, 'GET', `/snapshots?bunker_id=${b.id}&limit=2&cursor=${first.next_cursor}`);
      assert.deepEqual([...first.items, ...second.items].map((x: Json) => x.id).sort(), [...ids].sort());
      assert.equal(second.next_cursor, null);
    });

    test('a bunker created from a snapshot gets it as spawn.restore; image, isolation and disk are checked', async () => {
      const b = await bunker(keyA, { disk_mb: 2048 });
      const s = await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})).id);
      const restored = await bunker(keyA, { image: undefined, snapshot_id: s.id });
      assert.equal(restored.snapshot_id, s.id);
      assert.equal(restored.image, 'minimal');
      assert.equal(restored.disk_mb, 2048, "the snapshot's disk_mb by default");
      const spawn = worker.spawns.find((x) => x.bunkerId === restored.id);
      assert.deepEqual(spawn?.restore, { snapshotId: s.id, sha256: 'a'.repeat(64), sizeBytes: 4096, format: 'container-tar' });
      assert.equal(await code(call(keyA, 'POST', '/bunkers', { snapshot_id: s.id, image: 'python' })), '400 VALIDATION_FAILED');
      assert.equal(await code(call(keyA, 'POST', '/bunkers', { snapshot_id: s.id, isolation: 'microvm' })), '400 VALIDATION_FAILED');
      assert.equal(await code(call(keyA, 'POST', '/bunkers', { snapshot_id: s.id, disk_mb: 1024 })), '400 VALIDATION_FAILED');
      assert.equal(await code(call(keyA, 'POST', '/bunkers', {})), '400 VALIDATION_FAILED');
      assert.equal(await code(call(keyA, 'POST', '/bunkers', { snapshot_id: 'sn_00000000000000000000' })), '404 SNAPSHOT_NOT_FOUND');
    });

    test('a snapshot still being written is neither restored nor deleted; the bunker waits in snapshotting', async () => {
      const b = await bunker();
      let release: () => void = () => {};
      worker.holdSnapshots.gate = new Promise<void>((r) => (release = r));
      try {
        const s = await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {});
        assert.equal((await ok(keyA, 'GET', `/bunkers/${b.id}`)).state, 'snapshotting');
        assert.equal(await code(call(keyA, 'POST', '/bunkers', { snapshot_id: s.id })), '409 SNAPSHOT_NOT_READY');
        assert.equal(await code(call(keyA, 'DELETE', `/snapshots/${s.id}`)), '409 SNAPSHOT_IN_USE');
        assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})), '409 BUNKER_NOT_RUNNING');
        // A call that needs the bunker running waits for the snapshot instead of failing.
        const waiting = controller.services.bunkers.requireRunning(
          { ...system, tenantId: (await ok(keyA, 'GET', `/bunkers/${b.id}`)).tenant_id },
          b.id,
        );
        release();
        assert.equal((await waiting).row.state, 'running');
        assert.equal((await settled(keyA, s.id)).state, 'ready');
      } finally {
        worker.holdSnapshots.gate = undefined;
        release();
      }
    });

    test('a snapshot the worker fails is failed with the reason, nothing kept; the bunker runs on', async () => {
      const b = await bunker();
      worker.failSnapshots.on = true;
      try {
        const s = await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})).id);
        assert.equal(s.state, 'failed');
        assert.match(s.error, /SNAPSHOT_FAILED/);
        assert.ok(s.expires_at, 'a failed row is cleaned up later');
        assert.equal((await ok(keyA, 'GET', `/bunkers/${b.id}`)).state, 'running');
        assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/fork`, { count: 2 })), '502 SNAPSHOT_FAILED');
      } finally {
        worker.failSnapshots.on = false;
      }
    });

    test('only a running bunker is snapshotted', async () => {
      const b = await bunker();
      await ok(keyA, 'POST', `/bunkers/${b.id}/pause`);
      assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})), '409 BUNKER_NOT_RUNNING');
      await ok(keyA, 'DELETE', `/bunkers/${b.id}`);
      assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})), '409 BUNKER_NOT_RUNNING');
    });

    test('fork starts count independent bunkers from one fresh snapshot', async () => {
      const b = await bunker(keyA, { env: { A: '1' }, metadata: { team: 'x' } });
      const before = worker.spawns.length;
      const res = await call(keyA, 'POST', `/bunkers/${b.id}/fork`, { count: 3 });
      assert.equal(res.statusCode, 201, res.body);
      const forked = res.json();
      assert.equal(forked.bunkers.length, 3);
      assert.equal(new Set(forked.bunkers.map((x: Json) => x.id)).size, 3);
      for (const f of forked.bunkers) {
        assert.equal(f.state, 'running');
        assert.equal(f.snapshot_id, forked.snapshot_id);
        assert.deepEqual(f.metadata, { team: 'x' });
      }
      const spawned = worker.spawns.slice(before);
      assert.equal(spawned.length, 3);
      assert.ok(spawned.every((x) => x.restore?.snapshotId === forked.snapshot_id));
      const snap = await ok(keyA, 'GET', `/snapshots/${forked.snapshot_id}`);
      assert.equal(snap.source, 'fork');
    });

    test('a fork that cannot start all its bunkers starts none', async () => {
      const b = await bunker();
      worker.failSpawns.on = true;
      try {
        const res = await call(keyA, 'POST', `/bunkers/${b.id}/fork`, { count: 2 });
        assert.equal(res.statusCode, 503, res.body);
      } finally {
        worker.failSpawns.on = false;
      }
      const page = await ok(keyA, 'GET', '/bunkers?state=running&limit=200');
      assert.equal(page.items.filter((x: Json) => x.snapshot_id && x.id !== b.id && x.created_at > b.created_at).length, 0);
    });

    test('a snapshot is deleted with its archive; one a restore or a passivated bunker needs is refused', async () => {
      const b = await bunker(keyA, { lifecycle: 'persistent' });
      const s = await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})).id);
      await ok(keyA, 'DELETE', `/snapshots/${s.id}`);
      assert.equal(await code(call(keyA, 'GET', `/snapshots/${s.id}`)), '404 SNAPSHOT_NOT_FOUND');
      assert.equal(await code(call(keyA, 'POST', '/bunkers', { snapshot_id: s.id })), '404 SNAPSHOT_NOT_FOUND');
      const passivated = await ok(keyA, 'POST', `/bunkers/${b.id}/pause`, { passivate: true });
      assert.equal(await code(call(keyA, 'DELETE', `/snapshots/${passivated.snapshot_id}`)), '409 SNAPSHOT_IN_USE');
    });

    test('passivate: snapshot, worker resources released, paused; resume restores it from the snapshot', async () => {
      const b = await bunker(keyA, { lifecycle: 'persistent' });
      const p = await ok(keyA, 'POST', `/bunkers/${b.id}/pause`, { passivate: true });
      assert.equal(p.state, 'paused');
      assert.equal(p.passivated, true);
      assert.equal(p.worker_id, null);
      assert.ok(worker.destroyed.includes(b.id), 'its worker dropped it');
      const snap = await ok(keyA, 'GET', `/snapshots/${p.snapshot_id}`);
      assert.equal(snap.source, 'passivation');
      assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/pause`, { passivate: true })), '409 BUNKER_INVALID_TRANSITION');
      const r = await ok(keyA, 'POST', `/bunkers/${b.id}/resume`);
      assert.equal(r.state, 'running');
      assert.equal(r.passivated, false);
      assert.ok(r.worker_id);
      assert.equal(worker.spawns.filter((x) => x.bunkerId === b.id).at(-1)?.restore?.snapshotId, p.snapshot_id);
      // Passivated again: the older passivation snapshot is superseded and removed.
      const p2 = await ok(keyA, 'POST', `/bunkers/${b.id}/pause`, { passivate: true });
      assert.notEqual(p2.snapshot_id, p.snapshot_id);
      assert.equal(await code(call(keyA, 'GET', `/snapshots/${p.snapshot_id}`)), '404 SNAPSHOT_NOT_FOUND');
      // Terminated while passivated: its passivation snapshot goes with it.
      await ok(keyA, 'DELETE', `/bunkers/${b.id}`);
      assert.equal(await code(call(keyA, 'GET', `/snapshots/${p2.snapshot_id}`)), '404 SNAPSHOT_NOT_FOUND');
    });

    test('only persistent bunkers passivate; auto_resume is for persistent ones', async () => {
      const b = await bunker();
      assert.equal(await code(call(keyA, 'POST', `/bunkers/${b.id}/pause`, { passivate: true })), '409 BUNKER_INVALID_TRANSITION');
      assert.equal(await code(call(keyA, 'POST', '/bunkers', { image: 'minimal', auto_resume: true })), '400 VALIDATION_FAILED');
    });

    test('auto_resume: a call that needs the bunker running resumes a passivated one; without it, BUNKER_NOT_RUNNING', async () => {
      const auto = await bunker(keyA, { lifecycle: 'persistent', auto_resume: true });
      const plain = await bunker(keyA, { lifecycle: 'persistent' });
      for (const b of [auto, plain]) await ok(keyA, 'POST', `/bunkers/${b.id}/pause`, { passivate: true });
      const tenantId = auto.tenant_id;
      const principal = { ...system, tenantId };
      const [one, two] = await Promise.all([
        controller.services.bunkers.requireRunning(principal, auto.id),
        controller.services.bunkers.requireRunning(principal, auto.id),
      ]);
      assert.equal(one.row.state, 'running');
      assert.equal(two.row.state, 'running');
      assert.equal(worker.spawns.filter((x) => x.bunkerId === auto.id).length, 2, 'create + one resume for two concurrent calls');
      await assert.rejects(controller.services.bunkers.requireRunning(principal, plain.id), /BUNKER_NOT_RUNNING|passivated/);
    });

    test('the sweeper passivates idle persistent bunkers (and still ends idle ephemeral ones)', async () => {
      const b = await bunker(keyA, { lifecycle: 'persistent', idle_timeout_s: 1 });
      const e = await bunker(keyA, { idle_timeout_s: 1 });
      const later = Date.now() + 5_000;
      const swept = await controller.sweeper.sweep(later);
      assert.ok(swept.some((x) => x.id === b.id && x.reason === 'passivated'));
      assert.ok(swept.some((x) => x.id === e.id && x.reason === 'idle_timeout'));
      const row = await ok(keyA, 'GET', `/bunkers/${b.id}`);
      assert.equal(row.state, 'paused');
      assert.equal(row.passivated, true);
    });

    test('max_snapshot_bytes caps the tenant: refused at the cap, and an archive that would cross it fails', async () => {
      const tenant = (await controller.services.tenants.createTenant(system, `sq-${++n}`)).id;
      const k = await key(tenant);
      const profile = await ok(k, 'POST', '/quota-profiles', { name: 'snap-cap', max_snapshot_bytes: 10_000 });
      assert.equal(profile.max_snapshot_bytes, 10_000);
      await ok(k, 'POST', `/quota-profiles/${profile.id}/assignments`, { kind: 'group', subject: 'everyone' });
      const kk = (await controller.services.tenants.createApiKey(system, tenant, 'grouped', ALL, { groups: ['everyone'] })).key;
      const b = await bunker(kk);
      worker.snapshotBytes.value = 6_000;
      try {
        assert.equal((await settled(kk, (await ok(kk, 'POST', `/bunkers/${b.id}/snapshots`, {})).id)).state, 'ready');
        const over = await settled(kk, (await ok(kk, 'POST', `/bunkers/${b.id}/snapshots`, {})).id);
        assert.equal(over.state, 'failed');
        assert.match(over.error, /QUOTA_EXCEEDED/);
        worker.snapshotBytes.value = 5_000;
        await settled(kk, (await ok(kk, 'POST', `/bunkers/${b.id}/snapshots`, {})).id).then((s: Json) => assert.equal(s.state, 'failed'));
        const usage = await ok(k, 'GET', '/quota-profiles/usage');
        assert.equal(usage.snapshot_bytes.current, 6_000);
        assert.equal(usage.snapshot_bytes.cap, 10_000);
        worker.snapshotBytes.value = 4_000;
        assert.equal((await settled(kk, (await ok(kk, 'POST', `/bunkers/${b.id}/snapshots`, {})).id)).state, 'ready');
        assert.equal(await code(call(kk, 'POST', `/bunkers/${b.id}/snapshots`, {})), '429 QUOTA_EXCEEDED');
      } finally {
        worker.snapshotBytes.value = 4096;
      }
    });

    test("a lost worker's persistent bunker with a snapshot is restored from its newest one; others fail worker_lost", async () => {
      const keep = await bunker(keyA, { lifecycle: 'persistent' });
      const plain = await bunker(keyA, { lifecycle: 'persistent' });
      await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${keep.id}/snapshots`, {})).id);
      const newest = await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${keep.id}/snapshots`, {})).id);
      for (const b of [keep, plain]) {
        await controller.services.bunkers.workerLost((await controller.store.bunkers.getById(b.id))!, 600_000);
      }
      const recovered = await ok(keyA, 'GET', `/bunkers/${keep.id}`);
      assert.equal(recovered.state, 'running');
      assert.equal(recovered.recovered_from, keep.worker_id);
      assert.equal(recovered.snapshot_id, newest.id);
      assert.equal(worker.spawns.filter((x) => x.bunkerId === keep.id).at(-1)?.restore?.snapshotId, newest.id);
      const lost = await ok(keyA, 'GET', `/bunkers/${plain.id}`);
      assert.equal(lost.state, 'failed');
      assert.match(lost.termination_reason, /^worker_lost/);
    });

    test('cleanup deletes expired snapshots (not those a bunker needs) and closes ones a dead controller left', async () => {
      const b = await bunker(keyA, { lifecycle: 'persistent' });
      const expiring = await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, { expires_in_s: 60 })).id);
      const keep = await settled(keyA, (await ok(keyA, 'POST', `/bunkers/${b.id}/snapshots`, {})).id);
      // A row left creating by a controller that died, with its bunker stuck in snapshotting.
      const stuck = await bunker(keyA);
      await controller.store.snapshots.insert({
        ...(await controller.store.snapshots.getById(keep.id))!,
        id: 'sn_stuckstuckstuckstuck',
        bunker_id: stuck.id,
        state: 'creating',
        created_at: new Date(Date.now() - 3_600_000).toISOString(),
        ready_at: null,
      });
      await controller.store.bunkers.transition(stuck.id, ['running'], 'snapshotting');
      const result = await controller.services.snapshots.cleanup(60_000, Date.now() + 120_000);
      assert.ok(result.expired >= 1);
      assert.equal(result.stale, 1);
      assert.equal(await code(call(keyA, 'GET', `/snapshots/${expiring.id}`)), '404 SNAPSHOT_NOT_FOUND');
      assert.equal((await ok(keyA, 'GET', `/snapshots/${keep.id}`)).state, 'ready');
      assert.equal((await ok(keyA, 'GET', '/snapshots/sn_stuckstuckstuckstuck')).state, 'failed');
      assert.equal((await ok(keyA, 'GET', `/bunkers/${stuck.id}`)).state, 'running');
    });
  });
}
