/**
 * ImageCache against real HTTP: a fake controller (storage proxy + peer lookup, reached through
 * the real HttpControllerLink) and peers served by the real WorkerHttpServer route. No root, no
 * images needed: the "images" are a few MiB of random bytes.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { HttpControllerLink } from '../../src/http/HttpControllerLink.js';
import { WorkerHttpServer } from '../../src/http/WorkerHttpServer.js';
import { ImageCache, type ImageCacheOptions } from '../../src/images/ImageCache.js';
import { LinkImageOrigins } from '../../src/images/LinkImageOrigins.js';
import { type CachedImageSource, type WorkerApi, WorkerError } from '../../src/WorkerApi.js';
import { FakeController, flipped, makeImage, sha256, type TestImage, TOKEN } from './support.js';

const WORKER_ID = 'wk_imagecachetest000001';

/** A WorkerApi that is never called: these servers only serve images. */
const noApi = new Proxy({} as WorkerApi, {
  get: (_t, prop) => async () => {
    throw new Error(`not expected: ${String(prop)}`);
  },
});

/** A peer worker's HTTP server serving `source`, counting the image requests it got (and the byte each asked from). */
async function servePeer(
  source: CachedImageSource,
): Promise<{ url: string; requests: string[]; froms: number[]; server: WorkerHttpServer }> {
  const requests: string[] = [];
  const froms: number[] = [];
  const counted: CachedImageSource = {
    openCachedImage: (sha, from) => {
      requests.push(sha);
      froms.push(from ?? 0);
      return source.openCachedImage(sha, from);
    },
  };
  const server = new WorkerHttpServer(noApi, TOKEN, { images: counted });
  return { url: await server.listen(), requests, froms, server };
}

/**
 * A peer whose answer is the whole image's length but only its first `cutAt` bytes, then
 * nothing: a stall, so the cut falls exactly after those bytes (a connection destroyed mid-write
 * could drop some of them).
 */
async function stallingPeer(image: TestImage, cutAt: number): ReturnType<typeof servePeer> {
  return servePeer({
    openCachedImage: async () => {
      const stream = new Readable({ read() {} });
      stream.push(image.bytes.subarray(0, cutAt));
      return { stream, bytes: image.bytes.length };
    },
  });
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<WorkerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkerError, `expected a WorkerError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected a rejection with ${code}`);
}

