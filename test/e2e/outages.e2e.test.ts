/**
 * Outages of the backing services, for real: the test PostgreSQL restarted and stopped under two
 * `scaibunker controller` processes, their private Redis killed and restarted empty, and the S3
 * server (s3rver) killed under `scaibunker proxy` mid-upload and mid-download. No process ever
 * exits; requests that need what is gone answer 503 with the outage's code and Retry-After,
 * quickly; execs on a running bunker whose row and key are cached keep working and none of their
 * exec-log rows is lost; once the service is back everything works again, with no drift.
 *
 * The PostgreSQL here is the shared test cluster: the suite runs files one at a time, and every
 * test that stops it brings it back (and waits for it to answer) even when it fails.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Bunker, type ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import { type S3rverServer, startS3rver } from '../../packages/controller/test/helpers/s3rver.js';
import { Cluster, sqlQuery } from './cluster.js';
import { eventually, ServerProcess, tempDataDir } from './harness.js';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;
/** "Quickly": an outage answer must not wait for a connect timeout. Generous on a busy 2-core machine. */
const QUICK_MS = 5000;
/** Creates still pending/provisioning after this long lost their controller (the sweeper fails them). */
const STUCK_CREATE_MS = 8000;
/** How long the PostgreSQL stop lasts: well past the few seconds a controller may cache a row or a key for. */
const LONG_OUTAGE_MS = 20_000;
/** Worker heartbeats here: a worker silent for 3 intervals is offline. */
const HEARTBEAT_MS = 2000;
/** How long Redis stays down: past the heartbeat timeout (3 × HEARTBEAT_MS). */
const REDIS_OUTAGE_MS = 12_000;
const SMALL = { image: 'minimal', cpu_millicores: 250, memory_mb: 64, disk_mb: 64 } as const;
const API = '/v1/modules/scaibunker';
const ACTIVE = `('pending','provisioning','running','paused','snapshotting')`;

// ---------------------------------------------------------------------------------------------
// PostgreSQL control (the shared test cluster)

const PG_VERSION = execFileSync('bash', ['-c', 'ls /usr/lib/postgresql | sort -n | tail -1'], { encoding: 'utf8' }).trim();

async function pgctl(action: 'restart' | 'stop' | 'start'): Promise<void> {
  await execFileP('pg_ctlcluster', [PG_VERSION, 'main', action]);
}

/**
 * The shared test PostgreSQL is still down: another test run on this machine (scripts/test-services.sh
 * starts it when it finds it down) would make an outage test's observations meaningless.
 */
async function assertPgStillDown(what: string): Promise<void> {
  const running = await execFileP('pg_ctlcluster', [PG_VERSION, 'main', 'status']).then(
    () => true,
    () => false,
  );
  assert.ok(
    !running,
    `${what}: the test PostgreSQL was started again by something else during this test's outage (a concurrent test run?)`,
  );
}

/** Starts the test PostgreSQL if it is down and waits until it answers a query. */
async function ensurePgUp(): Promise<void> {
  const running = await execFileP('pg_ctlcluster', [PG_VERSION, 'main', 'status']).then(
    () => true,
    () => false,
  );
  if (!running) await pgctl('start');
  const admin = process.env.SCAIBUNKER_TEST_PG_URL;
  if (!admin) throw new Error('SCAIBUNKER_TEST_PG_URL is not set');
  await eventually(
    'PostgreSQL answers',
    async () =>
      sqlQuery(admin, 'SELECT 1').then(
        () => true,
        () => undefined,
      ),
    60_000,
  );
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP, to see statuses, bodies, Retry-After and how long an answer took

interface RawAnswer {
  status: number;
  retryAfter: string | null;
  body: any;
  text: string;
  ms: number;
}

async function raw(base: string, method: string, path: string, key?: string, json?: unknown): Promise<RawAnswer> {
  const started = Date.now();
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body, text, ms: Date.now() - started };
}

/** A 503 outage answer: the code, the error body's shape, Retry-After, and quick. */
/** How long each outage answer took, printed by the tests (the bound asserted is generous). */
const outageTimings: string[] = [];

function assertOutage(r: RawAnswer, code: string, what: string, maxMs = QUICK_MS): void {
  outageTimings.push(`${what}: ${r.status} in ${r.ms} ms`);
  assert.equal(r.status, 503, `${what}: expected 503 ${code}, got ${r.status} ${r.text.slice(0, 400)}`);
  assert.equal(r.body?.error?.code, code, `${what}: ${r.text.slice(0, 400)}`);
  assert.equal(typeof r.body.error.message, 'string', `${what}: error.message`);
  assert.ok(r.body.error.details !== null && typeof r.body.error.details === 'object', `${what}: error.details is an object`);
  assert.match(r.retryAfter ?? '', /^\d+$/, `${what}: Retry-After (seconds) is set`);
  assert.ok(Number(r.retryAfter) >= 1, `${what}: Retry-After is at least a second`);
  assert.ok(r.ms < maxMs, `${what}: answered in ${r.ms} ms (at most ${maxMs} ms)`);
}

interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; error?: string; [k: string]: unknown }>;
}

async function readyz(base: string): Promise<RawAnswer & { body: Readiness }> {
  return (await raw(base, 'GET', '/readyz')) as RawAnswer & { body: Readiness };
}

