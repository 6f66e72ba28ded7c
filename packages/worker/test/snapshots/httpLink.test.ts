/**
 * HttpControllerLink's snapshot storage over HTTP (`PUT/GET {storage}/snapshots/{id}`) against a
 * fake storage proxy that, like the real one, keeps a PUT only when its body arrived whole:
 * the archive is streamed (chunked), a source that errors aborts the request mid-body (nothing
 * stored), a refusal rejects, and a missing object is SNAPSHOT_NOT_FOUND.
 *
 *   node --import tsx --test packages/worker/test/snapshots/httpLink.test.ts
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { HttpControllerLink } from '../../src/http/HttpControllerLink.js';
import { WorkerError } from '../../src/WorkerApi.js';

const TOKEN = 'snapshot-link-token-0123456789abcdef';
const PATH = /^\/v1\/modules\/scaibunker\/storage\/scaibunker\/snapshots\/([^/]+)$/;

class FakeStorage {
  readonly objects = new Map<string, Buffer>();
  readonly aborted: string[] = [];
  readonly transferEncodings: Array<string | undefined> = [];
  refuseNext = false;
  private readonly server: Server = createServer((req, res) => this.handle(req, res));
  url = '';

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const m = PATH.exec(new URL(req.url ?? '/', 'http://x').pathname);
    if (!m?.[1] || req.headers.authorization !== `Bearer ${TOKEN}`) return void json(res, 401, { error: { code: 'UNAUTHENTICATED' } });
    const id = decodeURIComponent(m[1]);
    if (req.method === 'GET') {
      const body = this.objects.get(id);
      if (!body) return void json(res, 404, { error: { code: 'BLOB_NOT_FOUND', message: `no object scaibunker/snapshots/${id}` } });
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
      return;
    }
    if (req.method !== 'PUT') return void json(res, 405, { error: { code: 'METHOD' } });
    this.transferEncodings.push(req.headers['transfer-encoding']);
    if (this.refuseNext) {
      this.refuseNext = false;
      return void json(res, 507, { error: { code: 'INSUFFICIENT_STORAGE', message: 'blob store full' } });
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('aborted', () => this.aborted.push(id));
    req.on('error', () => {});
    req.on('end', () => {
      if (!req.complete) return;
      this.objects.set(id, Buffer.concat(chunks));
      json(res, 201, { key: `snapshots/${id}` });
    });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** `total` bytes in 64 KiB chunks, lazily; errors instead of ending when `failAt` is given. */
function source(data: Buffer, failAt?: number): Readable {
  let off = 0;
  return new Readable({
    read() {
      if (failAt !== undefined && off >= failAt) return void this.destroy(new Error('the layer could not be read'));
      if (off >= data.length) return void this.push(null);
      const n = Math.min(65536, data.length - off);
      this.push(data.subarray(off, off + n));
      off += n;
    },
  });
}

describe('HttpControllerLink: snapshot storage', () => {
  const storage = new FakeStorage();
  let link: HttpControllerLink;

  before(async () => {
    await storage.listen();
    link = new HttpControllerLink('http://127.0.0.1:9', TOKEN, { storageUrl: storage.url, timeoutMs: 2000 });
  });
  after(() => storage.close());

  it('streams an archive up (chunked) and back down', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 3);
    await link.putSnapshot('sn_roundtrip', source(data));
    assert.equal(storage.transferEncodings.at(-1), 'chunked');
    assert.ok(storage.objects.get('sn_roundtrip')?.equals(data));
    assert.ok((await collect(await link.openSnapshot('sn_roundtrip'))).equals(data));
  });

  it('a source that errors mid-stream aborts the upload: the put rejects and nothing is stored', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    await assert.rejects(link.putSnapshot('sn_broken', source(data, 1024 * 1024)));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(storage.objects.has('sn_broken'), false);
    assert.deepEqual(storage.aborted, ['sn_broken']);
  });

  it('a refusal rejects with the status and the storage error', async () => {
    storage.refuseNext = true;
    await assert.rejects(link.putSnapshot('sn_refused', source(randomBytes(2 * 1024 * 1024))), /HTTP 507: INSUFFICIENT_STORAGE/);
    assert.equal(storage.objects.has('sn_refused'), false);
  });

  it('a missing snapshot is SNAPSHOT_NOT_FOUND', async () => {
    await assert.rejects(link.openSnapshot('sn_missing'), (e: unknown) => e instanceof WorkerError && e.code === 'SNAPSHOT_NOT_FOUND');
  });
});
