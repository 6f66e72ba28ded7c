/**
 * A `ready` image is usable at once: when no availability group keeps it warm, its bunkers are
 * placed on workers that do not hold it yet (they fetch it at spawn); an image a group warms
 * keeps `lazy_pull: false` meaning holders only.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { newId, WorkerError } from '@scaibunker/core';
import { blobKeys } from '../../src/blobs/BlobStore.js';
import { workerGrant } from '../../src/storage/StorageGrant.js';
import { servedController } from '../helpers/fakeWorker.js';

const API = '/v1/modules/scaibunker';
const UNCACHED = 'f'.repeat(64);

describe('images at first use', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let imageId: string;
  const create = (image: string) =>
    fetch(`${served.url}${API}/bunkers`, {
      method: 'POST',
      headers: { authorization: `Bearer ${served.adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ image }),
    });

  before(async () => {
    served = await servedController();
    imageId = newId('im');
    // Ready, not lazy_pull, and not in the fake worker's cache.
    await served.controller.store.images.upsertPlatform({
      id: imageId,
      tenant_id: null,
      name: 'fresh',
      scope: 'platform',
      state: 'ready',
      sha256: UNCACHED,
      size_bytes: 1048576,
      created_at: new Date().toISOString(),
    });
  });
  after(async () => served?.close());

  test('an image no group warms is placed on a worker without it, which gets it at spawn', async () => {
    const res = await create('fresh');
    assert.equal(res.status, 201, await res.clone().text());
    const id = ((await res.json()) as { id: string }).id;
    assert.equal(served.worker.spawns.find((s) => s.bunkerId === id)?.imageSha256, UNCACHED);
    // Counted as an image-cache miss on /metrics: the worker fetches the image at spawn.
    assert.equal(served.controller.metrics.imagePlacements.get({ result: 'miss' }), 1);
    assert.equal(served.controller.metrics.imagePlacements.get({ result: 'hit' }), 0);
  });

  test("the in-process worker's link continues an image download from a byte offset (serve mode)", async () => {
    const bytes = randomBytes(100_000);
    const sha = createHash('sha256').update(bytes).digest('hex');
    await served.controller.services.storage.write(workerGrant, blobKeys.image(sha), Readable.from([bytes]), sha);
    const link = served.controller.localLink();
    const read = async (from?: number) => Buffer.concat(await (await link.openImage(sha, from)).toArray());
    assert.ok((await read()).equals(bytes));
    assert.ok((await read(60_000)).equals(bytes.subarray(60_000)));
    await assert.rejects(link.openImage('e'.repeat(64), 10), (err: WorkerError) => err.code === 'IMAGE_NOT_CACHED');
  });

  test('once a group warms it, lazy_pull false means holders only again', async () => {
    const group = newId('ag');
    assert.equal(
      await served.controller.store.availabilityGroups.insert({ id: group, name: 'warm', created_at: new Date().toISOString() }),
      true,
    );
    await served.controller.store.availabilityGroups.addImage(group, imageId);
    const res = await create('fresh');
    assert.equal(res.status, 503);
    const body = (await res.json()) as { error: { code: string; details: { reasons: string[] } } };
    assert.equal(body.error.code, 'NO_SUITABLE_WORKER');
    assert.match(body.error.details.reasons.join(' '), /image not cached/);
  });
});

describe('spawn refusals keep their own code', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  before(async () => {
    served = await servedController();
  });
  after(async () => served?.close());

  test('an image no origin has is IMAGE_NOT_READY, any other spawn failure WORKER_UNAVAILABLE', async () => {
    const spawn = served.worker.api.spawn;
    const post = () =>
      fetch(`${served.url}${API}/bunkers`, {
        method: 'POST',
        headers: { authorization: `Bearer ${served.adminKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ image: 'minimal' }),
      });
    try {
      served.worker.api.spawn = async () => {
        throw new WorkerError('IMAGE_NOT_CACHED', 'no origin has image e…');
      };
      const missing = await post();
      assert.equal(missing.status, 409);
      assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'IMAGE_NOT_READY');
      served.worker.api.spawn = async () => {
        throw new WorkerError('SPAWN_FAILED', 'crun said no');
      };
      const failed = await post();
      assert.equal(failed.status, 503);
      const body = (await failed.json()) as { error: { code: string; message: string; details: { worker_code: string } } };
      assert.equal(body.error.code, 'WORKER_UNAVAILABLE');
      assert.match(body.error.message, /crun said no/);
      assert.equal(body.error.details.worker_code, 'SPAWN_FAILED');
    } finally {
      served.worker.api.spawn = spawn;
    }
  });
});