function assertReady(r: RawAnswer & { body: Readiness }, what: string): void {
  assert.equal(r.status, 200, `${what}: /readyz ${r.status} ${r.text}`);
  assert.equal(r.body.ready, true, `${what}: ready`);
  for (const check of ['database', 'live_state', 'blob_store', 'disk']) {
    assert.equal(r.body.checks?.[check]?.ok, true, `${what}: checks.${check}.ok (${r.text})`);
  }
}

function assertNotReady(r: RawAnswer & { body: Readiness }, failing: string, healthy: string[], what: string): void {
  assert.equal(r.status, 503, `${what}: /readyz ${r.status} ${r.text}`);
  assert.equal(r.body.ready, false, `${what}: ready is false`);
  assert.equal(r.body.checks?.[failing]?.ok, false, `${what}: checks.${failing}.ok is false (${r.text})`);
  assert.equal(typeof r.body.checks[failing]?.error, 'string', `${what}: checks.${failing}.error says why`);
  assert.ok((r.body.checks[failing]?.error ?? '').length > 0, `${what}: checks.${failing}.error is not empty`);
  for (const check of healthy) assert.equal(r.body.checks?.[check]?.ok, true, `${what}: checks.${check}.ok (${r.text})`);
  assert.ok(r.ms < QUICK_MS, `${what}: /readyz answered in ${r.ms} ms`);
}

const tail = (p: ServerProcess | undefined, n = 40) => (p?.output() ?? '(no process)').split('\n').slice(-n).join('\n');

const alive = (p: ServerProcess | undefined): boolean => !!p && p.child.exitCode === null && p.child.signalCode === null;

