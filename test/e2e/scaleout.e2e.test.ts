/**
 * Scale-out for real: two `scaibunker controller` processes on one PostgreSQL database (fresh per
 * run) and one Redis (a private redis-server, so killing it hurts no other suite), one
 * `scaibunker worker` heartbeating to controller A only. Any bunker is driven through either
 * controller; placement never overcommits the worker; every background tick runs on one
 * controller at a time; quotas hold across both under fifty concurrent creates, survive a Redis
 * restart without drift, and a controller killed mid-create leaves no charge behind.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, type ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import { Cluster, sqlQuery } from './cluster.js';
import { eventually, IMAGE_DIR, mountsUnder } from './harness.js';

/** Creates still pending/provisioning after this long lost their controller (the sweeper fails them). */
const STUCK_CREATE_MS = 8000;
const QUOTA_USER = 'quota-user';
const QUOTA_CAP = 10;
const SMALL = { image: 'minimal', cpu_millicores: 250, memory_mb: 64, disk_mb: 64 } as const;

interface Tick {
  job: string;
  holder: string;
  start: number;
  end: number;
  result: string;
}

describe('two controllers, one PostgreSQL, one Redis, one worker', () => {
  let cluster: Cluster | undefined;
  let tenantId = '';
  let tenantKey = '';
  let quotaKey = '';
  /** The tenant's admin key on controller i. */
  let on: (i: number) => ScaiBunkerClient;
  /** The quota-capped user's key on controller i. */
  let capped: (i: number) => ScaiBunkerClient;

  const c = (): Cluster => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
  const usage = async (i = 0): Promise<number> => {
    const item = (await capped(i).quotas.usage()).find((u) => u.bucket.kind === 'user' && u.bucket.id === QUOTA_USER);
    return item?.resources.bunkers.current ?? 0;
  };
  /** The tenant's bunkers that have not ended, straight from the rows. */
  const activeRows = async () =>
    sqlQuery<{ id: string; state: string }>(
      c().db.url,
      `SELECT id, state FROM bunkers WHERE tenant_id = $1 AND state IN ('pending','provisioning','running','paused','snapshotting')`,
      [tenantId],
    );
  const ticks = (): Tick[] =>
    c()
      .controllerHistory.flatMap((p) => p.output().split('\n'))
      .flatMap((line) => {
        const m = /^\[jobs\] tick (\S+) holder=(\S+) start=(\d+) end=(\d+) result=(.*)$/.exec(line);
        return m ? [{ job: m[1] as string, holder: m[2] as string, start: Number(m[3]), end: Number(m[4]), result: m[5] as string }] : [];
      });

  before(async () => {
    cluster = await Cluster.start({
      // A restarted controller A must be back before the worker counts as offline (3 intervals).
      heartbeatMs: 2000,
      controllerArgs: [
        '--sweep-interval-ms',
        '200',
        '--monitor-interval-ms',
        '200',
        '--stuck-create-ms',
        String(STUCK_CREATE_MS),
        '--trace-jobs',
      ],
    });
    const admin = cluster.client(0, cluster.adminKey);
    const tenant = await admin.admin.createTenant('scaleout');
    tenantId = tenant.id;
    tenantKey = (await admin.admin.createApiKey(tenant.id, 'admin', ['scaibunker:admin:tenant'])).key;
    quotaKey = (
      await admin.admin.createApiKey(tenant.id, 'capped', ['scaibunker:create', 'scaibunker:read', 'scaibunker:execute'], {
        user_id: QUOTA_USER,
      })
    ).key;
    on = (i) => c().client(i, tenantKey);
    capped = (i) => c().client(i, quotaKey);
    const profile = await on(1).quotas.create({ name: 'cap', max_bunkers: QUOTA_CAP });
    await on(0).quotas.assign(profile.id, 'user', QUOTA_USER);
  });

  after(async () => {
    if (!cluster) return;
    // A failed test may leave bunkers: end them through the product first, so that what the
    // forced cleanup below finds is only what the product lost.
    const live = cluster.controllers.findIndex((p) => p && p.child.exitCode === null && p.child.signalCode === null);
    if (live >= 0 && tenantKey) {
      for await (const b of Bunker.list({}, cluster.client(live, tenantKey))) {
        if (b.state !== 'terminated' && b.state !== 'failed') await b.terminate().catch(() => undefined);
      }
    }
    const { orphans, mounts } = await cluster.close();
    assert.deepEqual(mounts, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  test('both controllers started together on a fresh database: one platform tenant, each built-in image once', async () => {
    const [{ n: platforms }] = (await sqlQuery<{ n: number }>(
      c().db.url,
      `SELECT count(*)::int AS n FROM tenants WHERE name = 'platform'`,
    )) as [{ n: number }];
    assert.equal(platforms, 1);
    const catalog = JSON.parse(readFileSync(join(IMAGE_DIR, 'catalog.json'), 'utf8')) as unknown[];
    const images = await sqlQuery<{ name: string }>(c().db.url, `SELECT name FROM images WHERE scope = 'platform'`);
    assert.equal(images.length, catalog.length);
    assert.equal(new Set(images.map((i) => i.name)).size, images.length);
  });

  for (const [from, to] of [
    [0, 1],
    [1, 0],
  ] as const) {
    const name = (i: number) => (i === 0 ? 'A' : 'B');
    test(`a bunker created through ${name(from)} runs commands, serves files and output, and ends through ${name(to)}`, async () => {
      const made = await Bunker.create({ image: 'minimal' }, on(from));
      assert.equal(made.state, 'running');
      const there = await Bunker.connect(made.id, on(to));
      assert.equal((await there.exec(['echo', `via ${name(to)}`])).stdout, `via ${name(to)}\n`);
      await made.files.write('/tmp/f', `written via ${name(from)}`);
      assert.equal((await there.files.read('/tmp/f')).toString(), `written via ${name(from)}`);
      await there.files.write('/tmp/g', 'back');
      assert.equal((await made.files.read('/tmp/g')).toString(), 'back');
      // Output past the inline cap is stored by the controller that ran the exec and read through the other.
      const big = await there.exec('head -c 1200000 /dev/zero | tr "\\0" a');
      assert.equal(big.truncated, true);
      assert.equal((await made.fullOutput(big.exec_id)).length, 1_200_000);
      const logs = await made.execLogs();
      assert.ok(
        logs.some((l) => l.command.includes(`via ${name(to)}`) && l.exit_code === 0),
        'the exec log is shared',
      );
      // Each controller caches running bunkers for exec; a change made through the other reaches it at once.
      assert.equal((await there.pause()).state, 'paused');
      await assert.rejects(made.exec(['true']), (e: unknown) => e instanceof ScaiBunkerError && e.code === 'BUNKER_NOT_RUNNING');
      assert.equal((await there.resume()).state, 'running');
      assert.equal((await made.exec(['echo', 'resumed'])).stdout, 'resumed\n');
      assert.equal((await there.terminate()).state, 'terminated');
      assert.equal((await made.refresh()).state, 'terminated');
      await assert.rejects(made.exec(['true']), (e: unknown) => e instanceof ScaiBunkerError && e.code === 'BUNKER_NOT_RUNNING');
    });
  }

  test('placement across both controllers never takes more of the worker than it has', async () => {
    const [w] = await c().client(0, c().adminKey).workers.list();
    assert.ok(w, 'the worker is registered');
    assert.equal(w.allocated.memory_mb, 0, 'nothing else placed');
    // Room for exactly three of these on the worker's memory.
    const memory = Math.floor(w.capacity.memory_mb / 3);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        Bunker.create({ image: 'minimal', cpu_millicores: 250, memory_mb: memory, disk_mb: 64 }, on(i % 2)),
      ),
    );
    const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      const refused = results.filter((r) => r.status === 'rejected' && (r.reason as ScaiBunkerError).code === 'NO_SUITABLE_WORKER');
      assert.equal(made.length, 3, `three placed (${results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('; ')})`);
      assert.equal(refused.length, 5);
      const [after] = await c().client(1, c().adminKey).workers.list();
      assert.ok((after?.allocated.memory_mb ?? 0) <= w.capacity.memory_mb);
    } finally {
      await Promise.all(made.map((b) => b.terminate()));
    }
  });

  test('every background tick runs on one controller at a time, across a hand-over', async () => {
    // A bunker the sweeper must end exactly once.
    const idle = await Bunker.create({ ...SMALL, idle_timeout_s: 1 }, on(1));
    const swept = await eventually('idle bunker swept', async () => {
      const s = await idle.refresh();
      return s.state === 'terminated' ? s : undefined;
    });
    assert.equal(swept.termination_reason, 'idle_timeout');
    // The row moves before the tick ends (it still destroys the bunker on its worker): hand over
    // only once the sweeping tick is traced, or stopping its controller could cut it short.
    await eventually('the sweeping tick traced', async () =>
      ticks().some((t) => t.job === 'sweeper' && t.result.includes(idle.id)) ? true : undefined,
    );
    // The jobs that tick every 200 ms here; any other traced job is checked for overlaps too.
    const fast = ['sweeper', 'heartbeat-monitor'];
    for (const job of fast)
      assert.ok(
        ticks().some((t) => t.job === job),
        `${job} is traced`,
      );

    // Hand the jobs over: stop the controller that holds the sweeper (it releases its leases), let
    // the other take over, then bring it back.
    const latest = (job: string) =>
      ticks()
        .filter((t) => t.job === job)
        .sort((a, b) => b.end - a.end)[0];
    const holder = latest('sweeper')?.holder;
    const holderIndex = c().controllers.findIndex((p) => p?.output().includes(`holder=${holder} `));
    assert.ok(holderIndex >= 0, 'the holder is a running controller');
    await c().stopController(holderIndex);
    for (const job of fast) {
      await eventually(`${job} taken over`, async () => (ticks().some((t) => t.job === job && t.holder !== holder) ? true : undefined));
    }
    await c().startController(holderIndex);
    const ticksBefore = ticks().length;
    await eventually('ticking on', async () => (ticks().length > ticksBefore + 10 ? true : undefined));

    const all = ticks();
    for (const job of new Set(all.map((t) => t.job))) {
      const runs = all.filter((t) => t.job === job).sort((a, b) => a.start - b.start || a.end - b.end);
      if (fast.includes(job)) assert.ok(new Set(runs.map((t) => t.holder)).size >= 2, `${job} ran on both controllers over the test`);
      for (let i = 1; i < runs.length; i++) {
        const [prev, cur] = [runs[i - 1] as Tick, runs[i] as Tick];
        assert.ok(cur.start >= prev.end, `${job}: a tick of ${cur.holder} started before one of ${prev.holder} ended`);
      }
    }
    const sweptBy = all.filter((t) => t.job === 'sweeper' && t.result.includes(idle.id));
    assert.equal(sweptBy.length, 1, 'the idle bunker was swept by exactly one tick');
    const leases = await sqlQuery<{ job: string }>(c().db.url, 'SELECT job FROM job_leases');
    for (const job of fast) assert.equal(leases.filter((l) => l.job === job).length, 1, `one lease row for ${job}`);
  });

  test(`fifty concurrent creates split across both controllers against a cap of ${QUOTA_CAP}: exactly ${QUOTA_CAP} run`, async () => {
    assert.equal(await usage(), 0);
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => Bunker.create(SMALL, capped(i % 2))));
    const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    try {
      const refused = results.filter(
        (r) =>
          r.status === 'rejected' && r.reason instanceof ScaiBunkerError && r.reason.code === 'QUOTA_EXCEEDED' && r.reason.status === 429,
      );
      assert.equal(made.length, QUOTA_CAP, 'exactly the cap');
      assert.equal(refused.length, 50 - QUOTA_CAP, 'every other create is QUOTA_EXCEEDED');
      assert.equal(new Set(made.map((b) => b.id)).size, QUOTA_CAP);
      assert.equal(await usage(0), QUOTA_CAP);
      assert.equal(await usage(1), QUOTA_CAP);
      assert.equal((await activeRows()).length, QUOTA_CAP, 'refused creates leave no row');
    } finally {
      await Promise.all(made.map((b, i) => Bunker.connect(b.id, capped(i % 2)).then((x) => x.terminate())));
    }
    assert.equal(await usage(0), 0);
    assert.equal(await usage(1), 0);
  });

  test('Redis killed and restarted empty: the next create rebuilds the counters from the rows, with no drift', async () => {
    const made = await Promise.all([0, 1, 0].map((i) => Bunker.create(SMALL, capped(i))));
    assert.equal(await usage(), 3);
    await c().redis.kill('SIGKILL');
    // While Redis is gone a capped create cannot be counted: it fails, and leaves no charge.
    await assert.rejects(Bunker.create(SMALL, capped(1)));
    await c().redis.startProcess();
    const next = await eventually('a create after the restart', async () => Bunker.create(SMALL, capped(1)).catch(() => undefined));
    made.push(next);
    assert.equal(await usage(1), 4, 'the three running before the wipe plus the new one');
    assert.equal(await usage(0), 4);
    assert.equal((await activeRows()).length, 4);
    await Promise.all(made.map((b) => b.terminate()));
    assert.equal(await usage(0), 0);
    assert.equal(await usage(1), 0);
  });

  test('a controller killed mid-create: the bunker ends failed and its charge is released', async () => {
    const cl = c();
    assert.equal(await usage(0), 0);
    const worker = cl.worker;
    assert.ok(worker);
    // Hold the spawn on the worker, so the create is caught between its charge and its end.
    worker.child.kill('SIGSTOP');
    let resumed = false;
    const resume = () => {
      if (!resumed) worker.child.kill('SIGCONT');
      resumed = true;
    };
    let stuckId: string;
    try {
      const creating = Bunker.create(SMALL, capped(1)).then(
        () => undefined,
        (e: unknown) => e,
      );
      const stuck = await eventually(
        'the create reached provisioning',
        async () => (await activeRows()).find((r) => r.state === 'provisioning'),
        15_000,
      );
      stuckId = stuck.id;
      assert.equal(await usage(0), 1, 'charged while provisioning');
      await cl.stopController(1, 'SIGKILL');
      resume();
      assert.ok((await creating) instanceof Error, 'the caller of the dead controller gets an error');
    } finally {
      resume();
    }
    const failed = await eventually(
      'the stuck create failed',
      async () => {
        const b = await Bunker.connect(stuckId, on(0));
        return b.state === 'failed' ? b.info : undefined;
      },
      STUCK_CREATE_MS + 20_000,
    );
    assert.equal(failed.termination_reason, 'provision_failed: controller lost');
    assert.equal(await usage(0), 0, 'the charge is released');
    // What the worker started for it is destroyed too.
    await eventually('the bunker is gone from the worker', async () =>
      mountsUnder(join(cl.workerDataDir, 'bunkers')).length === 0 ? true : undefined,
    );
    // The killed controller comes back and serves as before.
    await cl.startController(1);
    const b = await Bunker.create(SMALL, capped(1));
    assert.equal((await b.exec(['true'])).exit_code, 0);
    assert.equal(await usage(0), 1);
    await Bunker.connect(b.id, capped(0)).then((x) => x.terminate());
    assert.equal(await usage(1), 0);
  });
});
