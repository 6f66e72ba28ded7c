/**
 * A worker that stops heartbeating is unreachable, not dead: the monitor marks it `offline` and
 * its bunkers keep their state (calls for them answer WORKER_UNAVAILABLE at once); a heartbeat
 * brings it back with nothing failed; only after `workerLostAfterMs` of silence are its bunkers
 * failed `worker_lost`, and a worker that returns after that destroys them (unknown_bunkers).
 * On both store dialects; two WorkerServices on one database stand in for two controllers.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiError, newId, type schemas } from '@scaibunker/core';
import { type Principal, systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { type ControllerConfig, DEFAULT_CONFIG, validateConfig } from '../../src/config.js';
import { InProcessHeartbeats } from '../../src/workers/InProcessHeartbeats.js';
import { WorkerDirectory } from '../../src/workers/WorkerDirectory.js';
import { WorkerService } from '../../src/workers/WorkerService.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { bunkerRow } from '../helpers/rows.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const INTERVAL_MS = 1000;
const TIMEOUT_MS = 3 * INTERVAL_MS;
const LOST_AFTER_MS = 20_000;
const config: ControllerConfig = {
  ...DEFAULT_CONFIG,
  heartbeatIntervalMs: INTERVAL_MS,
  missedHeartbeats: 3,
  workerLostAfterMs: LOST_AFTER_MS,
};

function beat(workerId: string, bunkers: string[] = []): schemas.HeartbeatBody {
  return {
    worker_id: workerId,
    name: 'w',
    url: 'http://127.0.0.1:1',
    isolations: ['container'],
    capacity: { cpu_millicores: 4000, memory_mb: 4096, disk_mb: 4096 },
    cached_images: [],
    bunkers: bunkers.map((id) => ({ id, status: 'running' as const })),
  };
}

const isUnavailable = (err: unknown) => err instanceof ApiError && err.code === 'WORKER_UNAVAILABLE';

for (const dialect of DIALECTS) {
  describe(`worker grace (${dialect.name})`, () => {
    let dir: string;
    let db: TestDatabase;
    let controller: Controller;
    let heartbeats: InProcessHeartbeats;
    /** "Controller A": runs the monitor and receives heartbeats. */
    let directoryA: WorkerDirectory;
    let workersA: WorkerService;
    /** "Controller B": receives heartbeats only; its own directory. */
    let directoryB: WorkerDirectory;
    let workersB: WorkerService;
    let principal: Principal;
    const logs: string[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sb-grace-'));
      db = await dialect.create();
      controller = await Controller.open({ databaseUrl: db.url, blobDir: join(dir, 'blobs'), workerToken: WORKER_TOKEN, config });
      heartbeats = new InProcessHeartbeats();
      const log = (m: string) => void logs.push(m);
      directoryA = new WorkerDirectory(controller.store, WORKER_TOKEN);
      workersA = new WorkerService(controller.store, controller.services.bunkers, config, heartbeats, directoryA, log);
      directoryB = new WorkerDirectory(controller.store, WORKER_TOKEN);
      workersB = new WorkerService(controller.store, controller.services.bunkers, config, heartbeats, directoryB, log);
      const tenant = await controller.services.tenants.createTenant(systemPrincipal('test'), `t-${newId('tn')}`);
      principal = { ...systemPrincipal('test'), tenantId: tenant.id };
    });
    after(async () => {
      await heartbeats.close();
      await controller?.close();
      await db?.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    /** A registered worker with one running bunker, whose last heartbeat was `silentMs` ago. */
    async function silentWorker(silentMs: number): Promise<{ workerId: string; bunkerId: string; lastIso: string }> {
      const workerId = newId('wk');
      await workersA.heartbeat(beat(workerId));
      const row = bunkerRow(principal.tenantId, { state: 'running', worker_id: workerId, started_at: new Date().toISOString() });
      await controller.store.bunkers.insert(row, {});
      // Its row and the store both say it last beat `silentMs` ago.
      const last = Date.now() - silentMs;
      const lastIso = new Date(last).toISOString();
      const current = await controller.store.workers.get(workerId);
      assert.ok(current);
      await controller.store.workers.upsertFromHeartbeat({ ...current, last_heartbeat_at: lastIso });
      await heartbeats.record(workerId, last);
      return { workerId, bunkerId: row.id, lastIso };
    }

    test('missed heartbeats: offline, bunkers kept, calls answer WORKER_UNAVAILABLE at once, worker_reachable false', async () => {
      const { workerId, bunkerId, lastIso } = await silentWorker(TIMEOUT_MS + 2000);
      const { offline, lost } = await workersA.monitor();
      assert.ok(offline.includes(workerId));
      assert.ok(!lost.includes(workerId));
      const w = await controller.store.workers.get(workerId);
      assert.equal(w?.state, 'offline');
      assert.equal(w?.last_heartbeat_at, lastIso, "the row carries the store's last heartbeat");
      const bunker = await controller.store.bunkers.getById(bunkerId);
      assert.equal(bunker?.state, 'running');
      assert.equal(bunker?.termination_reason, null);

      // Any controller: A's directory was told, B's (and the controller's own) read the row.
      for (const directory of [directoryA, directoryB]) {
        const started = Date.now();
        await assert.rejects(directory.get(workerId), (err: unknown) => {
          assert.ok(isUnavailable(err));
          assert.match((err as Error).message, new RegExp(`unreachable since ${lastIso.replace(/\./g, '\\.')}`));
          assert.deepEqual((err as ApiError).details, { worker_id: workerId, unreachable_since: lastIso });
          return true;
        });
        assert.ok(Date.now() - started < 500, 'no connection is attempted');
        assert.equal((await directory.reachable([workerId])).get(workerId), false);
      }
      await assert.rejects(controller.services.bunkers.requireRunning(principal, bunkerId), isUnavailable);
      const api = await controller.services.bunkers.toApiOne(bunker as NonNullable<typeof bunker>);
      assert.equal(api.worker_reachable, false);
      assert.equal(api.state, 'running');

      // A second tick changes nothing (still within the grace).
      const again = await workersA.monitor();
      assert.ok(!again.offline.includes(workerId) && !again.lost.includes(workerId));
      assert.equal((await controller.store.bunkers.getById(bunkerId))?.state, 'running');
    });

    test('a heartbeat within the grace brings it back online, on the controller that marked it or another', async () => {
      for (const returnsTo of [workersA, workersB]) {
        const { workerId, bunkerId } = await silentWorker(TIMEOUT_MS + 2000);
        // B has seen this worker's unchanged report recently: it would not rewrite the row.
        await workersB.heartbeat(beat(workerId));
        await controller.store.workers.upsertFromHeartbeat({
          ...((await controller.store.workers.get(workerId)) as NonNullable<Awaited<ReturnType<typeof controller.store.workers.get>>>),
          last_heartbeat_at: new Date(Date.now() - TIMEOUT_MS - 2000).toISOString(),
        });
        await heartbeats.record(workerId, Date.now() - TIMEOUT_MS - 2000);
        assert.ok((await workersA.monitor()).offline.includes(workerId));
        assert.equal((await directoryA.reachable([workerId])).get(workerId), false);

        const reply = await returnsTo.heartbeat(beat(workerId, [bunkerId]));
        assert.deepEqual(reply.unknown_bunkers, [], 'nothing to destroy');
        assert.equal((await controller.store.workers.get(workerId))?.state, 'online');
        const bunker = await controller.store.bunkers.getById(bunkerId);
        assert.equal(bunker?.state, 'running');
        assert.equal(bunker?.termination_reason, null);
        // The controller that took the heartbeat knows at once; the other within its row TTL.
        const directory = returnsTo === workersA ? directoryA : directoryB;
        assert.equal((await directory.reachable([workerId])).get(workerId), true);
        assert.ok(await directory.get(workerId));
        assert.equal((await new WorkerDirectory(controller.store, WORKER_TOKEN).reachable([workerId])).get(workerId), true);
        assert.ok(logs.some((l) => l.includes(`worker ${workerId} is reachable again`)));
      }
    });

    test('silent past --worker-lost-after: its bunkers fail worker_lost; a late return destroys them', async () => {
      const { workerId, bunkerId } = await silentWorker(LOST_AFTER_MS + 5000);
      const pending = bunkerRow(principal.tenantId, { state: 'pending' });
      await controller.store.bunkers.insert(pending, {});
      const { offline, lost } = await workersA.monitor();
      assert.ok(offline.includes(workerId));
      assert.ok(lost.includes(workerId));
      const failed = await controller.store.bunkers.getById(bunkerId);
      assert.equal(failed?.state, 'failed');
      assert.match(failed?.termination_reason ?? '', /^worker_lost: no heartbeat for 25s$/);
      assert.equal((await controller.store.bunkers.getById(pending.id))?.state, 'pending', 'only its bunkers');
      // Once per silence: the next tick finds nothing to do.
      assert.ok(!(await workersA.monitor()).lost.includes(workerId));

      const reply = await workersB.heartbeat(beat(workerId, [bunkerId]));
      assert.deepEqual(reply.unknown_bunkers, [bunkerId], 'the worker destroys what it kept');
      assert.equal((await controller.store.workers.get(workerId))?.state, 'online');
    });

    test('offline first, lost on a later tick, by the row alone (another controller, heartbeats store wiped)', async () => {
      const { workerId, bunkerId, lastIso } = await silentWorker(TIMEOUT_MS + 2000);
      assert.ok((await workersA.monitor()).offline.includes(workerId));
      assert.equal((await controller.store.bunkers.getById(bunkerId))?.state, 'running');
      // A controller whose Heartbeats store knows nothing, with a grace that has now passed.
      const wiped = new InProcessHeartbeats();
      const shortGrace = { ...config, workerLostAfterMs: Date.now() - Date.parse(lastIso) - 500 };
      const other = new WorkerService(controller.store, controller.services.bunkers, shortGrace, wiped);
      const { offline, lost } = await other.monitor();
      assert.ok(!offline.includes(workerId), 'already offline');
      assert.ok(lost.includes(workerId));
      const failed = await controller.store.bunkers.getById(bunkerId);
      assert.equal(failed?.state, 'failed');
      assert.match(failed?.termination_reason ?? '', /^worker_lost: no heartbeat for \d+s$/);
    });

    test('terminate on an unreachable worker: the row ends terminated at once; the worker destroys it when back', async () => {
      const { workerId, bunkerId } = await silentWorker(TIMEOUT_MS + 2000);
      assert.ok((await workersA.monitor()).offline.includes(workerId));
      const started = Date.now();
      const ended = await controller.services.bunkers.terminate(principal, bunkerId);
      assert.ok(Date.now() - started < 1000, 'no wait on the unreachable worker');
      assert.equal(ended.state, 'terminated');
      const reply = await workersA.heartbeat(beat(workerId, [bunkerId]));
      assert.deepEqual(reply.unknown_bunkers, [bunkerId]);
    });
  });
}

describe('--worker-lost-after validation', () => {
  test('must exceed the heartbeat timeout (missed heartbeats × interval)', () => {
    assert.throws(
      () => validateConfig({ ...DEFAULT_CONFIG, heartbeatIntervalMs: 10_000, missedHeartbeats: 3, workerLostAfterMs: 30_000 }),
      /--worker-lost-after \(30000 ms\) must exceed the heartbeat timeout .*30000 ms/,
    );
    assert.doesNotThrow(() => validateConfig({ ...DEFAULT_CONFIG, heartbeatIntervalMs: 10_000, workerLostAfterMs: 30_001 }));
    assert.doesNotThrow(() => validateConfig(DEFAULT_CONFIG));
  });

  test('Controller.open refuses it before opening anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-grace-'));
    try {
      await assert.rejects(
        Controller.open({
          databaseUrl: `sqlite:${join(dir, 'db.sqlite')}`,
          blobDir: join(dir, 'blobs'),
          config: { heartbeatIntervalMs: 1000, workerLostAfterMs: 2000 },
        }),
        /must exceed the heartbeat timeout/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