/** What a rejected SDK call says: its status and code, or what else it was. */
function describeError(e: unknown): { status: number; code: string; message: string } {
  if (e instanceof ScaiBunkerError) return { status: e.status, code: e.code, message: e.message };
  return { status: 0, code: 'NOT_AN_API_ERROR', message: String(e) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterEach(() => {
  if (outageTimings.length > 0) console.log(`[outages] answer times: ${outageTimings.splice(0).join('; ')}`);
});

// ---------------------------------------------------------------------------------------------

describe('two controllers and a worker through PostgreSQL and Redis outages', () => {
  let cluster: Cluster | undefined;
  let tenantId = '';
  let tenantKey = '';
  let cappedKey = '';
  /** Process ids of controller A, controller B and the worker, as started. */
  let pids: number[] = [];
  let on: (i: number) => ScaiBunkerClient;
  let capped: (i: number) => ScaiBunkerClient;
  /** A bunker running through every test, its row and the keys cached on both controllers. */
  let steady: Bunker;

  const c = (): Cluster => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
  const activeRows = async () =>
    sqlQuery<{ id: string; state: string; created_by: string }>(
      c().db.url,
      `SELECT id, state, created_by FROM bunkers WHERE tenant_id = $1 AND state IN ${ACTIVE}`,
      [tenantId],
    );
  const processes = () => [c().controllers[0], c().controllers[1], c().worker];
  const names = ['controller A', 'controller B', 'worker'];

  /** Throws as soon as a process has exited: waiting on would only time out. */
  const failIfDied = () => {
    processes().forEach((p, i) => {
      if (!alive(p)) throw new Error(`${names[i]} exited:\n${tail(p)}`);
    });
  };

  /** Every process is the one started in before() and never exited. */
  const assertSameProcesses = () => {
    processes().forEach((p, i) => {
      assert.ok(alive(p), `${names[i]} exited:\n${tail(p)}`);
      assert.equal(p?.child.pid, pids[i], `${names[i]} is the process started at first`);
    });
    assert.equal(c().controllerHistory.length, 2, 'no controller was restarted');
  };

  /** Waits until both controllers are ready again after an outage. */
  const bothReady = async (what: string) => {
    for (const i of [0, 1]) {
      await eventually(`controller ${i} ready after ${what}`, async () => ((await readyz(c().url(i))).status === 200 ? true : undefined));
      assertReady(await readyz(c().url(i)), `controller ${i} after ${what}`);
    }
  };

  /** The capped user's usage as controller i reports it. */
  const cappedUsage = async (i: number): Promise<number> => {
    const item = (await capped(i).quotas.usage()).find((u) => u.bucket.kind === 'user' && u.bucket.id === 'capped-user');
    return item?.resources.bunkers.current ?? 0;
  };

  /** Exec-log rows of these execs, completed. */
  const assertExecLogsWritten = async (execIds: string[], what: string) => {
    const missing = await eventually(
      `every exec-log row of ${what} in the database`,
      async () => {
        const rows = await sqlQuery<{ id: string; exit_code: number | null }>(
          c().db.url,
          'SELECT id, exit_code FROM exec_logs WHERE id = ANY($1) AND finished_at IS NOT NULL',
          [execIds],
        );
        const have = new Set(rows.map((r) => r.id));
        const missing = execIds.filter((id) => !have.has(id));
        if (missing.length > 0) return undefined;
        for (const r of rows) assert.equal(r.exit_code, 0, `exec ${r.id} is logged with its exit code`);
        return missing;
      },
      60_000,
    ).catch(async (err: Error) => {
      const rows = await sqlQuery<{ id: string }>(c().db.url, 'SELECT id FROM exec_logs WHERE id = ANY($1) AND finished_at IS NOT NULL', [
        execIds,
      ]);
      const have = new Set(rows.map((r) => r.id));
      const lost = execIds.filter((id) => !have.has(id));
      assert.fail(
        `${err.message}: ${lost.length} of ${execIds.length} exec-log rows missing (e.g. ${lost.slice(0, 5).join(', ')})\n` +
          `controller A:\n${tail(c().controllers[0], 20)}\ncontroller B:\n${tail(c().controllers[1], 20)}`,
      );
    });
    assert.deepEqual(missing, []);
  };

  before(async () => {
    await ensurePgUp();
    cluster = await Cluster.start({
      heartbeatMs: HEARTBEAT_MS,
      controllerArgs: ['--sweep-interval-ms', '200', '--monitor-interval-ms', '200', '--stuck-create-ms', String(STUCK_CREATE_MS)],
    });
    pids = [cluster.controllers[0]?.child.pid ?? 0, cluster.controllers[1]?.child.pid ?? 0, cluster.worker?.child.pid ?? 0];
    const admin = cluster.client(0, cluster.adminKey);
    const tenant = await admin.admin.createTenant('outages');
    tenantId = tenant.id;
    tenantKey = (await admin.admin.createApiKey(tenant.id, 'admin', ['scaibunker:admin:tenant'])).key;
    cappedKey = (
      await admin.admin.createApiKey(tenant.id, 'capped', ['scaibunker:create', 'scaibunker:read', 'scaibunker:execute'], {
        user_id: 'capped-user',
      })
    ).key;
    on = (i) => c().client(i, tenantKey);
    capped = (i) => c().client(i, cappedKey);
    const profile = await on(0).quotas.create({ name: 'cap', max_bunkers: 5 });
    await on(1).quotas.assign(profile.id, 'user', 'capped-user');
    steady = await Bunker.create({ ...SMALL, idle_timeout_s: 3600 }, on(0));
    assert.equal(steady.state, 'running');
  });

  after(async () => {
    if (!cluster) {
      await ensurePgUp();
      return;
    }
    // Whatever failed, the services come back first: the product ends what it made through them.
    await ensurePgUp();
    await cluster.redis.startProcess().catch(() => undefined);
    const live = cluster.controllers.findIndex((p) => alive(p));
    if (live >= 0 && tenantKey) {
      const client = cluster.client(live, tenantKey);
      await eventually(
        'the API answers again',
        async () =>
          client.quotas
            .list()
            .then(() => true)
            .catch(() => undefined),
        30_000,
      ).catch(() => undefined);
      for await (const b of Bunker.list({}, client)) {
        if (b.state !== 'terminated' && b.state !== 'failed') await b.terminate().catch(() => undefined);
      }
    }
    const { orphans, mounts } = await cluster.close();
    assert.deepEqual(mounts, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  test('/readyz is public: ready, every check ok, on both controllers; /healthz 200', async () => {
    for (const i of [0, 1]) {
      assertReady(await readyz(c().url(i)), `controller ${i} at start`);
      assert.equal((await raw(c().url(i), 'GET', '/healthz')).status, 200);
    }
  });

  test('PostgreSQL restarted under a stream of execs and creates through both controllers: nothing dies, no exec-log row is lost', async () => {
    const bunkers = [await Bunker.connect(steady.id, on(0)), await Bunker.connect(steady.id, on(1))];
    // Warm both controllers' caches (the bunker's row, the key).
    for (const b of bunkers) assert.equal((await b.exec(['echo', 'warm'])).stdout, 'warm\n');

    const execIds: string[] = [];
    const execFailures: Array<{ controller: number; status: number; code: string; message: string }> = [];
    const createFailures: Array<{ controller: number; op: string; status: number; code: string; message: string }> = [];
    const made: Bunker[] = [];
    const ended = new Set<string>();
    const okBefore = [0, 0];
    const okAfter = [0, 0];
    const createsAfter = [0, 0];
    let restarted = false;
    let stop = false;

    const execLoop = async (i: number) => {
      for (let n = 0; !stop; n++) {
        try {
          const r = await (bunkers[i] as Bunker).exec(['echo', `c${i}-${n}`]);
          assert.equal(r.stdout, `c${i}-${n}\n`);
          assert.equal(r.exit_code, 0);
          execIds.push(r.exec_id);
          if (restarted) okAfter[i] = (okAfter[i] ?? 0) + 1;
          else okBefore[i] = (okBefore[i] ?? 0) + 1;
        } catch (e) {
          execFailures.push({ controller: i, ...describeError(e) });
          await sleep(50);
        }
      }
    };
    const createLoop = async () => {
      for (let n = 0; !stop; n++) {
        const i = n % 2;
        let b: Bunker;
        try {
          b = await Bunker.create(SMALL, on(i));
          made.push(b);
        } catch (e) {
          createFailures.push({ controller: i, op: 'create', ...describeError(e) });
          await sleep(100);
          continue;
        }
        try {
          await b.terminate();
          ended.add(b.id);
          if (restarted) createsAfter[i] = (createsAfter[i] ?? 0) + 1;
        } catch (e) {
          createFailures.push({ controller: i, op: 'terminate', ...describeError(e) });
        }
      }
    };

    const loops = Promise.all([execLoop(0), execLoop(1), createLoop()]);
    let restartMs = 0;
    try {
      await eventually(
        'the stream is under way',
        async () => {
          failIfDied();
          return (okBefore[0] ?? 0) >= 3 && (okBefore[1] ?? 0) >= 3 && made.length >= 1 ? true : undefined;
        },
        60_000,
      );
      const t0 = Date.now();
      await pgctl('restart');
      restartMs = Date.now() - t0;
      restarted = true;
      await eventually(
        'execs through both controllers and a create through each after the restart',
        async () => {
          failIfDied();
          return (okAfter[0] ?? 0) >= 5 && (okAfter[1] ?? 0) >= 5 && (createsAfter[0] ?? 0) >= 1 && (createsAfter[1] ?? 0) >= 1
            ? true
            : undefined;
        },
        90_000,
      );
    } finally {
      stop = true;
      await loops;
      await ensurePgUp();
    }
    // Bunkers whose terminate met the outage end now, through the product.
    for (const b of made) if (!ended.has(b.id)) await b.terminate();

    console.log(
      `[outages] PostgreSQL restart took ${restartMs} ms; ${execIds.length} execs ok; exec failures ${execFailures.length}; ` +
        `creates ${made.length} ok, create/terminate failures ${JSON.stringify(createFailures)}`,
    );
    assert.deepEqual(execFailures, [], 'an exec on a running bunker whose row and key are cached never fails over the restart');
    for (const f of createFailures) {
      assert.ok(
        f.status === 503 && f.code === 'STORE_UNAVAILABLE',
        `a ${f.op} through controller ${f.controller} met the restart as 503 STORE_UNAVAILABLE, not ${f.status} ${f.code}: ${f.message}`,
      );
    }
    await bothReady('the restart');
    await assertExecLogsWritten(execIds, 'the stream');
    // Creates that met the outage half-way end (failed by the sweeper when stuck): only the steady bunker is left.
    await eventually(
      'only the steady bunker is active',
      async () => {
        const rows = await activeRows();
        return rows.length === 1 && rows[0]?.id === steady.id ? true : undefined;
      },
      STUCK_CREATE_MS + 30_000,
    ).catch(async (err: Error) => assert.fail(`${err.message}: ${JSON.stringify(await activeRows())}`));
    assertSameProcesses();
  });

  test('PostgreSQL down: 503 STORE_UNAVAILABLE quickly with Retry-After, cached execs keep working, /healthz 200, /readyz 503; all well after', async () => {
    const admin = c().client(0, c().adminKey);
    // A valid key no controller has seen used: it can't be checked while the database is down.
    const unusedKey = (await admin.admin.createApiKey(tenantId, 'unused', ['scaibunker:admin:tenant'])).key;
    const bunkers = [await Bunker.connect(steady.id, on(0)), await Bunker.connect(steady.id, on(1))];
    for (const b of bunkers) assert.equal((await b.exec('echo warm')).exit_code, 0);
    const execIds: string[] = [];
    const rowsBefore = (await activeRows()).length;

    await pgctl('stop');
    const outageStarted = Date.now();
    try {
      for (const i of [0, 1]) {
        const base = c().url(i);
        const b = bunkers[i] as Bunker;
        // Exec on the cached running bunker with the cached key: works, plain and streamed.
        for (let n = 0; n < 5; n++) {
          const r = await b.exec(['echo', `down${i}-${n}`]);
          assert.equal(r.stdout, `down${i}-${n}\n`);
          execIds.push(r.exec_id);
        }
        let streamed = '';
        const s = await b.exec('echo streamed', {
          onStdout: (t: string) => {
            streamed += t;
          },
        });
        assert.equal(streamed, 'streamed\n');
        assert.equal(s.exit_code, 0);
        execIds.push(s.exec_id);

        // What needs the database answers 503 STORE_UNAVAILABLE, quickly, with Retry-After.
        assertOutage(await raw(base, 'POST', `${API}/bunkers`, tenantKey, SMALL), 'STORE_UNAVAILABLE', `create on ${i}`);
        assertOutage(await raw(base, 'GET', `${API}/bunkers`, tenantKey), 'STORE_UNAVAILABLE', `list on ${i}`);
        assertOutage(await raw(base, 'GET', `${API}/bunkers/${steady.id}/exec-logs`, tenantKey), 'STORE_UNAVAILABLE', `exec logs on ${i}`);
        // An unchecked key is not refused as invalid (401): it can't be checked now.
        assertOutage(
          await raw(base, 'POST', `${API}/bunkers/${steady.id}/exec`, unusedKey, { command: 'true' }),
          'STORE_UNAVAILABLE',
          `exec with an uncached key on ${i}`,
        );
        // Liveness stays up; readiness names the database.
        const health = await raw(base, 'GET', '/healthz');
        assert.equal(health.status, 200, `/healthz on ${i} during the outage: ${health.text}`);
        assert.ok(health.ms < QUICK_MS, `/healthz on ${i} answered in ${health.ms} ms`);
        assertNotReady(await readyz(base), 'database', ['live_state'], `controller ${i} with PostgreSQL down`);
        // The API keeps answering the same way after a few seconds of outage (no wedged pool).
        assertOutage(await raw(base, 'GET', `${API}/bunkers`, tenantKey), 'STORE_UNAVAILABLE', `list on ${i}, again`);
      }
      await assertPgStillDown('early in the outage');
      // A longer outage, past whatever lifetime the controllers give cached rows and keys: execs
      // through both keep working all along (time passing is the point here, not an event).
      let n = 0;
      while (Date.now() - outageStarted < LONG_OUTAGE_MS) {
        for (const i of [0, 1]) {
          const r = await (bunkers[i] as Bunker).exec(['echo', `long${i}-${n}`]).catch((e: unknown) => {
            const d = describeError(e);
            assert.fail(
              `an exec through controller ${i} ${((Date.now() - outageStarted) / 1000).toFixed(1)} s into the outage failed: ${d.status} ${d.code} ${d.message}`,
            );
          });
          assert.equal(r.stdout, `long${i}-${n}\n`);
          execIds.push(r.exec_id);
        }
        n++;
        await sleep(250);
      }
      await assertPgStillDown('late in the outage');
      for (const i of [0, 1]) {
        assertOutage(
          await raw(c().url(i), 'POST', `${API}/bunkers`, tenantKey, SMALL),
          'STORE_UNAVAILABLE',
          `create on ${i}, late in the outage`,
        );
        assertNotReady(await readyz(c().url(i)), 'database', ['live_state'], `controller ${i} late in the outage`);
      }
      console.log(
        `[outages] PostgreSQL stopped for ${((Date.now() - outageStarted) / 1000).toFixed(1)} s; ${execIds.length} execs ran meanwhile`,
      );
    } finally {
      await ensurePgUp();
    }

    await bothReady('PostgreSQL came back');
    // Everything works again through both controllers.
    const again: Bunker[] = [];
    try {
      for (const i of [0, 1]) {
        const b = await Bunker.create(SMALL, on(i));
        again.push(b);
        assert.equal((await b.exec('echo back')).stdout, 'back\n');
        const listed: string[] = [];
        for await (const x of Bunker.list({ state: 'running' }, on(i))) listed.push(x.id);
        assert.ok(listed.includes(b.id) && listed.includes(steady.id), `list through ${i}`);
        const viaUnused = await raw(c().url(i), 'POST', `${API}/bunkers/${steady.id}/exec`, unusedKey, { command: 'echo checked' });
        assert.equal(viaUnused.status, 200, `the unused key works once the database is back: ${viaUnused.text}`);
        assert.equal(viaUnused.body.stdout, 'checked\n');
        execIds.push(viaUnused.body.exec_id);
      }
    } finally {
      for (const b of again) await b.terminate();
    }
    await assertExecLogsWritten(execIds, 'the execs during the outage');
    // The outage's exec logs are readable through the API of both controllers.
    for (const i of [0, 1]) {
      const seen = new Set<string>();
      for await (const l of (bunkers[i] as Bunker).execLogPages({ limit: 100 })) {
        seen.add(l.id);
        if (execIds.every((id) => seen.has(id))) break;
      }
      assert.deepEqual(
        execIds.filter((id) => !seen.has(id)),
        [],
        `controller ${i} lists every exec of the outage`,
      );
    }
    assert.equal((await activeRows()).length, rowsBefore, 'the refused creates left no bunker behind');
    assertSameProcesses();
  });

  test('Redis killed: creates and quota usage 503 LIVE_STATE_UNAVAILABLE quickly, exec works; restarted empty: creates work, counters rebuilt with no drift', async () => {
    const baseline = (await activeRows()).length;
    const mine = [await Bunker.create(SMALL, capped(0)), await Bunker.create(SMALL, capped(1))];
    const createdBy = (await sqlQuery<{ created_by: string }>(c().db.url, 'SELECT created_by FROM bunkers WHERE id = $1', [mine[0]?.id]))[0]
      ?.created_by;
    const cappedActive = async () => (await activeRows()).filter((r) => r.created_by === createdBy).length;
    assert.equal(await cappedUsage(0), 2);
    assert.equal(await cappedActive(), 2);
    const bunkers = [await Bunker.connect(steady.id, on(0)), await Bunker.connect(steady.id, on(1))];
    const cappedBunkers = [await Bunker.connect(mine[0]?.id as string, capped(1)), await Bunker.connect(mine[1]?.id as string, capped(0))];
    for (const b of [...bunkers, ...cappedBunkers]) assert.equal((await b.exec('true')).exit_code, 0);
    const rowsBefore = (await activeRows()).length;
    const execIds: string[] = [];
    const extra: Bunker[] = [];

    await c().redis.kill('SIGKILL');
    const killedAt = Date.now();
    try {
      for (const i of [0, 1]) {
        const base = c().url(i);
        assertOutage(await raw(base, 'POST', `${API}/bunkers`, cappedKey, SMALL), 'LIVE_STATE_UNAVAILABLE', `capped create on ${i}`);
        assertOutage(
          await raw(base, 'GET', `${API}/quota-profiles/usage`, cappedKey),
          'LIVE_STATE_UNAVAILABLE',
          `capped user's quota usage on ${i}`,
        );
        assertOutage(
          await raw(base, 'GET', `${API}/quota-profiles/usage`, tenantKey),
          'LIVE_STATE_UNAVAILABLE',
          `tenant quota usage on ${i}`,
        );
        // A create no quota applies to: either it needs no live state, or it says so the same way.
        const free = await raw(base, 'POST', `${API}/bunkers`, tenantKey, SMALL);
        if (free.status === 201) extra.push(await Bunker.connect(free.body.id, on(i)));
        else assertOutage(free, 'LIVE_STATE_UNAVAILABLE', `uncapped create on ${i}`);
        // Exec keeps working, the capped user's and the tenant admin's.
        for (const b of [bunkers[i] as Bunker, cappedBunkers[i] as Bunker]) {
          const r = await b.exec(['echo', `redis-down-${i}`]);
          assert.equal(r.stdout, `redis-down-${i}\n`);
          execIds.push(r.exec_id);
        }
        assertNotReady(await readyz(base), 'live_state', ['database'], `controller ${i} with Redis down`);
        const health = await raw(base, 'GET', '/healthz');
        assert.equal(health.status, 200, `/healthz on ${i} with Redis down: ${health.text}`);
        // Reads that need no live state still work.
        assert.equal((await (bunkers[i] as Bunker).refresh()).state, 'running');
      }
      assert.equal((await activeRows()).length, rowsBefore + extra.length, 'the refused creates left no row');
      // A bunker ended while the counters are unreachable: its release is owed, never lost.
      const ended = await raw(c().url(0), 'DELETE', `${API}/bunkers/${mine[1]?.id}`, tenantKey);
      if (ended.status === 200) {
        assert.equal(ended.body.state, 'terminated', ended.text);
        mine.splice(1, 1);
      } else {
        assertOutage(ended, 'LIVE_STATE_UNAVAILABLE', 'a terminate with Redis down');
      }
      // A longer outage, past the workers' heartbeat timeout here: exec keeps working all along
      // (time passing is the point, not an event), and nothing is judged lost for it.
      let n = 0;
      while (Date.now() - killedAt < REDIS_OUTAGE_MS) {
        for (const i of [0, 1]) {
          const r = await (bunkers[i] as Bunker).exec(['echo', `long${i}-${n}`]).catch((e: unknown) => {
            const d = describeError(e);
            assert.fail(
              `an exec through controller ${i} ${((Date.now() - killedAt) / 1000).toFixed(1)} s into the Redis outage failed: ${d.status} ${d.code} ${d.message}`,
            );
          });
          assert.equal(r.stdout, `long${i}-${n}\n`);
          execIds.push(r.exec_id);
        }
        n++;
        await sleep(250);
      }
    } finally {
      await c().redis.startProcess();
    }

    await bothReady('Redis came back empty');
    assert.equal((await steady.refresh()).state, 'running', `the steady bunker outlived the Redis outage: ${JSON.stringify(steady.info)}`);
    const workers = await c().client(1, c().adminKey).workers.list();
    assert.deepEqual(
      workers.map((w) => w.state),
      ['online'],
      'the worker was never judged offline',
    );
    // Counters rebuilt from the rows: what is running now, nothing more.
    for (const i of [0, 1]) {
      const now = await cappedUsage(i);
      assert.equal(now, await cappedActive(), `controller ${i}: usage ${now} = active bunkers of the capped user after the wipe`);
    }
    for (const i of [0, 1]) {
      const b = await eventually(`a capped create through ${i} after the restart`, async () =>
        Bunker.create(SMALL, capped(i)).catch(() => undefined),
      );
      mine.push(b);
      assert.equal((await b.exec('echo fresh')).stdout, 'fresh\n');
    }
    for (const i of [0, 1]) {
      assert.equal(await cappedUsage(i), mine.length, `controller ${i}: those running from before the wipe and the two after`);
      assert.equal(await cappedActive(), mine.length);
    }
    for (const b of [...mine, ...extra]) await b.terminate();
    for (const i of [0, 1]) assert.equal(await cappedUsage(i), 0, `controller ${i}: all released, no drift`);
    assert.equal((await activeRows()).length, baseline, 'nothing is left of what this test made');
    await assertExecLogsWritten(execIds, 'the execs while Redis was down');
    assertSameProcesses();
  });

  // Last: it replaces controller B.
  test('controller B stopped, then killed, during a database outage: its journaled exec logs reach the database once it is back', async () => {
    const before = c().controllers[1];
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const b = await Bunker.connect(steady.id, on(1));
      assert.equal((await b.exec('echo warm')).exit_code, 0);
      const ids: string[] = [];
      let exit = '';
      await pgctl('stop');
      try {
        for (let n = 0; n < 5; n++) {
          const r = await b.exec(['echo', `${signal}-${n}`]);
          assert.equal(r.stdout, `${signal}-${n}\n`);
          ids.push(r.exec_id);
        }
        const proc = c().controllers[1] as ServerProcess;
        const t0 = Date.now();
        const stopped = await Promise.race([
          c()
            .stopController(1, signal)
            .then(() => true),
          sleep(30_000).then(() => false),
        ]);
        if (!stopped) {
          await c().stopController(1, 'SIGKILL');
          assert.fail(`controller B did not exit within 30 s of ${signal} with the database down:\n${tail(proc)}`);
        }
        exit = `exited ${proc.child.exitCode ?? proc.child.signalCode} ${Date.now() - t0} ms after ${signal}`;
        if (signal === 'SIGTERM') assert.equal(proc.child.exitCode, 0, `a clean shutdown with the database down: ${exit}\n${tail(proc)}`);
      } finally {
        await ensurePgUp();
      }
      await c().startController(1);
      await assertExecLogsWritten(ids, `the execs journaled before controller B got ${signal}`);
      console.log(`[outages] controller B ${exit}; its ${ids.length} journaled exec-log rows replayed after its restart`);
    }
    assert.notEqual(c().controllers[1], before, 'controller B was replaced');
    assert.ok(alive(c().controllers[1]));
    for (const i of [0, 2]) {
      const p = processes()[i];
      assert.ok(alive(p), `${names[i]} exited:\n${tail(p)}`);
      assert.equal(p?.child.pid, pids[i], `${names[i]} is the process started at first`);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('scaibunker proxy over S3 when s3rver goes away', () => {
  const TOKEN = 'outage-e2e-worker-token-0123456789abcdef';
  const BUCKET = 'outage-e2e';
  let s3: S3rverServer | undefined;
  let proxy: ServerProcess | undefined;
  let proxyPid = 0;
  const data = tempDataDir();
  let base = '';
  const auth = { authorization: `Bearer ${TOKEN}` };

  const put = (key: string, body: string | Buffer) =>
    fetch(`${base}/${key}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body,
      signal: AbortSignal.timeout(60_000),
    });
  const asAnswer = async (res: Response, started: number): Promise<RawAnswer> => {
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body, text, ms: Date.now() - started };
  };
  /** The object files s3rver keeps for a key (none: the object does not exist). */
  const objectFiles = (key: string) => {
    const path = join((s3 as S3rverServer).dir, BUCKET, 'deploy', ...key.split('/'));
    return existsSync(`${path}._S3rver_object`) ? [`${path}._S3rver_object`] : [];
  };
  /** Parts s3rver has received for multipart uploads in progress. */
  const partsInFlight = () => {
    const dir = join((s3 as S3rverServer).dir, BUCKET, '._S3rver_uploads');
    if (!existsSync(dir)) return 0;
    return readdirSync(dir).reduce((n, u) => n + readdirSync(join(dir, u)).filter((f) => /^\d+$/.test(f)).length, 0);
  };

  /**
   * A streamed PUT over raw HTTP: `size` bytes of `chunk`s; before the `haltAfter`-th MiB it
   * waits for `beforeRest` (e.g. s3rver killed). Resolves with the answer, or the error when the
   * connection was cut before one came.
   */
  const streamedPut = (
    key: string,
    size: number,
    chunk: Buffer,
    haltAfter: number,
    beforeRest: () => Promise<void>,
  ): Promise<{ answer?: RawAnswer; error?: Error; sentAt: number }> => {
    const started = Date.now();
    let sentAt = 0;
    return new Promise((resolve) => {
      const source = Readable.from(
        (async function* () {
          for (let i = 0; i < size / chunk.length; i++) {
            if (i === haltAfter) {
              await beforeRest();
              sentAt = Date.now();
            }
            yield chunk;
          }
        })(),
      );
      const url = new URL(`${base}/${key}`);
      const req = request(url, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' } });
      let done = false;
      req.on('response', (res) => {
        source.unpipe(req);
        source.destroy();
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          if (done) return;
          done = true;
          const text = Buffer.concat(parts).toString();
          let body: unknown;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          const ra = res.headers['retry-after'];
          resolve({
            answer: { status: res.statusCode ?? 0, retryAfter: typeof ra === 'string' ? ra : null, body, text, ms: Date.now() - started },
            sentAt,
          });
        });
        res.on('error', (error) => {
          if (!done) {
            done = true;
            resolve({ error, sentAt });
          }
        });
      });
      req.on('error', (error) => {
        if (!done) {
          done = true;
          source.destroy();
          resolve({ error, sentAt });
        }
      });
      source.pipe(req);
    });
  };

  before(async () => {
    s3 = await startS3rver();
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();
    proxy = await ServerProcess.start(['proxy', '--port', '0', '--data-dir', data.dir], {
      SCAIBUNKER_WORKER_TOKEN: TOKEN,
      SCAIBUNKER_BLOB_STORE: `s3://${BUCKET}/deploy/?endpoint=${encodeURIComponent(s3.endpoint)}&force_path_style=1`,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
      REDIS_URL: 'redis://127.0.0.1:1/0',
    });
    proxyPid = proxy.child.pid ?? 0;
    base = `${proxy.url}${API}/storage/scaibunker/outage`;
  });

  after(async () => {
    const wasAlive = alive(proxy);
    await proxy?.kill();
    await s3?.stop();
    data.remove();
    assert.ok(wasAlive, `the proxy was still running at the end:\n${tail(proxy)}`);
  });

  const assertProxyUp = () => {
    assert.ok(alive(proxy), `the proxy exited:\n${tail(proxy)}`);
    assert.equal(proxy?.child.pid, proxyPid, 'the proxy is the process started at first');
  };

  test('s3rver killed mid-upload: 503 BLOB_STORE_UNAVAILABLE, no partial object, the proxy stays up; s3rver back: uploads and reads work', async () => {
    const server = s3 as S3rverServer;
    assert.equal((await put('before', 'kept')).status, 201);

    const size = 64 * MiB;
    const chunk = randomBytes(MiB);
    let haltedAt = 0;
    let outcome: Awaited<ReturnType<typeof streamedPut>>;
    try {
      outcome = await streamedPut('big', size, chunk, 24, async () => {
        await eventually('a part of the upload reached s3rver', async () => (partsInFlight() > 0 ? true : undefined), 30_000);
        await server.halt('SIGKILL');
        haltedAt = Date.now();
      });
    } catch (err) {
      await server.restart().catch(() => undefined);
      throw err;
    }
    try {
      assert.ok(haltedAt > 0, 's3rver was killed while the upload ran');
      assert.ok(!outcome.error, `the upload got an answer, not a cut connection: ${outcome.error?.message}`);
      // The upload ran for a while before the outage: how long it took to fail once s3rver died is what counts.
      const sinceHalt = Date.now() - haltedAt;
      try {
        assertOutage(outcome.answer as RawAnswer, 'BLOB_STORE_UNAVAILABLE', 'the upload cut by the outage', Number.POSITIVE_INFINITY);
      } catch (err) {
        throw new Error(`${(err as Error).message}\nproxy log:\n${tail(proxy, 30)}`, { cause: err });
      }
      assert.ok(sinceHalt < 30_000, `the upload failed ${sinceHalt} ms after s3rver died`);
      assertProxyUp();

      // While s3rver is gone: reads and writes say so, quickly.
      const t1 = Date.now();
      assertOutage(
        await asAnswer(await fetch(`${base}/before`, { headers: auth }), t1),
        'BLOB_STORE_UNAVAILABLE',
        'a read with s3rver down',
      );
      const t2 = Date.now();
      assertOutage(await asAnswer(await put('small', 'x'), t2), 'BLOB_STORE_UNAVAILABLE', 'a small write with s3rver down');
      const health = await fetch(`${proxy?.url}/healthz`);
      assert.equal(health.status, 200, 'the proxy is live');
      assertProxyUp();
    } finally {
      await server.restart();
    }

    // Back on the same port and directory: the proxy's client reconnects.
    const small = await eventually('a write after s3rver came back', async () => {
      const r = await put('small', 'after');
      return r.status === 201 ? r : undefined;
    });
    assert.equal(small.status, 201);
    assert.equal(await (await fetch(`${base}/small`, { headers: auth })).text(), 'after');
    assert.equal(await (await fetch(`${base}/before`, { headers: auth })).text(), 'kept', 'what was stored before the outage is intact');
    // Nothing of the cut upload became an object.
    const big = await fetch(`${base}/big`, { headers: auth });
    assert.equal(big.status, 404, `no partial object: ${await big.text()}`);
    assert.deepEqual(objectFiles('big'), [], 's3rver holds no object for the cut upload');

    // A whole upload of the same size now goes through, checksum verified.
    const hash = createHash('sha256');
    for (let i = 0; i < size / MiB; i++) hash.update(chunk);
    const sha = hash.digest('hex');
    const whole = await fetch(`${base}/big`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream', 'x-scaibunker-sha256': sha },
      body: Readable.toWeb(
        Readable.from(
          (function* () {
            for (let i = 0; i < size / MiB; i++) yield chunk;
          })(),
        ),
      ) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(whole.status, 201, await whole.clone().text());
    const back = await fetch(`${base}/big`, { headers: auth });
    assert.equal(back.headers.get('x-scaibunker-sha256'), sha);
    const down = createHash('sha256');
    for await (const c of back.body as unknown as AsyncIterable<Uint8Array>) down.update(c);
    assert.equal(down.digest('hex'), sha);
    assertProxyUp();
  });

  test('s3rver killed mid-download: the download is cut (never a silently short body), the proxy stays up and serves it whole after', async () => {
    const server = s3 as S3rverServer;
    const size = 128 * MiB;
    const chunk = randomBytes(MiB);
    const whole = await fetch(`${base}/download`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: Readable.toWeb(
        Readable.from(
          (function* () {
            for (let i = 0; i < size / MiB; i++) yield chunk;
          })(),
        ),
      ) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    assert.equal(whole.status, 201, await whole.clone().text());

    const res = await fetch(`${base}/download`, { headers: auth, signal: AbortSignal.timeout(60_000) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(size));
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let got = 0;
    let error: unknown;
    try {
      while (got < MiB) {
        const { value, done } = await reader.read();
        if (done) break;
        got += value.length;
      }
      await server.halt('SIGKILL');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        got += value.length;
      }
    } catch (err) {
      error = err;
    } finally {
      await server.restart();
    }
    assert.ok(error !== undefined || got === size, `a download cut by the outage errors (got ${got} of ${size} bytes and no error)`);
    if (error) assert.ok(got < size, 'the error came before the whole body');
    assert.ok(!(error instanceof Error && error.name === 'TimeoutError'), 'the cut download did not hang');
    assertProxyUp();
    const again = await eventually('the download after s3rver came back', async () => {
      const r = await fetch(`${base}/download`, { headers: auth });
      return r.status === 200 ? r : undefined;
    });
    let total = 0;
    for await (const c of again.body as unknown as AsyncIterable<Uint8Array>) total += c.length;
    assert.equal(total, size);
    assertProxyUp();
  });
});
