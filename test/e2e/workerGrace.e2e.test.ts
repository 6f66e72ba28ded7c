/**
 * A worker that stops heartbeating is unreachable, not dead, with real processes: `scaibunker
 * controller` and one `scaibunker worker` (200 ms heartbeats, so offline after 600 ms of
 * silence; --worker-lost-after 6s). The worker is SIGSTOPped past the heartbeat timeout: it shows
 * `offline`, its bunker `worker_reachable: false` and still `running`, and exec answers 503
 * WORKER_UNAVAILABLE at once. SIGCONT: online again, the same bunker, its file and its background
 * process still there. SIGSTOP past --worker-lost-after: the bunker is `failed` (`worker_lost`);
 * SIGCONT: the worker destroys it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  eventually,
  FAST_INTERVALS,
  freePort,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
  tempDataDir,
} from './harness.js';

const LOST_AFTER_S = 6;

describe('a worker that stops heartbeating', () => {
  const data = tempDataDir();
  const token = randomBytes(24).toString('hex');
  let controller: ServerProcess | undefined;
  let worker: ServerProcess | undefined;
  let admin: ScaiBunkerClient;
  let tenant: ScaiBunkerClient;
  let tenantKey = '';

  const workerDir = join(data.dir, 'w');

  /** SIGSTOP/SIGCONT the worker process (the test's own child). */
  const signal = (sig: 'SIGSTOP' | 'SIGCONT') => {
    const pid = worker?.child.pid;
    if (pid !== undefined && worker?.child.exitCode === null && worker.child.signalCode === null) process.kill(pid, sig);
  };

  /** A raw API call as the tenant: status, body and how long it took. */
  async function call(
    method: string,
    path: string,
    json?: unknown,
  ): Promise<{ status: number; body: { error: { code: string; message: string } }; ms: number }> {
    const started = Date.now();
    const res = await fetch(`${controller?.url}/v1/modules/scaibunker${path}`, {
      method,
      headers: { authorization: `Bearer ${tenantKey}`, ...(json ? { 'content-type': 'application/json' } : {}) },
      ...(json ? { body: JSON.stringify(json) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, ms: Date.now() - started };
  }

  const workerState = async () => (await admin.workers.list())[0]?.state;

  before(async () => {
    controller = await ServerProcess.start(
      [
        'controller',
        '--port',
        '0',
        '--data-dir',
        join(data.dir, 'c'),
        '--image-dir',
        IMAGE_DIR,
        ...FAST_INTERVALS,
        '--worker-lost-after',
        `${LOST_AFTER_S}s`,
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
    );
    worker = await ServerProcess.start(
      [
        'worker',
        '--controller',
        controller.url,
        '--port',
        String(await freePort()),
        '--data-dir',
        workerDir,
        '--image-dir',
        IMAGE_DIR,
        '--heartbeat-interval-ms',
        '200',
        '--isolations',
        'container',
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
      /worker (wk_\w+) at/,
    );
    admin = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: adminKeyOf(join(data.dir, 'c')) });
    const t = await admin.admin.createTenant('grace');
    tenantKey = (await admin.admin.createApiKey(t.id, 'k', ['scaibunker:admin:tenant'])).key;
    tenant = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: tenantKey });
    await eventually('worker online', async () => ((await workerState()) === 'online' ? true : undefined));
  });

  after(async () => {
    // Whatever happened: never leave a stopped process behind.
    signal('SIGCONT');
    await worker?.kill();
    await controller?.kill();
    const orphans = await destroyLeftoverBunkers(workerDir);
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  test('stopped past the heartbeat timeout: unreachable, kept, back on SIGCONT; stopped past --worker-lost-after: failed, destroyed on return', async () => {
    const b = await Bunker.create({ image: 'minimal' }, tenant);
    try {
      await b.files.write('/tmp/kept', 'still here');
      const sleeper = await b.processes.start('sleep 600', { tag: 'grace' });
      const pid = (await sleeper.refresh()).pid;
      assert.ok(pid, 'the background process has a pid');
      assert.equal((await b.refresh()).worker_reachable, true);

      // 1. A blip: stopped long enough to miss its heartbeats, well within the grace.
      signal('SIGSTOP');
      const stoppedAt = Date.now();
      await eventually('worker offline', async () => ((await workerState()) === 'offline' ? true : undefined), 10_000);
      const unreachable = await eventually('bunker worker_reachable false', async () => {
        const s = await b.refresh();
        return s.worker_reachable === false ? s : undefined;
      });
      assert.equal(unreachable.state, 'running', 'its state is kept');
      assert.equal(unreachable.termination_reason, null);
      const refused = await call('POST', `/bunkers/${b.id}/exec`, { command: 'true' });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error.code, 'WORKER_UNAVAILABLE');
      assert.match(refused.body.error.message, /unreachable since \d{4}-\d\d-\d\dT/);
      assert.ok(refused.ms < 1000, `answered at once (${refused.ms} ms), not after a connection timeout`);
      const readRefused = await call('GET', `/bunkers/${b.id}/files?path=/tmp/kept`);
      assert.equal(readRefused.status, 503);
      assert.ok(Date.now() - stoppedAt < (LOST_AFTER_S - 1) * 1000, 'the checks ran well within the grace');

      signal('SIGCONT');
      await eventually('worker online again', async () => ((await workerState()) === 'online' ? true : undefined), 10_000);
      const back = await eventually('bunker reachable again', async () => {
        const s = await b.refresh();
        return s.worker_reachable ? s : undefined;
      });
      assert.equal(back.state, 'running');
      assert.equal(back.id, b.id);
      assert.equal((await b.files.read('/tmp/kept')).toString(), 'still here');
      assert.equal((await b.exec(`kill -0 ${pid} && echo alive`)).stdout, 'alive\n', 'the background process survived');
      assert.equal((await sleeper.refresh()).state, 'running');

      // 2. Gone for longer than --worker-lost-after: the bunker fails.
      signal('SIGSTOP');
      const failed = await eventually(
        'bunker failed worker_lost',
        async () => {
          const s = await b.refresh();
          return s.state === 'failed' ? s : undefined;
        },
        (LOST_AFTER_S + 15) * 1000,
      );
      assert.match(failed.termination_reason ?? '', /^worker_lost: no heartbeat for \d+s$/);
      assert.equal(failed.worker_reachable, false);
      assert.equal(await workerState(), 'offline');
      assert.ok(mountsUnder(join(workerDir, 'bunkers')).length > 0, 'still on the stopped worker');

      // It comes back: the heartbeat reply names the bunker as unknown and the worker destroys it.
      signal('SIGCONT');
      await eventually('worker online after being lost', async () => ((await workerState()) === 'online' ? true : undefined), 10_000);
      await eventually('the lost bunker destroyed on the worker', async () =>
        mountsUnder(join(workerDir, 'bunkers')).length === 0 ? true : undefined,
      );
      assert.equal((await b.refresh()).worker_reachable, true);
    } finally {
      signal('SIGCONT');
      await b.terminate().catch(() => undefined);
    }
  });
});
