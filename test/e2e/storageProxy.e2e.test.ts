/**
 * `scaibunker proxy` as its own process over S3 (a real s3rver): no database, no Redis. Workers'
 * token and capability tokens minted by a controller of the same deployment work against it; a
 * 256 MiB object streams through both ways with the proxy's memory bounded; API keys can't be
 * checked without a database, so they are refused.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { LocalDirBlobStore } from '../../packages/controller/src/blobs/LocalDirBlobStore.js';
import { StorageAuthenticator } from '../../packages/controller/src/storage/StorageAuthenticator.js';
import { StorageService } from '../../packages/controller/src/storage/StorageService.js';
import { startS3rver } from '../../packages/controller/test/helpers/s3rver.js';
import { ServerProcess, tempDataDir } from './harness.js';

const TOKEN = 'proxy-e2e-worker-token-0123456789abcdef';
const BUCKET = 'proxy-e2e';
const MiB = 1024 * 1024;
let s3: Awaited<ReturnType<typeof startS3rver>>;
let proxy: ServerProcess;
let data: ReturnType<typeof tempDataDir>;
let base: string;

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
  data = tempDataDir();
  proxy = await ServerProcess.start(['proxy', '--port', '0', '--data-dir', data.dir], {
    SCAIBUNKER_WORKER_TOKEN: TOKEN,
    SCAIBUNKER_BLOB_STORE: `s3://${BUCKET}/deploy/?endpoint=${encodeURIComponent(s3.endpoint)}&force_path_style=1`,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    REDIS_URL: 'redis://127.0.0.1:1/0',
  });
  base = `${proxy.url}/v1/modules/scaibunker/storage`;
});
after(async () => {
  await proxy?.kill();
  await s3?.stop();
  data?.remove();
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** Peak resident memory of a process (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m?.[1]);
  return Number(m[1]) * 1024;
}

test('the proxy serves storage with the worker token and nothing else (it has no database to check keys in)', async () => {
  const put = await fetch(`${base}/scaibunker/e2e/hello`, {
    method: 'PUT',
    headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream' },
    body: 'hi',
  });
  assert.equal(put.status, 201, await put.clone().text());
  const got = await fetch(`${base}/scaibunker/e2e/hello`, { headers: bearer(TOKEN) });
  assert.equal(await got.text(), 'hi');
  const asKey = await fetch(`${base}/scaibunker/e2e/hello`, { headers: bearer('sbk_someone-s-api-key') });
  assert.equal(asKey.status, 401);
  assert.equal(((await asKey.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
  const health = await fetch(`${proxy.url}/healthz`);
  assert.equal(health.status, 200, 'healthy although DATABASE_URL and REDIS_URL point nowhere');
  const api = await fetch(`${proxy.url}/v1/modules/scaibunker/bunkers`, { headers: bearer(TOKEN) });
  assert.equal(api.status, 404, 'only the storage routes are served');
});

test('a capability token minted elsewhere in the deployment (same worker token) works here, within its scope', async () => {
  // What a controller does on POST /storage-capabilities: a service keyed by the shared worker token.
  const minter = new StorageService(new LocalDirBlobStore(data.dir), new StorageAuthenticator(TOKEN).capabilities);
  const { token } = minter.issueCapability({ prefix: 'scaibunker/e2e/', verbs: ['get'], ttl_s: 60 });
  const ok = await fetch(`${base}/scaibunker/e2e/hello`, { headers: bearer(token) });
  assert.equal(await ok.text(), 'hi');
  const write = await fetch(`${base}/scaibunker/e2e/other`, {
    method: 'PUT',
    headers: { ...bearer(token), 'content-type': 'application/octet-stream' },
    body: 'x',
  });
  assert.equal(write.status, 403);
  const outside = await fetch(`${base}/scaibunker/elsewhere/x`, { headers: bearer(token) });
  assert.equal(outside.status, 403);
});

test('256 MiB streams in (checksum verified) and out (whole and a range) with the proxy process bounded in memory', async () => {
  const size = 256 * MiB;
  const chunk = randomBytes(MiB);
  const hash = createHash('sha256');
  for (let i = 0; i < size / MiB; i++) hash.update(chunk);
  const sha = hash.digest('hex');
  const body = Readable.from(
    (function* () {
      for (let i = 0; i < size / MiB; i++) yield chunk;
    })(),
  );
  const before = peakRss(proxy.child.pid as number);
  const put = await fetch(`${base}/scaibunker/e2e/big`, {
    method: 'PUT',
    headers: { ...bearer(TOKEN), 'content-type': 'application/octet-stream', 'x-scaibunker-sha256': sha },
    body: Readable.toWeb(body) as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  assert.equal(put.status, 201, await put.clone().text());
  assert.equal(((await put.json()) as { sha256: string }).sha256, sha);

  const got = await fetch(`${base}/scaibunker/e2e/big`, { headers: bearer(TOKEN) });
  assert.equal(got.headers.get('x-scaibunker-sha256'), sha);
  assert.equal(got.headers.get('content-length'), String(size));
  const down = createHash('sha256');
  let bytes = 0;
  for await (const c of got.body as unknown as AsyncIterable<Uint8Array>) {
    down.update(c);
    bytes += c.length;
  }
  assert.equal(bytes, size);
  assert.equal(down.digest('hex'), sha);

  const tail = await fetch(`${base}/scaibunker/e2e/big`, { headers: { ...bearer(TOKEN), range: `bytes=${size - 10}-` } });
  assert.equal(tail.status, 206);
  assert.deepEqual(Buffer.from(await tail.arrayBuffer()), chunk.subarray(MiB - 10));

  const grew = peakRss(proxy.child.pid as number) - before;
  assert.ok(grew < 128 * MiB, `the proxy's peak RSS grew by ${(grew / MiB).toFixed(0)} MiB moving ${size / MiB} MiB each way`);
});
