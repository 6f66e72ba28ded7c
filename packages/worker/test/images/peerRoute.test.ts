/**
 * Images through the real worker daemon and its HTTP surface, without root: two Workers (no
 * real provider) behind real WorkerHttpServers, a fake controller for storage and peer lookup.
 * Covers the peer route (`GET /v1/images/:sha256`), `POST /v1/images/:sha256/ensure` through
 * HttpWorkerClient, peer-before-storage between two workers, and spawn fetching a missing image.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { newId } from '@scaibunker/core';
import { Worker } from '../../src/daemon/Worker.js';
import { HttpControllerLink } from '../../src/http/HttpControllerLink.js';
import { HttpWorkerClient } from '../../src/http/HttpWorkerClient.js';
import { WorkerHttpServer } from '../../src/http/WorkerHttpServer.js';
import type { BunkerSpec, Provider } from '../../src/providers/Provider.js';
import { type SpawnRequest, WorkerError } from '../../src/WorkerApi.js';
import { FakeController, makeImage, sha256, TOKEN } from './support.js';

/** A container "provider" that records what it was asked to spawn and runs nothing. */
function recordingProvider(spawned: BunkerSpec[]): Provider {
  return new Proxy({ isolation: 'container' } as Provider, {
    get(target, prop) {
      if (prop === 'isolation') return target.isolation;
      if (prop === 'spawn')
        return async (spec: BunkerSpec) => {
          spawned.push(spec);
          throw new Error('the recording provider runs nothing');
        };
      if (prop === 'list') return async () => [];
      if (prop === 'then') return undefined; // not a thenable
      return async () => {};
    },
  });
}

