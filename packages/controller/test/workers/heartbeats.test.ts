/**
 * Heartbeats live in the Heartbeats store (Redis with several controllers); the workers row is
 * written on registration, on a changed report and every ROW_REFRESH_MS, and the monitor judges
 * liveness by the store, falling back to the row's coarse copy (with that much more grace) for a
 * worker the store has no entry for (it was wiped). What offline means for its bunkers (kept until
 * --worker-lost-after) is in workerGrace.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { newId, type schemas } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { DEFAULT_CONFIG } from '../../src/config.js';
import type { Heartbeats } from '../../src/workers/Heartbeats.js';
import { InProcessHeartbeats } from '../../src/workers/InProcessHeartbeats.js';
import { RedisHeartbeats } from '../../src/workers/RedisHeartbeats.js';
import { WorkerService } from '../../src/workers/WorkerService.js';
import { redisCommand, testRedisUrl } from '../helpers/redis.js';
import { bunkerRow } from '../helpers/rows.js';

const INTERVAL_MS = 1000;
const LIMIT_MS = 3 * INTERVAL_MS;
const config = { ...DEFAULT_CONFIG, heartbeatIntervalMs: INTERVAL_MS, missedHeartbeats: 3 };

const IMPLEMENTATIONS: Array<{ name: string; create(): Promise<Heartbeats> }> = [
  { name: 'in-process', create: async () => new InProcessHeartbeats() },
  { name: 'redis', create: () => RedisHeartbeats.connect(testRedisUrl()) },
];

function beat(workerId: string, capacityCpu = 4000): schemas.HeartbeatBody {
  return {
    worker_id: workerId,
    name: 'w',
    url: 'http://127.0.0.1:1',
    isolations: ['container'],
    capacity: { cpu_millicores: capacityCpu, memory_mb: 4096, disk_mb: 4096 },
    cached_images: [],
    bunkers: [],
  };
}

const workerId = () => newId('wk');

for (const impl of IMPLEMENTATIONS) {
  describe(`heartbeats (${impl.name})`, () => {
    let dir: string;
    let controller: Controller;
    let heartbeats: Heartbeats;
    let workers: WorkerService;
    const made: string[] = [];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'sb-hb-'));
      controller = await Controller.open({ databaseUrl: `sqlite:${join(dir, 'db.sqlite')}`, blobDir: join(dir, 'blobs') });
      heartbeats = await impl.create();
      workers = new WorkerService(controller.store, controller.services.bunkers, config, heartbeats);
    });
    after(async () => {
      if (impl.name === 'redis' && made.length) await redisCommand('HDEL', 'workers:heartbeat', ...made);
      await heartbeats.close();
      await controller.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a beat reaches the store; the row is written at registration and when the report changes, not on every beat', async () => {
      const id = workerId();
      made.push(id);
      await workers.heartbeat(beat(id));
      const registered = await controller.store.workers.get(id);
      assert.ok(registered?.last_heartbeat_at);
      await workers.heartbeat(beat(id));
      assert.equal(
        (await controller.store.workers.get(id))?.last_heartbeat_at,
        registered.last_heartbeat_at,
        'an unchanged report leaves the row',
      );
      const seen = (await heartbeats.lastSeen()).get(id);
      assert.ok(seen !== undefined && seen >= Date.parse(registered.last_heartbeat_at));
      const listed = (await workers.list()).find((w) => w.id === id);
      assert.equal(listed?.last_heartbeat_at, new Date(seen).toISOString(), 'the API shows the live heartbeat');
      await workers.heartbeat(beat(id, 8000));
      assert.equal((await controller.store.workers.get(id))?.capacity_cpu_millicores, 8000, 'a changed report is written');
    });

    test('the monitor takes a worker silent in the store offline, keeping its bunkers; one still beating stays online', async () => {
      const silent = workerId();
      const beating = workerId();
      made.push(silent, beating);
      const longAgo = new Date(Date.now() - 10 * LIMIT_MS).toISOString();
      // Both rows carry an old copy, as between refreshes; the store is what tells them apart.
      await registerRow(controller, silent, longAgo);
      await registerRow(controller, beating, longAgo);
      const bunker = await runningBunkerOn(controller, silent);
      await heartbeats.record(silent, Date.parse(longAgo));
      await heartbeats.record(beating, Date.now());
      const { offline } = await workers.monitor();
      assert.ok(offline.includes(silent));
      assert.ok(!offline.includes(beating));
      assert.equal((await controller.store.workers.get(silent))?.state, 'offline');
      assert.equal((await controller.store.workers.get(beating))?.state, 'online');
      // Unreachable, not lost (--worker-lost-after is 10 min by default): the bunker keeps its state.
      assert.equal((await controller.store.bunkers.getById(bunker))?.state, 'running');
    });

    test('a worker the store has no entry for (wiped) is judged by its row, with the row-refresh grace', async () => {
      const fresh = new InProcessHeartbeats(); // nothing recorded: as after a wipe
      const judged = new WorkerService(controller.store, controller.services.bunkers, config, fresh);
      const recent = workerId();
      const old = workerId();
      for (const [id, ageMs] of [
        [recent, LIMIT_MS + 5_000],
        [old, LIMIT_MS + 40_000],
      ] as const) {
        await registerRow(controller, id, new Date(Date.now() - ageMs).toISOString());
      }
      const { offline } = await judged.monitor();
      assert.ok(!offline.includes(recent), 'within the row copy’s grace');
      assert.ok(offline.includes(old));
      await fresh.close();
    });
  });
}

/** A worker row whose copy of the last heartbeat is `at`. */
async function registerRow(controller: Controller, id: string, at: string): Promise<void> {
  await controller.store.workers.upsertFromHeartbeat({
    id,
    name: 'w',
    url: '',
    state: 'online',
    isolations: '["container"]',
    network_profiles: '["isolated"]',
    capacity_cpu_millicores: 1000,
    capacity_memory_mb: 1024,
    capacity_disk_mb: 1024,
    cached_images: '[]',
    bridges: '[]',
    last_heartbeat_at: at,
    created_at: at,
  });
}

/** A running bunker row placed on the worker (no real bunker: the monitor only reads rows). */
async function runningBunkerOn(controller: Controller, workerId: string): Promise<string> {
  const tenant = await controller.services.tenants.createTenant(systemPrincipal('test'), `t-${newId('tn')}`);
  const row = bunkerRow(tenant.id, { state: 'running', worker_id: workerId, started_at: new Date().toISOString() });
  await controller.store.bunkers.insert(row, {});
  return row.id;
}
