/**
 * `scaibunker controller` and `scaibunker worker` as separate processes over HTTP with the
 * worker token: placement, drain/resume, and a worker killed mid-exec (bunker → failed with
 * worker_lost once past --worker-lost-after, its row and exec logs kept; the orphan is reconciled
 * away when the worker returns). The grace before that is workerGrace.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
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

describe('controller and worker as separate processes', () => {
  const data = tempDataDir();
  const token = randomBytes(24).toString('hex');
  let controller: ServerProcess;
  let worker: ServerProcess | undefined;
  let workerPort = 0;
  let admin: ScaiBunkerClient;
  let tenant: ScaiBunkerClient;

  const startWorker = () =>
    ServerProcess.start(
      [
        'worker',
        '--controller',
        controller.url,
        '--port',
        String(workerPort),
        '--data-dir',
        join(data.dir, 'w'),
        '--image-dir',
        IMAGE_DIR,
        '--heartbeat-interval-ms',
        '200',
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
      /worker (wk_\w+) at/,
    );

  before(async () => {
    controller = await ServerProcess.start(
      // A killed worker is lost once silent for 2 s (offline, its bunkers kept, after 600 ms).
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
        '2s',
      ],
      {
        SCAIBUNKER_WORKER_TOKEN: token,
      },
    );
    workerPort = await freePort();
    worker = await startWorker();
    admin = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: adminKeyOf(join(data.dir, 'c')) });
    const t = await admin.admin.createTenant('split');
    tenant = new ScaiBunkerClient({
      baseUrl: controller.url,
      apiKey: (await admin.admin.createApiKey(t.id, 'k', ['scaibunker:admin:tenant'])).key,
    });
    await eventually('worker online', async () => ((await admin.workers.list()).some((w) => w.state === 'online') ? true : undefined));
  });

  after(async () => {
    await worker?.kill();
    await controller?.kill();
    const orphans = await destroyLeftoverBunkers(join(data.dir, 'w'));
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  test('a bunker runs on the remote worker; exec and files go through the worker token channel', async () => {
    const b = await Bunker.create({ image: 'minimal' }, tenant);
    assert.equal(b.state, 'running');
    assert.equal((await b.exec('echo remote')).stdout, 'remote\n');
    await b.files.write('/tmp/x', 'over http');
    assert.equal((await b.files.read('/tmp/x')).toString(), 'over http');
    const env = await b.exec('env');
    assert.doesNotMatch(env.stdout, new RegExp(token), 'the worker token never enters a bunker');
    await b.terminate();
  });

  test('drain stops placement (NO_SUITABLE_WORKER); resume restores it', async () => {
    const [w] = await admin.workers.list();
    assert.ok(w);
    await admin.workers.drain(w.id);
    await assert.rejects(
      Bunker.create({ image: 'minimal' }, tenant),
      (e: unknown) => e instanceof ScaiBunkerError && e.code === 'WORKER_UNAVAILABLE',
    );
    await admin.workers.resume(w.id);
    const b = await Bunker.create({ image: 'minimal' }, tenant);
    await b.terminate();
  });

  test('a bunker too big for any worker: NO_SUITABLE_WORKER', async () => {
    await assert.rejects(
      Bunker.create({ image: 'minimal', memory_mb: 262144 }, tenant),
      (e: unknown) => e instanceof ScaiBunkerError && e.code === 'NO_SUITABLE_WORKER' && e.status === 503,
    );
  });

  test('a worker killed mid-exec: the exec fails cleanly, the bunker fails with worker_lost, rows and logs are kept', async () => {
    const b = await Bunker.create({ image: 'minimal' }, tenant);
    await b.exec('echo before');
    // Settled into a value at once, so the rejection is never unhandled while we wait.
    const pending = b.exec('sleep 600', { timeoutS: 900 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    // The exec log row exists once the command started.
    await eventually('exec started', async () => ((await b.execLogs()).some((l) => l.command === 'sleep 600') ? true : undefined));
    await worker?.kill('SIGKILL');
    worker = undefined;
    const err = await pending;
    assert.ok(
      err instanceof ScaiBunkerError && err.code === 'WORKER_UNAVAILABLE',
      `the exec fails with WORKER_UNAVAILABLE, got ${String(err)}`,
    );
    const failed = await eventually('worker_lost', async () => {
      const s = await b.refresh();
      return s.state === 'failed' ? s : undefined;
    });
    assert.match(failed.termination_reason ?? '', /^worker_lost/);
    const logs = await b.execLogs();
    assert.ok(logs.some((l) => l.command === 'echo before' && l.exit_code === 0));
    assert.ok(logs.some((l) => l.command === 'sleep 600'));
    const [w] = await admin.workers.list();
    assert.equal(w?.state, 'offline');

    // The worker comes back: it reports the orphaned bunker, the controller says it is not
    // alive, and the worker destroys it.
    worker = await startWorker();
    await eventually('orphan destroyed', async () => (mountsUnder(join(data.dir, 'w', 'bunkers')).length === 0 ? true : undefined));
    await eventually('worker online again', async () => ((await admin.workers.list())[0]?.state === 'online' ? true : undefined));
  });
});