async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkerError, `expected a WorkerError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected a rejection');
}

describe('worker images over HTTP', { timeout: 60_000 }, () => {
  let tmp: string;
  let controller: FakeController;
  const spawned: BunkerSpec[] = [];
  const started: Array<{ worker: Worker; server: WorkerHttpServer; client: HttpWorkerClient }> = [];

  async function startWorker(name: string): Promise<{ worker: Worker; server: WorkerHttpServer; client: HttpWorkerClient; url: string }> {
    const worker = new Worker({
      dataDir: join(tmp, name, 'data'),
      imageDir: join(tmp, name, 'images'),
      providers: [recordingProvider(spawned)],
      controller: new HttpControllerLink(controller.url, TOKEN),
      token: TOKEN,
      name,
      url: '',
      capacity: { cpu_millicores: 1000, memory_mb: 1024, disk_mb: 1024 },
      heartbeatIntervalMs: 3_600_000,
      logger: { info: () => {}, warn: () => {} },
    });
    await worker.init();
    // The Worker itself: the server finds `openCachedImage` on it for the peer route.
    const server = new WorkerHttpServer(worker, TOKEN);
    const url = await server.listen();
    const client = new HttpWorkerClient(url, TOKEN);
    started.push({ worker, server, client });
    return { worker, server, client, url };
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sb-peerroute-'));
    controller = new FakeController();
    await controller.listen();
  });

  after(async () => {
    for (const s of started) {
      s.client.close();
      await s.server.close().catch(() => {});
      await s.worker.stop().catch(() => {});
    }
    await controller?.close().catch(() => {});
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('serves a cached image to peers, whole, with its length; 404 / 400 / 401 otherwise', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    const b = await startWorker('route');
    assert.deepEqual(await b.client.ensureImage(image.sha), { source: 'proxy', bytes: image.bytes.length });

    const auth = { authorization: `Bearer ${TOKEN}` };
    const res = await fetch(`${b.url}/v1/images/${image.sha}`, { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(image.bytes.length));
    assert.equal(sha256(Buffer.from(await res.arrayBuffer())), image.sha);

    const missing = await fetch(`${b.url}/v1/images/${'0'.repeat(64)}`, { headers: auth });
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'IMAGE_NOT_CACHED');

    for (const bad of ['abc', image.sha.toUpperCase(), `${image.sha}0`]) {
      const r = await fetch(`${b.url}/v1/images/${bad}`, { headers: auth });
      assert.equal(r.status, 400, bad);
      await r.body?.cancel();
    }
    const ensureBad = await fetch(`${b.url}/v1/images/xyz/ensure`, { method: 'POST', headers: auth });
    assert.equal(ensureBad.status, 400);
    await ensureBad.body?.cancel();

    for (const headers of [{}, { authorization: 'Bearer wrong' }] as Array<Record<string, string>>) {
      const r = await fetch(`${b.url}/v1/images/${image.sha}`, { headers });
      assert.equal(r.status, 401);
      await r.body?.cancel();
      const e = await fetch(`${b.url}/v1/images/${image.sha}/ensure`, { method: 'POST', headers });
      assert.equal(e.status, 401);
      await e.body?.cancel();
    }
  });

  it('serves the rest of a cached image for `Range: bytes=N-` (206); any other Range whole', async () => {
    const image = makeImage(1);
    controller.images.set(image.sha, image.bytes);
    const w = await startWorker('ranges');
    await w.client.ensureImage(image.sha);
    const size = image.bytes.length;
    const get = (range: string) => fetch(`${w.url}/v1/images/${image.sha}`, { headers: { authorization: `Bearer ${TOKEN}`, range } });

    const from = 100_001;
    const rest = await get(`bytes=${from}-`);
    assert.equal(rest.status, 206);
    assert.equal(rest.headers.get('content-range'), `bytes ${from}-${size - 1}/${size}`);
    assert.equal(rest.headers.get('content-length'), String(size - from));
    assert.equal(rest.headers.get('accept-ranges'), 'bytes');
    assert.ok(Buffer.from(await rest.arrayBuffer()).equals(image.bytes.subarray(from)));

    const last = await get(`bytes=${size - 1}-`);
    assert.equal(last.status, 206);
    assert.deepEqual([...Buffer.from(await last.arrayBuffer())], [image.bytes[size - 1]]);

    // Forms a continuing download never sends, and starts outside the image: the whole image.
    for (const range of [
      'bytes=0-',
      'bytes=5-10',
      'bytes=-5',
      'bytes=1-,5-',
      'items=3-',
      'bytes=x-',
      `bytes=${size}-`,
      `bytes=${size * 2}-`,
    ]) {
      const r = await get(range);
      assert.equal(r.status, 200, range);
      assert.equal(r.headers.get('content-length'), String(size), range);
      assert.equal(sha256(Buffer.from(await r.arrayBuffer())), image.sha, range);
    }

    // The worker client asks the same way and says where the stream starts.
    const opened = await w.client.openCachedImage(image.sha, from);
    assert.equal(opened.bytes, size);
    assert.equal(opened.from, from);
    const chunks: Buffer[] = [];
    for await (const c of opened.stream) chunks.push(c as Buffer);
    assert.ok(Buffer.concat(chunks).equals(image.bytes.subarray(from)));
    const whole = await w.client.openCachedImage(image.sha, size);
    assert.equal(whole.from, undefined, 'a start outside the image is answered whole');
    whole.stream.destroy();
  });

  it('ensureImage: storage for the first worker, its peer for the second, the cache after', async () => {
    const image = makeImage(3);
    controller.images.set(image.sha, image.bytes);
    const b = await startWorker('b');
    const a = await startWorker('a');

    assert.deepEqual(await b.client.ensureImage(image.sha), { source: 'proxy', bytes: image.bytes.length });
    assert.ok((await b.worker.buildHeartbeat()).cached_images.includes(image.sha), "b's heartbeat reports it");

    controller.peers.set(image.sha, [{ worker_id: b.worker.id, url: b.url }]);
    assert.deepEqual(await a.client.ensureImage(image.sha), { source: 'peer', bytes: image.bytes.length });
    assert.equal(controller.imageRequests.get(image.sha), 1, 'storage served b only');
    assert.ok(controller.peerLookups.includes(a.worker.id), 'a asked for peers under its own id');
    assert.deepEqual((await a.worker.buildHeartbeat()).cached_images, [image.sha]);

    assert.deepEqual(await a.client.ensureImage(image.sha), { source: 'cache', bytes: image.bytes.length });
  });

  it('carries IMAGE_NOT_CACHED and IMAGE_FETCH_FAILED across HTTP', async () => {
    const w = await startWorker('errors');
    assert.equal(await errorCode(w.client.ensureImage(makeImage(1).sha)), 'IMAGE_NOT_CACHED');
    const corrupt = makeImage(1);
    controller.images.set(corrupt.sha, corrupt.bytes);
    controller.misbehave.set(corrupt.sha, 'corrupt');
    assert.equal(await errorCode(w.client.ensureImage(corrupt.sha)), 'IMAGE_FETCH_FAILED');
    assert.deepEqual(await w.worker.images.list(), []);
  });

  it('spawn fetches a missing image before the provider runs, and refuses one no origin has', async () => {
    const image = makeImage(1);
    controller.images.set(image.sha, image.bytes);
    const w = await startWorker('spawn');
    const request = (imageSha256: string): SpawnRequest => ({
      bunkerId: newId('bk'),
      imageSha256,
      isolation: 'container',
      cpuMillicores: 100,
      memoryMb: 64,
      diskMb: 64,
      networkProfile: 'isolated',
      hostname: 'bunker',
    });

    // The recording provider fails every spawn, but only after the image is in place.
    assert.equal(await errorCode(w.client.spawn(request(image.sha))), 'SPAWN_FAILED');
    const spec = spawned.at(-1);
    assert.equal(spec?.imagePath, w.worker.images.path(image.sha));
    assert.ok(existsSync(w.worker.images.path(image.sha)));

    const before = spawned.length;
    assert.equal(await errorCode(w.client.spawn(request(makeImage(1).sha))), 'IMAGE_NOT_CACHED');
    assert.equal(spawned.length, before, 'the provider was not asked');
  });
});
