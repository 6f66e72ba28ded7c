/**
 * One conformance suite for every blob store backend: the local directory, and S3 against a real
 * s3rver (127.0.0.1, port 0, a temp directory). Both must stream, keep a failed put invisible (whole
 * or not at all), list only direct children in key order, and reject the same keys.
 *
 * s3rver 3.7.1 runs in a child process started with --openssl-legacy-provider: it encrypts its
 * ListObjectsV2 continuation tokens with DES, which Node 20's OpenSSL 3 refuses otherwise (every
 * truncated listing would be an InternalError). It does not implement AbortMultipartUpload (405),
 * so for S3 "no partial upload left" is checked as: every multipart upload created was completed
 * or an abort was sent for it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CreateBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApiError } from '@scaibunker/core';
import type { BlobStore } from '../../src/blobs/BlobStore.js';
import { LocalDirBlobStore } from '../../src/blobs/LocalDirBlobStore.js';
import { openBlobStore, parseS3BlobStoreUrl } from '../../src/blobs/openBlobStore.js';
import { S3BlobStore } from '../../src/blobs/S3BlobStore.js';
import { Controller } from '../../src/Controller.js';
import { startS3rver } from '../helpers/s3rver.js';

// Full GCs before each memory sample, so that garbage does not count as memory in use.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function s3Store(endpoint: string, keyPrefix: string): S3BlobStore {
  return new S3BlobStore({
    bucket: BUCKET,
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    keyPrefix,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
}

type Fields = Record<string, unknown>;

/** Calls `on.sent` as `client` sends each command and `on.done` when one succeeds. */
function watch(
  client: S3Client,
  on: { sent?(command: string, input: Fields): void; done?(command: string, input: Fields, output: Fields): void },
) {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const command = String(context.commandName);
      const input = args.input as Fields;
      on.sent?.(command, input);
      const out = await next(args);
      on.done?.(command, input, out.output as unknown as Fields);
      return out;
    },
    { step: 'initialize', name: 'testWatch' },
  );
}

const MiB = 1024 * 1024;
const BUCKET = 'scaibunker-test';

interface Backend {
  name: string;
  /** How much memory a streamed put may hold (whatever the object's size). */
  putMemory: number;
  /** Starts whatever the backend needs; `close` stops and removes it (safe after a failed open). */
  open(): Promise<Opened>;
}

interface Opened {
  store: BlobStore;
  close(): Promise<void>;
  /** Partial uploads the backend holds (temp files, multipart uploads). */
  pending(): Promise<string[]>;
  /** Resolves once the backend has stored part of the put in progress. */
  partStored(): Promise<void>;
}

const BACKENDS: Backend[] = [
  {
    name: 'local directory',
    putMemory: 8 * MiB,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'blobs-local-'));
      return {
        store: new LocalDirBlobStore(dir),
        close: () => rm(dir, { recursive: true, force: true }),
        // Temp files of puts in progress, anywhere under the root.
        pending: async () => (await readdir(dir, { recursive: true })).filter((n) => n.includes('.tmp-')),
        // The put pulls its source only as the temp file drains, so what was pulled is mostly written.
        partStored: async () => {},
      };
    },
  },
  {
    name: 's3 (s3rver)',
    // Up to 4 parts of 8 MiB in flight and the next one being read, plus slack.
    putMemory: 48 * MiB,
    async open() {
      let server: Awaited<ReturnType<typeof startS3rver>> | undefined;
      let store: S3BlobStore | undefined;
      const close = async () => {
        store?.destroy();
        await server?.stop();
      };
      // Multipart uploads created and not yet completed or aborted (by the client: see the header).
      const open = new Set<string>();
      let onPart = () => {};
      try {
        server = await startS3rver();
        store = s3Store(server.endpoint, 'deploy/a/');
        await store.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
        watch(store.client, {
          // An abort counts when sent: s3rver answers it 405 (not implemented).
          sent: (command, input) => {
            if (command === 'AbortMultipartUploadCommand') open.delete(String(input.UploadId));
          },
          done: (command, input, output) => {
            if (command === 'CreateMultipartUploadCommand') open.add(String(output.UploadId));
            if (command === 'UploadPartCommand') onPart();
            if (command === 'CompleteMultipartUploadCommand') open.delete(String(input.UploadId));
          },
        });
      } catch (err) {
        await close();
        throw err;
      }
      return {
        store,
        close,
        pending: async () => [...open],
        // Settles after the next successful UploadPart.
        partStored: () => new Promise<void>((resolve) => (onPart = resolve)),
      };
    },
  },
];

