/**
 * Usage accounting: the UsageTicker's rows (deltas from scripted cumulative readings of a fake
 * worker, paused bunkers, ended bunkers, re-runs, a worker that does not answer, the job lease)
 * and GET /usage (grouping, range, tenant isolation, validation). Every store dialect.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { newId, type Permission } from '@scaibunker/core';
import type { BunkerStats } from '@scaibunker/worker';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';
import { Ticker } from '../../src/jobs/Ticker.js';
import type { UsageRow } from '../../src/store/schema.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { addFakeWorker } from '../helpers/fakeWorker.js';
import { WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const system = systemPrincipal('test');
const MB = 1024 * 1024;
const MIN = 60_000;
/** Each test meters its own bunkers on its own day, so their rows never meet. */
const day = (n: number) => Date.UTC(2030, 0, n, 10, 0, 0);

type Json = any;

for (const dialect of DIALECTS) {
  describe(`usage accounting (${dialect.name})`, () => {
    let db: TestDatabase;
    let dir: string;
    let controller: Controller;
    let worker: Awaited<ReturnType<typeof addFakeWorker>>;
    let tenantA: string;
    let tenantB: string;
    let platformKey: string;
    let keyA: string;
    let keyB: string;
    const logged: string[] = [];
    let n = 0;

    const call = (url: string, key: string, method: 'GET' | 'POST' | 'DELETE' = 'GET', payload?: object) =>
      controller.http.inject({
        method,
        url: `${API}/${url}`,
        headers: { authorization: `Bearer ${key}` },
        ...(payload ? { payload } : {}),
      });
    const ok = async (res: Awaited<ReturnType<typeof call>>, status = 200): Promise<Json> => {
      assert.equal(res.statusCode, status, res.body);
      return res.json();
    };
    const keyFor = async (tenantId: string, permissions: Permission[]) =>
      (await controller.services.tenants.createApiKey(system, tenantId, `k-${++n}`, permissions)).key;
    /** A running bunker of tenant A (or `key`'s tenant) that started at `startedAt`. */
    const bunker = async (startedAt: number, body: Record<string, unknown> = {}, key = keyA): Promise<string> => {
      const b = await ok(await call('bunkers', key, 'POST', { image: 'minimal', ...body }), 201);
      await controller.store.bunkers.update(b.id, { started_at: new Date(startedAt).toISOString() });
      return b.id;
    };
    /** Scripts the fake worker's cumulative reading of a bunker (`diskMb` null: the worker cannot say). */
    const reading = (id: string, cpuSeconds: number, memoryMb = 256, diskMb: number | null = 10) => {
      const r: BunkerStats = { cpuUsageNs: cpuSeconds * 1e9, memoryBytes: memoryMb * MB, pids: 3 };
      if (diskMb !== null) r.diskUsedBytes = diskMb * MB;
      worker.readings.set(id, r);
    };
    const rowsOf = (id: string): Promise<UsageRow[]> =>
      controller.store.db.selectFrom('usage').selectAll().where('bunker_id', '=', id).orderBy('minute_start').execute();
    const tick = (at: number) => controller.usageTicker.tick(new Date(at));
    /** Ends (failed: no last reading) every bunker still metered, so the next test starts clean. */
    const endAll = async () => {
      for (const r of await controller.store.bunkers.listMetered()) await controller.services.bunkers.end(r, 'failed', 'test over');
      worker.readings.clear();
    };
    const close = (actual: number, expected: number, what: string) =>
      assert.ok(Math.abs(actual - expected) < 1e-6, `${what}: ${actual}, expected ${expected}`);

    before(async () => {
      db = await dialect.create();
      dir = mkdtempSync(join(tmpdir(), 'sb-usage-'));
      controller = await Controller.open({
        databaseUrl: db.url,
        blobDir: join(dir, 'blobs'),
        workerToken: WORKER_TOKEN,
        config: { usageIntervalMs: 60_000 },
      });
      controller.usageTicker.log = (m) => void logged.push(m);
      platformKey = (await controller.services.tenants.bootstrap()) as string;
      tenantA = (await controller.services.tenants.createTenant(system, 'a')).id;
      tenantB = (await controller.services.tenants.createTenant(system, 'b')).id;
      keyA = await keyFor(tenantA, ['scaibunker:read', 'scaibunker:create']);
      keyB = await keyFor(tenantB, ['scaibunker:read', 'scaibunker:create']);
      worker = await addFakeWorker(controller);
    });
    afterEach(() => endAll());
    after(async () => {
      await controller?.close();
      await db?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('a tick records one row per running bunker: cpu from the cumulative readings, memory and disk × minutes, wall time', async () => {
      const t0 = day(1);
      const b1 = await bunker(t0);
      const b2 = await bunker(t0, { disk_mb: 2048 });
      reading(b1, 2, 256, 10);
      reading(b2, 1, 128, null); // no disk reading: the allocation counts
      const calls = worker.statsCalls.length;

      const first = await tick(t0 + 30_000);
      assert.equal(first.recorded, 2);
      assert.equal(worker.statsCalls.length, calls + 1, 'one stats call for the worker, not one per bunker');
      assert.deepEqual(new Set(worker.statsCalls.at(-1)), new Set([b1, b2]));
      const [r1] = await rowsOf(b1);
      assert.ok(r1);
      assert.equal(r1.tenant_id, tenantA);
      assert.equal(r1.image, 'minimal');
      assert.equal(r1.minute_start, new Date(t0).toISOString());
      close(r1.cpu_seconds, 2, 'cpu since start');
      close(r1.wall_seconds, 30, 'wall');
      close(r1.memory_mb_minutes, 128, '256 MB × ½ min');
      close(r1.disk_mb_minutes, 5, '10 MB × ½ min');
      const [r2] = await rowsOf(b2);
      close(r2?.disk_mb_minutes ?? -1, 1024, 'the 2048 MB allocation × ½ min');

      reading(b1, 5, 512, 20);
      assert.equal((await tick(t0 + 90_000)).recorded, 2);
      const rows = await rowsOf(b1);
      assert.equal(rows.length, 2);
      const r = rows[1] as UsageRow;
      assert.equal(r.minute_start, new Date(t0 + MIN).toISOString());
      assert.equal(r.since_at, new Date(t0 + 30_000).toISOString());
      close(r.cpu_seconds, 3, '5e9 ns − 2e9 ns');
      close(r.wall_seconds, 60, 'wall');
      close(r.memory_mb_minutes, 512, '512 MB × 1 min');
      close(r.disk_mb_minutes, 20, '20 MB × 1 min');
      close((await rowsOf(b2))[1]?.cpu_seconds ?? -1, 0, 'no cpu since the last reading');
    });

    test('a second run of the same minute does not double count; a later sample in the minute is added once', async () => {
      const t0 = day(2);
      const b = await bunker(t0);
      reading(b, 4);
      await tick(t0 + 20_000);
      assert.equal((await tick(t0 + 20_000)).recorded, 0, 'the same tick again records nothing');
      let rows = await rowsOf(b);
      assert.equal(rows.length, 1);
      close(rows[0]?.cpu_seconds ?? -1, 4, 'cpu');

      // Two ticks racing from the same reading (two controllers): counted once.
      reading(b, 6);
      const both = await Promise.all([tick(t0 + 45_000), tick(t0 + 45_000)]);
      assert.equal(both[0].recorded + both[1].recorded, 1);
      rows = await rowsOf(b);
      assert.equal(rows.length, 1, 'still one row for the minute');
      close(rows[0]?.cpu_seconds ?? -1, 6, '4 + 2');
      close(rows[0]?.wall_seconds ?? -1, 45, '20 + 25');
      assert.equal(rows[0]?.sampled_at, new Date(t0 + 45_000).toISOString());

      // Racing across a minute boundary from the same reading: still counted once.
      reading(b, 9);
      const racing = await Promise.allSettled([tick(t0 + 59_000), tick(t0 + 61_000)]);
      const cpu = (await rowsOf(b)).reduce((sum, r) => sum + r.cpu_seconds, 0);
      close(cpu, 9, `cpu counted once (${racing.map((r) => r.status).join(', ')})`);
    });

    test('a paused bunker accrues wall time, memory and disk but no cpu', async () => {
      const t0 = day(3);
      const b = await bunker(t0);
      reading(b, 1);
      await tick(t0 + 30_000);
      await controller.store.bunkers.transition(b, ['running'], 'paused');
      reading(b, 7, 256, 10);
      await tick(t0 + 90_000);
      const paused = (await rowsOf(b))[1] as UsageRow;
      close(paused.cpu_seconds, 0, 'no cpu while paused');
      close(paused.wall_seconds, 60, 'wall');
      close(paused.memory_mb_minutes, 256, 'memory is still held');
      close(paused.disk_mb_minutes, 10, 'disk');
      await controller.store.bunkers.transition(b, ['paused'], 'running');
      reading(b, 8);
      await tick(t0 + 150_000);
      close((await rowsOf(b))[2]?.cpu_seconds ?? -1, 1, 'after resume: only what ran since the paused reading');
    });

    test('an ended bunker is not ticked; a terminated one gets its last reading, even if it lived less than a tick', async () => {
      const t0 = day(4);
      const failed = await bunker(t0);
      reading(failed, 1);
      await tick(t0 + 30_000);
      const row = await controller.store.bunkers.getById(failed);
      assert.ok(row);
      await controller.services.bunkers.end(row, 'failed', 'worker_lost: test');
      reading(failed, 5);
      const calls = worker.statsCalls.length;
      await tick(t0 + 90_000);
      assert.equal((await rowsOf(failed)).length, 1, 'no row after it ended');
      assert.ok(!worker.statsCalls.slice(calls).some((ids) => ids.includes(failed)), 'the worker was not asked about it');

      // Terminated after 20 s, before any tick: its last reading is taken as it ends.
      const short = await bunker(Date.now() - 20_000);
      reading(short, 3, 100, 1);
      await ok(await call(`bunkers/${short}`, keyA, 'DELETE'));
      const pending = await controller.store.db.selectFrom('usage_final_samples').selectAll().where('bunker_id', '=', short).execute();
      assert.equal(pending.length, 1, 'its last reading waits for the tick');
      worker.readings.clear();
      const result = await tick(Date.now());
      assert.equal(result.closed, 1);
      const rows = await rowsOf(short);
      assert.equal(rows.length, 1);
      close(rows[0]?.cpu_seconds ?? -1, 3, 'cpu');
      assert.ok((rows[0]?.wall_seconds ?? 0) >= 20 && (rows[0]?.wall_seconds ?? 0) < 30, `wall ${rows[0]?.wall_seconds}`);
      assert.equal(
        (await controller.store.db.selectFrom('usage_final_samples').selectAll().where('bunker_id', '=', short).execute()).length,
        0,
      );
      assert.equal((await tick(Date.now() + MIN)).closed, 0, 'closed once');
      assert.equal((await rowsOf(short)).length, 1);
    });

    test('a worker that does not answer is skipped and logged; the next tick covers the gap', async () => {
      const t0 = day(5);
      const b = await bunker(t0);
      reading(b, 2);
      worker.failStats.on = true;
      logged.length = 0;
      try {
        const r = await tick(t0 + 60_000);
        assert.deepEqual(r.skipped_workers, [worker.id]);
        assert.equal(r.recorded, 0);
      } finally {
        worker.failStats.on = false;
      }
      assert.match(logged.join('\n'), new RegExp(`worker ${worker.id} did not answer`));
      assert.equal((await rowsOf(b)).length, 0);
      await tick(t0 + 120_000);
      const [r] = await rowsOf(b);
      close(r?.wall_seconds ?? -1, 120, 'wall since start');
      close(r?.cpu_seconds ?? -1, 2, 'cpu');
    });

    test('ticks run under the job lease: one controller at a time', async () => {
      const job = () => controller.usageTicker.tick(new Date(day(6)));
      const a = new Ticker('usage-lease-test', 60_000, job, { store: controller.store.leases, holder: newId('ctl') });
      const b = new Ticker('usage-lease-test', 60_000, job, { store: controller.store.leases, holder: newId('ctl') });
      assert.equal(await a.tick(), true);
      assert.equal(await b.tick(), false, 'the other controller holds the lease');
      await a.stop();
      assert.equal(await b.tick(), true, 'released: the other one takes over');
      await b.stop();
    });

    describe('GET /usage', () => {
      const d1 = Date.UTC(2031, 4, 1);
      const d2 = Date.UTC(2031, 4, 2);
      let a1: string;
      let a2: string;
      let b1: string;
      const row = (bunkerId: string, tenantId: string, image: string, at: number, v: number): UsageRow => ({
        id: newId('us'),
        tenant_id: tenantId,
        bunker_id: bunkerId,
        image,
        minute_start: new Date(at).toISOString(),
        since_at: new Date(at - 1).toISOString(),
        sampled_at: new Date(at + 30_000).toISOString(),
        cpu_seconds: v,
        memory_mb_minutes: v * 10,
        disk_mb_minutes: v * 100,
        wall_seconds: 60,
        cpu_usage_ns: 0,
        created_at: new Date().toISOString(),
      });
      const range = `from=${new Date(d1).toISOString()}&to=2031-05-03`;

      before(async () => {
        a1 = await bunker(d1, { image: 'minimal' });
        a2 = await bunker(d1, { image: 'python' });
        b1 = await bunker(d1, {}, keyB);
        await endAll();
        await controller.store.usage.record([
          row(a1, tenantA, 'minimal', d1 + 10 * MIN, 1),
          row(a1, tenantA, 'minimal', d1 + 11 * MIN, 2),
          row(a1, tenantA, 'minimal', d2 + 60 * MIN, 4),
          row(a2, tenantA, 'python', d1 + 10 * MIN, 8),
          row(a2, tenantA, 'python', d2 + 61 * MIN, 16),
          row(b1, tenantB, 'minimal', d1 + 10 * MIN, 1000),
        ]);
      });

      test('sums per bunker, day, hour, image and in total', async () => {
        const byBunker = await ok(await call(`usage?${range}&group_by=bunker`, keyA));
        assert.equal(byBunker.group_by, 'bunker');
        assert.equal(byBunker.from, new Date(d1).toISOString());
        assert.equal(byBunker.to, '2031-05-03T00:00:00.000Z');
        assert.deepEqual(
          byBunker.items.map((i: Json) => [i.key, i.cpu_seconds, i.memory_mb_minutes, i.disk_mb_minutes, i.wall_seconds]).sort(),
          [
            [a1, 7, 70, 700, 180],
            [a2, 24, 240, 2400, 120],
          ].sort(),
        );
        const byDay = await ok(await call(`usage?${range}&group_by=day`, keyA));
        assert.deepEqual(
          byDay.items.map((i: Json) => [i.key, i.cpu_seconds]),
          [
            ['2031-05-01', 11],
            ['2031-05-02', 20],
          ],
        );
        const byHour = await ok(await call(`usage?${range}&group_by=hour`, keyA));
        assert.deepEqual(
          byHour.items.map((i: Json) => [i.key, i.cpu_seconds]),
          [
            ['2031-05-01T00:00:00.000Z', 11],
            ['2031-05-02T01:00:00.000Z', 20],
          ],
        );
        const byImage = await ok(await call(`usage?${range}&group_by=image`, keyA));
        assert.deepEqual(
          byImage.items.map((i: Json) => [i.key, i.cpu_seconds]),
          [
            ['minimal', 7],
            ['python', 24],
          ],
        );
        const total = await ok(await call(`usage?${range}`, keyA));
        assert.equal(total.group_by, 'none');
        assert.deepEqual(total.items, [{ key: null, cpu_seconds: 31, memory_mb_minutes: 310, disk_mb_minutes: 3100, wall_seconds: 300 }]);
      });

      test('from is inclusive, to exclusive, by the minute a row was sampled in; offsets and plain dates are accepted', async () => {
        const firstDay = await ok(await call('usage?from=2031-05-01&to=2031-05-02&group_by=bunker', keyA));
        assert.deepEqual(
          firstDay.items.map((i: Json) => [i.key, i.cpu_seconds]).sort(),
          [
            [a1, 3],
            [a2, 8],
          ].sort(),
        );
        const oneMinute = await ok(await call(`usage?from=2031-05-01T00:11:00Z&to=2031-05-01T00:12:00Z`, keyA));
        assert.equal(oneMinute.items[0].cpu_seconds, 2);
        // 03:00+02:00 is 01:00Z: only d2's 01:00 and 01:01 rows are at or after it
        const offset = await ok(await call(`usage?from=${encodeURIComponent('2031-05-02T03:00:00+02:00')}&to=2031-05-03`, keyA));
        assert.equal(offset.from, '2031-05-02T01:00:00.000Z');
        assert.equal(offset.items[0].cpu_seconds, 20);
        const none = await ok(await call('usage?from=2031-06-01&to=2031-06-02&group_by=day', keyA));
        assert.deepEqual(none.items, []);
        const defaults = await ok(await call('usage', keyB)); // tenant B has no usage in the last day
        assert.equal(Date.parse(defaults.to) - Date.parse(defaults.from), 86_400_000, 'default: the last 24 hours');
        assert.deepEqual(defaults.items, [{ key: null, cpu_seconds: 0, memory_mb_minutes: 0, disk_mb_minutes: 0, wall_seconds: 0 }]);
      });

      test("a tenant sees only its own usage; platform admins another tenant's with tenant_id", async () => {
        const b = await ok(await call(`usage?${range}&group_by=bunker`, keyB));
        assert.deepEqual(
          b.items.map((i: Json) => [i.key, i.cpu_seconds]),
          [[b1, 1000]],
        );
        const sneaky = await call(`usage?${range}&tenant_id=${tenantA}`, keyB);
        assert.equal(sneaky.statusCode, 404);
        assert.equal(sneaky.json().error.code, 'TENANT_NOT_FOUND');
        const asAdmin = await ok(await call(`usage?${range}&tenant_id=${tenantA}`, platformKey));
        assert.equal(asAdmin.items[0].cpu_seconds, 31);
        const readOnly = await keyFor(tenantA, ['scaibunker:read']);
        assert.equal((await ok(await call(`usage?${range}`, readOnly))).items[0].cpu_seconds, 31, 'scaibunker:read is enough');
        const noRead = await keyFor(tenantA, ['scaibunker:create']);
        assert.equal((await call(`usage?${range}`, noRead)).statusCode, 403);
      });

      test('bad dates, to <= from, a range over 92 days and an unknown group_by are VALIDATION_FAILED', async () => {
        for (const [query, field] of [
          ['from=yesterday&to=2031-05-03', 'querystring/from'],
          ['from=2031-02-30&to=2031-05-03', 'querystring/from'],
          ['from=2031-05-01T25:00:00Z&to=2031-05-03', 'querystring/from'],
          ['from=2031-05-01T10:00:00&to=2031-05-03', 'querystring/from'],
          ['from=2031-05-01&to=2031-13-01', 'querystring/to'],
          ['from=2031-05-02&to=2031-05-02', 'querystring/to'],
          ['from=2031-05-03&to=2031-05-02', 'querystring/to'],
          ['from=2031-01-01&to=2031-05-01', 'querystring/from'],
          [`${range}&group_by=user`, 'querystring/group_by'],
          [`${range}&bunker=x`, 'querystring'],
        ]) {
          const res = await call(`usage?${query}`, keyA);
          assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
          const err = res.json().error;
          assert.equal(err.code, 'VALIDATION_FAILED', query);
          assert.equal(err.details.field, field, query);
        }
        // exactly 92 days is allowed
        await ok(await call('usage?from=2031-01-01&to=2031-04-03', keyA));
      });
    });
  });
}
