/**
 * The image pipeline across processes: `scaibunker controller` bakes an image registered from a
 * local OCI layout (umoci) into the blob store; `scaibunker proxy` serves it from the same blob
 * directory; two `scaibunker worker`s with separate cache directories are put in one
 * availability group. The first fetches the image through the proxy; the second fetches it
 * from the first, peer to peer, and the proxy serves zero bytes for it; a wiped cache heals
 * with no manual step; a bunker started from the image runs on it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { buildTestLayout } from '../../packages/controller/test/images/bakeFixtures.js';
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

describe('images: bake, proxy, availability group, peer fetch, ledger heal', () => {
  const data = tempDataDir();
  const token = randomBytes(24).toString('hex');
  const controllerDir = join(data.dir, 'c');
  const imports = join(data.dir, 'imports');
  let controller: ServerProcess;
  let proxy: ServerProcess;
  const workers: ServerProcess[] = [];
  let admin: ScaiBunkerClient;
  let tenant: ScaiBunkerClient;
  let imageId = '';
  let sha = '';
  let groupId = '';

  /** Proxy access-log lines that moved the image's bytes out. */
  const imageReads = () =>
    proxy
      .output()
      .split('\n')
      .filter((l) => l.startsWith(`storage GET scaibunker/images/${sha} 20`));

  const startWorker = async (name: string) =>
    ServerProcess.start(
      [
        'worker',
        '--controller',
        controller.url,
        '--storage-url',
        proxy.url,
        '--port',
        String(await freePort()),
        '--name',
        name,
        '--data-dir',
        join(data.dir, name),
        '--image-dir',
        join(data.dir, name, 'images'),
        '--heartbeat-interval-ms',
        '200',
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
      /worker (wk_\w+) at/,
    );

  const groupState = async () => (await admin.availabilityGroups.get(groupId)).images[0]?.workers ?? [];

  before(async () => {
    mkdirSync(imports);
    await buildTestLayout(imports);
    controller = await ServerProcess.start(
      [
        'controller',
        '--port',
        '0',
        '--data-dir',
        controllerDir,
        '--image-dir',
        IMAGE_DIR,
        '--image-import-dir',
        imports,
        ...FAST_INTERVALS,
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
    );
    // Same blob directory as the controller: the proxy is the only way workers reach it.
    proxy = await ServerProcess.start(['proxy', '--port', '0', '--data-dir', controllerDir, '--access-log'], {
      SCAIBUNKER_WORKER_TOKEN: token,
    });
    admin = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: adminKeyOf(controllerDir) });
    const t = await admin.admin.createTenant('images-e2e');
    tenant = new ScaiBunkerClient({
      baseUrl: controller.url,
      apiKey: (await admin.admin.createApiKey(t.id, 'k', ['scaibunker:admin:tenant'])).key,
    });
  });

  after(async () => {
    if (process.env.SCAIBUNKER_E2E_DUMP) {
      for (const p of [controller, proxy, ...workers]) process.stderr.write(`----\n${p?.output()}\n`);
    }
    for (const w of workers) await w.kill();
    await proxy?.kill();
    await controller?.kill();
    const orphans = [];
    for (const name of ['wa', 'wb']) orphans.push(...(await destroyLeftoverBunkers(join(data.dir, name))));
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product');
  });

  test('a platform image from a local OCI layout bakes to ready, with progress on the way', async () => {
    const created = await admin.images.create({
      name: 'layout-busybox',
      scope: 'platform',
      source: { type: 'oci', ref: `oci:${join(imports, 'layout')}:v1` },
    });
    imageId = created.id;
    const phases = new Set<string>();
    const image = await admin.images.waitUntilBaked(imageId, {
      intervalMs: 100,
      timeoutMs: 120_000,
      onProgress: (i) => i.progress && phases.add(i.progress.phase),
    });
    assert.equal(image.state, 'ready', image.failure ?? '');
    assert.ok(image.sha256);
    sha = image.sha256;
    assert.ok(phases.size > 0, 'progress was visible while baking');
    // The scan runs right after the bake, once the image is already usable.
    const scanned = await eventually('the scan', async () => {
      const s = (await admin.images.get(imageId)).scan;
      return s?.state === 'done' || s?.state === 'failed' ? s : undefined;
    });
    assert.equal(scanned.state, 'done', scanned.error);
  });

  test('the first group member fetches it through the proxy', async () => {
    workers.push(await startWorker('wa'));
    const workerA = /worker (wk_\w+) at/.exec(workers[0]?.output() ?? '')?.[1] as string;
    groupId = (await admin.availabilityGroups.create('e2e')).id;
    await admin.availabilityGroups.addImage(groupId, imageId);
    await eventually('worker A online', async () =>
      (await admin.workers.list()).some((w) => w.id === workerA && w.state === 'online') ? true : undefined,
    );
    await admin.availabilityGroups.addWorker(groupId, workerA);
    await eventually('worker A holds the image', async () =>
      (await groupState()).some((w) => w.worker_id === workerA && w.state === 'ready') ? true : undefined,
    );
    assert.ok(existsSync(join(data.dir, 'wa', 'images', `${sha}.ext4`)));
    assert.equal(imageReads().length, 1, 'one full read through the proxy');
  });

  test('the second fetches it from the first: the proxy serves zero bytes for it', async () => {
    const readsBefore = imageReads().length;
    workers.push(await startWorker('wb'));
    const workerB = /worker (wk_\w+) at/.exec(workers[1]?.output() ?? '')?.[1] as string;
    await eventually('worker B online', async () =>
      (await admin.workers.list()).some((w) => w.id === workerB && w.state === 'online') ? true : undefined,
    );
    await admin.availabilityGroups.addWorker(groupId, workerB);
    await eventually('worker B holds the image', async () =>
      (await groupState()).some((w) => w.worker_id === workerB && w.state === 'ready') ? true : undefined,
    );
    assert.ok(existsSync(join(data.dir, 'wb', 'images', `${sha}.ext4`)));
    assert.equal(imageReads().length, readsBefore, `the proxy served the image again:\n${imageReads().join('\n')}`);
    assert.match(controller.output(), new RegExp(`worker ${workerB} warmed ${sha.slice(0, 12)} from peer`));
  });

  test("a worker's wiped cache heals: the ledger drops it, the worker is asked again, and gets it from its peer", async () => {
    const workerB = /worker (wk_\w+) at/.exec(workers[1]?.output() ?? '')?.[1] as string;
    const readsBefore = imageReads().length;
    const file = join(data.dir, 'wb', 'images', `${sha}.ext4`);
    const warmedFromPeer = new RegExp(`worker ${workerB} warmed ${sha.slice(0, 12)} from peer`, 'g');
    const warmsBefore = controller.output().match(warmedFromPeer)?.length ?? 0;
    rmSync(file);
    // The ledger's not-ready spell lasts as long as a peer fetch of a small image (milliseconds),
    // too short to poll for: what shows it noticed the loss is that it asked the worker again.
    // Usually within a heartbeat or two; some runs take ~30 s, the re-fetch from the peer waiting
    // out a stalled transfer (a known defect of the peer download, not of the ledger): allow it.
    await eventually(
      'the ledger notices the loss and the worker is asked again',
      async () => ((controller.output().match(warmedFromPeer)?.length ?? 0) > warmsBefore ? true : undefined),
      75_000,
    );
    await eventually(
      'worker B holds the image again',
      async () => (existsSync(file) && (await groupState()).some((w) => w.worker_id === workerB && w.state === 'ready') ? true : undefined),
      60_000,
    );
    assert.equal(imageReads().length, readsBefore, 'healed from the peer, not the proxy');
  });

  test('a bunker starts from the baked image and sees its layers', async () => {
    const b = await Bunker.create({ image: 'layout-busybox' }, tenant);
    try {
      const r = await b.exec('cat /data/keep.txt; ls /data; echo $(id -u user)');
      assert.equal(r.exit_code, 0, r.stderr);
      assert.match(r.stdout, /^kept\n/);
      assert.doesNotMatch(r.stdout, /remove-me/, 'the whiteout removed the file');
      assert.match(r.stdout, /1000\n$/);
    } finally {
      await b.terminate();
    }
  });
});