/** `bytes` of deterministic data in 64 KiB chunks, generated as read (never all in memory), and its sha256. */
function generated(bytes: number, opts: { failAfter?: number; onChunk?: (sent: number) => void | Promise<void> } = {}) {
  const hash = createHash('sha256');
  const base = createHash('sha512').update('seed').digest();
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < chunk.length; i += base.length) base.copy(chunk, i);
  let sent = 0;
  const stream = Readable.from(
    (async function* () {
      for (let n = 0; sent < bytes; n++) {
        if (opts.failAfter !== undefined && sent >= opts.failAfter) throw new Error('source failed mid-stream');
        const c = Buffer.from(chunk.subarray(0, Math.min(chunk.length, bytes - sent)));
        c.writeUInt32BE(n, 0);
        hash.update(c);
        sent += c.length;
        yield c;
        await opts.onChunk?.(sent);
      }
    })(),
    { objectMode: false },
  );
  return { stream, digest: () => hash.digest('hex') };
}

async function readAll(stream: Readable | undefined): Promise<Buffer> {
  assert.ok(stream, 'object is absent');
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function sha256Of(stream: Readable | undefined): Promise<{ hex: string; bytes: number }> {
  assert.ok(stream, 'object is absent');
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const c of stream) {
    hash.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { hex: hash.digest('hex'), bytes };
}

/** Heap and Buffer memory in use: after full GCs, with a turn of the event loop for freed Buffers to be released. */
async function memoryInUse(): Promise<number> {
  for (let i = 0; i < 2; i++) {
    gc();
    await new Promise(setImmediate);
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

for (const backend of BACKENDS) {
  describe(`blob store: ${backend.name}`, () => {
    let store: BlobStore;
    let pending: Opened['pending'];
    let partStored: Opened['partStored'];
    let close: Opened['close'] | undefined;

    before(async () => {
      ({ store, pending, partStored, close } = await backend.open());
    });
    after(async () => {
      await close?.();
    });

    test('put and get round-trip a Buffer and a stream; a put replaces the object', async () => {
      assert.deepEqual(await store.put('rt/buffer', Buffer.from('hello blob')), { bytes: 10 });
      assert.equal((await readAll(await store.get('rt/buffer'))).toString(), 'hello blob');
      assert.deepEqual(await store.put('rt/stream', Readable.from([Buffer.from('one '), Buffer.from('two')])), { bytes: 7 });
      assert.equal((await readAll(await store.get('rt/stream'))).toString(), 'one two');
      assert.deepEqual(await store.put('rt/empty', Buffer.alloc(0)), { bytes: 0 });
      assert.equal((await readAll(await store.get('rt/empty'))).length, 0);
      await store.put('rt/buffer', Readable.from([Buffer.from('replaced')]));
      assert.equal((await readAll(await store.get('rt/buffer'))).toString(), 'replaced');
    });

    // 64 MiB rather than 40: S3 holds up to (queue 4 + 1) × 8 MiB parts by design, so below ~48 MiB
    // a bounded put and a buffered one look alike.
    test('a 64 MiB object streams in and out with bounded memory (multipart on S3)', async () => {
      const size = 64 * MiB;
      const baseline = await memoryInUse();
      let peak = 0;
      const src = generated(size, {
        onChunk: async (sent) => {
          if (sent % (4 * MiB) === 0) peak = Math.max(peak, (await memoryInUse()) - baseline);
        },
      });
      assert.deepEqual(await store.put('big/object', src.stream), { bytes: size });
      const got = await sha256Of(await store.get('big/object'));
      assert.equal(got.bytes, size);
      assert.equal(got.hex, src.digest());
      assert.ok(peak < backend.putMemory, `memory grew by ${(peak / MiB).toFixed(1)} MiB while putting ${size / MiB} MiB`);
      assert.deepEqual((await store.list('big/', { limit: 10 })).items, [{ key: 'big/object', bytes: size }]);
    });

    test('stat and open: size, the declared sha256 kept with the object, byte ranges', async () => {
      const data = Buffer.from('0123456789abcdef');
      const sha256 = createHash('sha256').update(data).digest('hex');
      await store.put('meta/with-sum', Readable.from([data]), { sha256 });
      await store.put('meta/without', data);
      assert.deepEqual(await store.stat('meta/with-sum'), { size: 16, sha256 });
      assert.deepEqual(await store.stat('meta/without'), { size: 16 });
      assert.equal(await store.stat('meta/missing'), undefined);
      assert.equal(await store.stat('meta'), undefined, 'a "directory" is not an object');

      const whole = await store.open('meta/with-sum');
      assert.deepEqual(whole?.info, { size: 16, sha256 });
      assert.equal((await readAll(whole?.body)).toString(), '0123456789abcdef');
      const middle = await store.open('meta/with-sum', { start: 4, end: 7 });
      assert.deepEqual(middle?.info, { size: 16, sha256 }, 'info describes the whole object');
      assert.equal((await readAll(middle?.body)).toString(), '4567');
      const tail = await store.open('meta/with-sum', { start: 10 });
      assert.equal((await readAll(tail?.body)).toString(), 'abcdef');
      assert.equal(await store.open('meta/missing'), undefined);

      // Rewriting without a checksum must not leave the old object's checksum behind.
      await store.put('meta/with-sum', Buffer.from('other'));
      assert.deepEqual(await store.stat('meta/with-sum'), { size: 5 });
      await store.delete('meta/without');
      assert.equal(await store.stat('meta/without'), undefined);
    });

    test('get of a missing key is undefined', async () => {
      assert.equal(await store.get('missing/nothing-here'), undefined);
      assert.equal(await store.get('rt'), undefined, 'a "directory" is not an object');
    });

    test('delete removes the object and is idempotent', async () => {
      await store.put('del/x', Buffer.from('x'));
      await store.delete('del/x');
      assert.equal(await store.get('del/x'), undefined);
      await store.delete('del/x');
      await store.delete('del/never-existed');
      assert.deepEqual(await store.list('del/', { limit: 10 }), { items: [], more: false });
    });

    test('list: direct children only, ascending, after startAfter, limit and more', async () => {
      for (const k of ['ls/c', 'ls/a', 'ls/b.ndjson', 'ls/sub/deep', 'ls/sub2/x/y', 'lsx/not-mine', 'ls-sibling']) {
        await store.put(k, Buffer.from(k));
      }
      const all = await store.list('ls/', { limit: 100 });
      assert.deepEqual(all, {
        items: [
          { key: 'ls/a', bytes: 4 },
          { key: 'ls/b.ndjson', bytes: 11 },
          { key: 'ls/c', bytes: 4 },
        ],
        more: false,
      });
      assert.deepEqual(await store.list('ls/', { limit: 2 }), { items: all.items.slice(0, 2), more: true });
      assert.deepEqual(await store.list('ls/', { limit: 3 }), { items: all.items, more: false });
      assert.deepEqual(await store.list('ls/', { startAfter: 'ls/a', limit: 100 }), { items: all.items.slice(1), more: false });
      assert.deepEqual(await store.list('ls/', { startAfter: 'ls/a', limit: 1 }), { items: all.items.slice(1, 2), more: true });
      assert.deepEqual(await store.list('ls/', { startAfter: 'ls/c', limit: 100 }), { items: [], more: false });
      // Paging one at a time visits every object once, in order.
      const paged: string[] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page = await store.list('ls/', { ...(startAfter ? { startAfter } : {}), limit: 1 });
        paged.push(...page.items.map((i) => i.key));
        if (!page.more) break;
        startAfter = page.items.at(-1)?.key;
      }
      assert.deepEqual(paged, ['ls/a', 'ls/b.ndjson', 'ls/c']);
      assert.deepEqual(await store.list('nothing-here/', { limit: 10 }), { items: [], more: false });
    });

    test('list: sub-directories do not use up the limit', async () => {
      // Sub-"directories" sort before the objects; S3 counts them against MaxKeys.
      for (let i = 0; i < 5; i++) await store.put(`many/d${i}/x`, Buffer.from('x'));
      for (const k of ['many/e1', 'many/e2', 'many/e3']) await store.put(k, Buffer.from('e'));
      assert.deepEqual(await store.list('many/', { limit: 2 }), {
        items: [
          { key: 'many/e1', bytes: 1 },
          { key: 'many/e2', bytes: 1 },
        ],
        more: true,
      });
      assert.deepEqual(await store.list('many/', { startAfter: 'many/d2', limit: 3 }), {
        items: ['many/e1', 'many/e2', 'many/e3'].map((key) => ({ key, bytes: 1 })),
        more: false,
      });
    });

    test('a put in progress is never listed; one that fails mid-stream leaves no object and no partial upload', async () => {
      // Fail after 12 MiB: on S3 that is past the first 8 MiB part, so a multipart upload exists.
      let inProgress: { listed: unknown; pending: string[] } | undefined;
      const stored = partStored();
      const src = generated(40 * MiB, {
        failAfter: 12 * MiB,
        onChunk: async (sent) => {
          if (sent !== 10 * MiB) return;
          await stored;
          inProgress = { listed: await store.list('partial/', { limit: 10 }), pending: await pending() };
        },
      });
      await assert.rejects(store.put('partial/object', src.stream), /source failed mid-stream/);
      assert.ok(inProgress);
      assert.deepEqual(inProgress.listed, { items: [], more: false });
      assert.ok(inProgress.pending.length > 0, 'the put was in progress when listed');
      assert.equal(await store.get('partial/object'), undefined);
      assert.deepEqual(await store.list('partial/', { limit: 10 }), { items: [], more: false });
      assert.deepEqual(await pending(), [], 'the partial upload was cleaned up');
    });

    test('a put that fails mid-stream leaves the previous object whole', async () => {
      await store.put('whole/object', Buffer.from('the old bytes'));
      await assert.rejects(store.put('whole/object', generated(9 * MiB, { failAfter: 9 * MiB - 64 * 1024 }).stream), /source failed/);
      assert.equal((await readAll(await store.get('whole/object'))).toString(), 'the old bytes');
      assert.deepEqual(await store.list('whole/', { limit: 10 }), { items: [{ key: 'whole/object', bytes: 13 }], more: false });
      assert.deepEqual(await pending(), []);
    });

    test('invalid keys and prefixes are rejected', async () => {
      const badKeys = [
        '',
        '/abs',
        'a//b',
        'a/',
        '../x',
        'a/../b',
        'a/./b',
        '.',
        'a b',
        'ü',
        'a\\b',
        'a?b',
        'a%2Fb',
        '.meta/x',
        'a/.hidden',
      ];
      for (const key of badKeys) {
        await assert.rejects(store.put(key, Buffer.from('x')), /invalid blob key/, `put ${JSON.stringify(key)}`);
        await assert.rejects(store.get(key), /invalid blob key/, `get ${JSON.stringify(key)}`);
        await assert.rejects(store.stat(key), /invalid blob key/, `stat ${JSON.stringify(key)}`);
        await assert.rejects(store.open(key), /invalid blob key/, `open ${JSON.stringify(key)}`);
        await assert.rejects(store.delete(key), /invalid blob key/, `delete ${JSON.stringify(key)}`);
      }
      for (const prefix of ['', 'a', '/', '../', 'a//', 'a/../', 'a b/']) {
        await assert.rejects(store.list(prefix, { limit: 1 }), /invalid blob (key|prefix)/, `list ${JSON.stringify(prefix)}`);
      }
      assert.equal(await store.get('ok/still-fine'), undefined);
    });
  });
}

describe('S3 key prefix', () => {
  let server: Awaited<ReturnType<typeof startS3rver>> | undefined;
  const stores: S3BlobStore[] = [];
  before(async () => {
    server = await startS3rver();
    for (const keyPrefix of ['one/', 'two/deeper/']) stores.push(s3Store(server.endpoint, keyPrefix));
    await stores[0]?.client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  after(async () => {
    for (const s of stores) s.destroy();
    await server?.stop();
  });

  test('stores with different key prefixes share a bucket without seeing each other', async () => {
    const [one, two] = stores;
    assert.ok(one && two);
    await one.put('k/x', Buffer.from('one'));
    await two.put('k/x', Buffer.from('two'));
    await one.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'k/x', Body: 'bare' }));
    assert.equal((await readAll(await one.get('k/x'))).toString(), 'one');
    assert.equal((await readAll(await two.get('k/x'))).toString(), 'two');
    assert.deepEqual(await one.list('k/', { limit: 10 }), { items: [{ key: 'k/x', bytes: 3 }], more: false });
    await one.delete('k/x');
    assert.equal((await readAll(await two.get('k/x'))).toString(), 'two');
  });
});

test('the controller uses the blob store it is given', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'blobs-ctl-'));
  try {
    const blobStore = new LocalDirBlobStore(join(dir, 'given'));
    const controller = await Controller.open({ databaseUrl: `sqlite:${join(dir, 'db.sqlite')}`, blobDir: join(dir, 'unused'), blobStore });
    assert.equal(controller.blobs, blobStore);
    await controller.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

describe('SCAIBUNKER_BLOB_STORE', () => {
  test('unset or empty is the local directory', async () => {
    assert.ok((await openBlobStore(undefined, '/tmp/x')) instanceof LocalDirBlobStore);
    assert.ok((await openBlobStore('', '/tmp/x')) instanceof LocalDirBlobStore);
  });

  test('an s3:// URL gives bucket, prefix, endpoint, region and path style', async () => {
    assert.deepEqual(
      parseS3BlobStoreUrl('s3://my-bucket/some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-west-3&force_path_style=1', {}),
      {
        bucket: 'my-bucket',
        keyPrefix: 'some/prefix/',
        region: 'eu-west-3',
        endpoint: 'http://127.0.0.1:9000',
        forcePathStyle: true,
      },
    );
    assert.deepEqual(parseS3BlobStoreUrl('s3://my.bucket', { AWS_REGION: 'ap-south-1' }), {
      bucket: 'my.bucket',
      keyPrefix: '',
      region: 'ap-south-1',
    });
    assert.deepEqual(parseS3BlobStoreUrl('s3://b12', {}), { bucket: 'b12', keyPrefix: '', region: 'us-east-1' });
    const store = await openBlobStore('s3://my-bucket?endpoint=http://127.0.0.1:9&force_path_style=true', '/tmp/x');
    assert.ok(store instanceof S3BlobStore);
    store.destroy();
  });

  test('a malformed URL is a VALIDATION_FAILED naming the problem', async () => {
    const cases: Array<[string, RegExp]> = [
      ['not a url', /not a URL/],
      ['http://bucket/x', /unsupported scheme "http"/],
      ['s3://', /bad bucket name/],
      ['s3://Upper_Case', /bad bucket name/],
      ['s3://key:secret@bucket', /credentials do not belong/],
      ['s3://bucket:9000', /port/],
      ['s3://bucket/a//b', /bad key prefix/],
      ['s3://bucket/a b', /bad key prefix/],
      ['s3://bucket?endpoint=localhost:9000', /endpoint must be an http\(s\) URL/],
      ['s3://bucket?force_path_style=yes', /force_path_style must be/],
      ['s3://bucket?regoin=eu-west-1', /unknown parameter "regoin"/],
    ];
    for (const [spec, why] of cases) {
      await assert.rejects(openBlobStore(spec, '/tmp/x'), (err: unknown) => {
        assert.ok(err instanceof ApiError, `${spec}: ${String(err)}`);
        assert.equal(err.code, 'VALIDATION_FAILED');
        assert.match(err.message, /^invalid SCAIBUNKER_BLOB_STORE: /);
        assert.match(err.message, why, spec);
        assert.doesNotMatch(err.message, /secret/);
        return true;
      });
    }
  });
});