describe('ImageCache', { timeout: 60_000 }, () => {
  let tmp: string;
  let controller: FakeController;
  const servers: WorkerHttpServer[] = [];
  let dirs = 0;

  /** A cache on a fresh directory, fetching through the fake controller. */
  function newCache(opts: Partial<ImageCacheOptions> = {}): ImageCache {
    return new ImageCache({
      imageDir: join(tmp, `cache-${++dirs}`),
      origins: new LinkImageOrigins(new HttpControllerLink(controller.url, TOKEN), () => WORKER_ID),
      token: TOKEN,
      selfUrl: 'http://127.0.0.1:1',
      ...opts,
    });
  }

  /** A peer holding `image` in its own cache, served by a real WorkerHttpServer. */
  async function goodPeer(image: TestImage): Promise<{ url: string; requests: string[]; froms: number[] }> {
    const dir = join(tmp, `peer-${++dirs}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, `${image.sha}.ext4`), image.bytes);
    const cache = new ImageCache({ imageDir: dir, origins: { peers: async () => [], openFromStorage: async () => assert.fail() } });
    const peer = await servePeer({ openCachedImage: (sha, from) => cache.openCached(sha, from) });
    servers.push(peer.server);
    return peer;
  }

  async function assertCached(cache: ImageCache, image: TestImage): Promise<void> {
    const onDisk = await readFile(cache.path(image.sha));
    assert.equal(onDisk.length, image.bytes.length);
    assert.equal(sha256(onDisk), image.sha);
    assert.ok(await cache.has(image.sha));
    assert.ok((await cache.list()).includes(image.sha));
  }

  async function partials(cache: ImageCache): Promise<string[]> {
    return readdir(join(cache.path('0'.repeat(64)), '..', '.partial')).catch(() => []);
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'sb-imagecache-'));
    controller = new FakeController();
    await controller.listen();
  });

  after(async () => {
    await Promise.allSettled(servers.map((s) => s.close()));
    await controller?.close().catch(() => {});
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('fetches from storage when no peer has the image, then answers from the cache', async () => {
    const image = makeImage(3);
    controller.images.set(image.sha, image.bytes);
    const cache = newCache();
    const progress: number[] = [];
    const got = await cache.ensure(image.sha, { onProgress: (p) => progress.push(p.bytes) });
    assert.deepEqual(got, { path: cache.path(image.sha), source: 'proxy', bytes: image.bytes.length });
    await assertCached(cache, image);
    assert.equal(progress.at(-1), image.bytes.length);
    assert.equal(controller.imageRequests.get(image.sha), 1);
    assert.ok(controller.peerLookups.includes(WORKER_ID), 'peers were asked for with this worker id');
    assert.ok(controller.auth.every((a) => a === `Bearer ${TOKEN}`));
    assert.deepEqual(await partials(cache), []);

    const again = await cache.ensure(image.sha);
    assert.deepEqual(again, { path: cache.path(image.sha), source: 'cache', bytes: image.bytes.length });
    assert.equal(controller.imageRequests.get(image.sha), 1, 'a cached image is not fetched again');
  });

  it('fetches from a peer first, skipping its own URL, and storage serves nothing', async () => {
    const image = makeImage(3);
    controller.images.set(image.sha, image.bytes);
    const peer = await goodPeer(image);
    const self = await goodPeer(image); // "this worker": listed by the controller, never asked
    controller.peers.set(image.sha, [
      { worker_id: 'wk_self', url: `${self.url}/` },
      { worker_id: 'wk_peer', url: peer.url },
    ]);
    const cache = newCache({ selfUrl: self.url });
    const got = await cache.ensure(image.sha);
    assert.equal(got.source, 'peer');
    assert.equal(got.bytes, image.bytes.length);
    await assertCached(cache, image);
    assert.deepEqual(peer.requests, [image.sha]);
    assert.deepEqual(self.requests, []);
    assert.equal(controller.imageRequests.get(image.sha) ?? 0, 0);
    assert.equal(controller.imageBytesSent.get(image.sha) ?? 0, 0, 'no proxy bytes when a peer served it');
  });

  it('falls back to the next source when a peer sends wrong bytes or stalls', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    const wrong = flipped(image.bytes, 7);
    const liar = await servePeer({ openCachedImage: async () => ({ stream: Readable.from([wrong]), bytes: wrong.length }) });
    servers.push(liar.server);
    // Sends its first 64 KiB, then nothing, never ending.
    let stalled: Readable | undefined;
    const staller = await servePeer({
      openCachedImage: async () => {
        stalled = new Readable({ read() {} });
        stalled.push(image.bytes.subarray(0, 65536));
        return { stream: stalled, bytes: image.bytes.length };
      },
    });
    servers.push(staller.server);
    controller.peers.set(image.sha, [
      { worker_id: 'wk_liar', url: liar.url },
      { worker_id: 'wk_staller', url: staller.url },
    ]);
    const warnings: string[] = [];
    const cache = newCache({ stallTimeoutMs: 300, logger: { info: () => {}, warn: (m) => warnings.push(m) } });
    const got = await cache.ensure(image.sha);
    assert.equal(got.source, 'proxy');
    await assertCached(cache, image);
    assert.deepEqual(liar.requests, [image.sha]);
    assert.deepEqual(staller.requests, [image.sha]);
    assert.match(warnings.join('\n'), /wk_liar.*sha256 mismatch/);
    assert.match(warnings.join('\n'), /wk_staller.*stalled/);
    assert.deepEqual(await partials(cache), []);
  });

  it('is IMAGE_NOT_CACHED when neither a peer nor storage has the image', async () => {
    const image = makeImage(1);
    const cache = newCache();
    await rejectsWith(cache.ensure(image.sha), 'IMAGE_NOT_CACHED', /no peer and not in storage/);
    assert.equal(await cache.has(image.sha), false);
    assert.deepEqual(await cache.list(), []);
    assert.deepEqual(await partials(cache), []);
  });

  it('shares one download among concurrent ensure() calls', async () => {
    const image = makeImage(4);
    controller.images.set(image.sha, image.bytes);
    const cache = newCache();
    const seen = [0, 0, 0, 0, 0];
    const results = await Promise.all(
      seen.map((_, i) =>
        cache.ensure(image.sha, {
          onProgress: (p) => {
            seen[i] = p.bytes;
          },
        }),
      ),
    );
    assert.equal(controller.imageRequests.get(image.sha), 1);
    for (const r of results) assert.deepEqual(r, { path: cache.path(image.sha), source: 'proxy', bytes: image.bytes.length });
    assert.ok(
      seen.every((n) => n === image.bytes.length),
      `every caller saw the progress: ${seen}`,
    );
    await assertCached(cache, image);
  });

  it('removes leftover partial downloads at start, and remove() drops an image', async () => {
    const image = makeImage(1);
    const dir = join(tmp, `cache-${++dirs}`);
    await mkdir(join(dir, '.partial'), { recursive: true });
    await writeFile(join(dir, '.partial', `${image.sha}.deadbeef`), image.bytes.subarray(0, 1000));
    await writeFile(join(dir, `${image.sha}.ext4`), image.bytes);
    const cache = newCache({ imageDir: dir });
    await cache.start();
    assert.deepEqual(await readdir(join(dir, '.partial')), []);
    assert.deepEqual(await cache.list(), [image.sha], 'the complete image stays; .partial is not an image');
    await cache.remove(image.sha);
    assert.deepEqual(await cache.list(), []);
    await cache.remove(image.sha); // idempotent
  });

  it('fails with IMAGE_FETCH_FAILED and leaves no file when storage keeps cutting the body short', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    controller.misbehave.set(image.sha, 'truncate');
    const cache = newCache();
    await rejectsWith(cache.ensure(image.sha), 'IMAGE_FETCH_FAILED', /from storage: .*after \d+ bytes, continuing from byte \d+/);
    // Each cut brought bytes, so each was continued, up to the cap on attempts.
    assert.equal(controller.imageRequests.get(image.sha), 5);
    assert.equal(existsSync(cache.path(image.sha)), false);
    assert.deepEqual(await cache.list(), []);
    assert.deepEqual(await partials(cache), []);
  });

  it('continues a download storage cut short with a Range request, never fetching a byte twice', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    controller.misbehave.set(image.sha, 'truncate-once');
    const warnings: string[] = [];
    const cache = newCache({ logger: { info: () => {}, warn: (m) => warnings.push(m) } });
    const progress: number[] = [];
    const got = await cache.ensure(image.sha, { onProgress: (p) => progress.push(p.bytes) });
    assert.deepEqual(got, { path: cache.path(image.sha), source: 'proxy', bytes: image.bytes.length });
    await assertCached(cache, image);
    const half = image.bytes.length >> 1;
    // The second request asked for the rest only, and the bytes sent add up to the image once.
    assert.deepEqual(controller.imageRanges.get(image.sha), [undefined, `bytes=${half}-`]);
    assert.equal(controller.imageBytesSent.get(image.sha), image.bytes.length);
    assert.match(warnings.join('\n'), new RegExp(`stopped at byte ${half}, continuing from there`));
    // Progress counts the kept bytes: it never goes back to 0.
    assert.ok(
      progress.every((n, i) => i === 0 || n >= (progress[i - 1] as number)),
      'progress only grows',
    );
    assert.equal(progress.at(-1), image.bytes.length);
    assert.deepEqual(await partials(cache), []);
  });

  it('a peer cut short is continued by storage from where the peer stopped', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    const cutAt = 300_000;
    // A peer whose body breaks off after `cutAt` bytes (the opener stands in for its HTTP answer).
    const opened: string[] = [];
    const cutter = {
      open: async (peer: { workerId: string }) => {
        opened.push(peer.workerId);
        return Readable.from(
          (async function* () {
            yield image.bytes.subarray(0, cutAt);
            throw new Error('peer went away');
          })(),
        );
      },
    };
    controller.peers.set(image.sha, [{ worker_id: 'wk_cutter', url: 'http://127.0.0.1:2' }]);
    const cache = newCache({ peers: cutter });
    const got = await cache.ensure(image.sha);
    assert.deepEqual(opened, ['wk_cutter']);
    assert.equal(got.source, 'proxy');
    await assertCached(cache, image);
    const ranges = controller.imageRanges.get(image.sha) ?? [];
    assert.equal(ranges.length, 1);
    assert.deepEqual(ranges, [`bytes=${cutAt}-`], 'storage was asked for the rest only');
    assert.equal(controller.imageBytesSent.get(image.sha), image.bytes.length - cutAt);
  });

  it('a peer cut short is continued by the next peer with a Range request; storage serves nothing', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    const cutAt = 300_000;
    const cutter = await stallingPeer(image, cutAt);
    servers.push(cutter.server);
    const peer = await goodPeer(image);
    controller.peers.set(image.sha, [
      { worker_id: 'wk_cutter', url: cutter.url },
      { worker_id: 'wk_peer', url: peer.url },
    ]);
    const warnings: string[] = [];
    const cache = newCache({ stallTimeoutMs: 500, logger: { info: () => {}, warn: (m) => warnings.push(m) } });
    const got = await cache.ensure(image.sha);
    assert.deepEqual(got, { path: cache.path(image.sha), source: 'peer', bytes: image.bytes.length });
    await assertCached(cache, image);
    assert.deepEqual(cutter.froms, [0]);
    assert.deepEqual(peer.froms, [cutAt], 'the second peer was asked for the rest only');
    assert.equal(controller.imageRequests.get(image.sha) ?? 0, 0);
    assert.match(warnings.join('\n'), /wk_cutter failed.*stalled/);
    assert.deepEqual(await partials(cache), []);
  });

  it('skips a peer that answers a range request whole, keeping the bytes for storage to continue', async () => {
    const image = makeImage(2);
    controller.images.set(image.sha, image.bytes);
    const cutAt = 200_000;
    const cutter = await stallingPeer(image, cutAt);
    servers.push(cutter.server);
    // A peer that serves whole images only (it ignores the byte asked from).
    const whole = await servePeer({ openCachedImage: async () => ({ stream: Readable.from([image.bytes]), bytes: image.bytes.length }) });
    servers.push(whole.server);
    controller.peers.set(image.sha, [
      { worker_id: 'wk_cutter', url: cutter.url },
      { worker_id: 'wk_whole', url: whole.url },
    ]);
    const warnings: string[] = [];
    const cache = newCache({ stallTimeoutMs: 500, logger: { info: () => {}, warn: (m) => warnings.push(m) } });
    const got = await cache.ensure(image.sha);
    assert.equal(got.source, 'proxy');
    await assertCached(cache, image);
    assert.deepEqual(whole.froms, [cutAt]);
    assert.match(warnings.join('\n'), /wk_whole.*sent the whole image/);
    assert.deepEqual(controller.imageRanges.get(image.sha), [`bytes=${cutAt}-`], 'storage was asked for the rest only');
    assert.equal(controller.imageBytesSent.get(image.sha), image.bytes.length - cutAt);
  });

  it('starts again from byte 0 when storage answers a range request whole', async () => {
    const image = makeImage(1);
    controller.images.set(image.sha, image.bytes);
    controller.misbehave.set(image.sha, 'no-range');
    const cache = newCache();
    await cache.ensure(image.sha);
    await assertCached(cache, image);
    const half = image.bytes.length >> 1;
    assert.deepEqual(controller.imageRanges.get(image.sha), [undefined, `bytes=${half}-`, undefined]);
  });

  it('fails with IMAGE_FETCH_FAILED naming the digest when storage sends wrong bytes', async () => {
    const image = makeImage(1);
    controller.images.set(image.sha, image.bytes);
    controller.misbehave.set(image.sha, 'corrupt');
    const cache = newCache();
    await rejectsWith(cache.ensure(image.sha), 'IMAGE_FETCH_FAILED', /sha256 mismatch/);
    assert.equal(existsSync(cache.path(image.sha)), false);
    assert.deepEqual(await partials(cache), []);
  });

  it('stops the download when its only caller gives up', async () => {
    const image = makeImage(1);
    // Storage that never sends a byte: only the caller's signal ends this.
    let opened!: () => void;
    const wasOpened = new Promise<void>((r) => {
      opened = r;
    });
    let source: Readable | undefined;
    const cache = new ImageCache({
      imageDir: join(tmp, `cache-${++dirs}`),
      origins: {
        peers: async () => [],
        openFromStorage: async () => {
          source = new Readable({ read() {} });
          opened();
          return source;
        },
      },
    });
    const abort = new AbortController();
    const pending = cache.ensure(image.sha, { signal: abort.signal });
    await wasOpened;
    abort.abort(new Error('caller gave up'));
    await assert.rejects(pending, /caller gave up/);
    await new Promise<void>((resolve) => (source?.destroyed ? resolve() : source?.once('close', resolve)));
    assert.equal(source?.destroyed, true, 'the source stream was destroyed');
    assert.equal(await cache.has(image.sha), false);
  });

  it('rejects what is not a sha256', async () => {
    const cache = newCache();
    await rejectsWith(cache.ensure('../../etc/passwd'), 'IMAGE_NOT_CACHED', /not an image sha256/);
    assert.throws(() => cache.path('ABC'), WorkerError);
  });
});
