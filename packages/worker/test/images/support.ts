/**
 * Test doubles speaking the image contracts over real HTTP: the controller's storage proxy
 * (`GET …/storage/scaibunker/images/{sha}`, 404 BLOB_NOT_FOUND) and peer lookup
 * (`GET …/peers/{sha}?worker_id=`), plus generated "images" (random bytes and their sha256).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export const TOKEN = 'image-test-token-0123456789abcdef';

export interface TestImage {
  sha: string;
  bytes: Buffer;
}

/** `mib` MiB of random bytes (+ a few, so sizes are not round). */
export function makeImage(mib: number): TestImage {
  const bytes = randomBytes(mib * 1024 * 1024 + 17);
  return { sha: createHash('sha256').update(bytes).digest('hex'), bytes };
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

const IMAGE_PATH = /^\/v1\/modules\/scaibunker\/storage\/scaibunker\/images\/([0-9a-f]{64})$/;
const PEERS_PATH = /^\/v1\/modules\/scaibunker\/peers\/([0-9a-f]{64})$/;

/**
 * A fake controller: serves `images` from "storage" (one `Range: bytes=N-` answered 206, as the
 * storage proxy does) and `peers` from the peer lookup, counts what it served, and can misbehave
 * per image: `truncate` sends half the bytes of every answer under the full content-length then
 * cuts the connection, `truncate-once` does that to the first answer only, `corrupt` flips a
 * byte, `no-range` cuts its first answer like `truncate-once` and answers every request whole (200),
 * ignoring Range.
 */
export class FakeController {
  readonly images = new Map<string, Buffer>();
  readonly peers = new Map<string, Array<{ worker_id: string; url: string }>>();
  readonly misbehave = new Map<string, 'truncate' | 'truncate-once' | 'corrupt' | 'no-range'>();
  /** The Range header of every storage GET per sha (undefined: none). */
  readonly imageRanges = new Map<string, Array<string | undefined>>();
  /** Storage GETs per sha (any answer). */
  readonly imageRequests = new Map<string, number>();
  /** Bytes of image bodies sent per sha. */
  readonly imageBytesSent = new Map<string, number>();
  /** `worker_id` of every peer lookup. */
  readonly peerLookups: string[] = [];
  readonly auth: Array<string | undefined> = [];
  private readonly server: Server;
  url = '';

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.auth.push(req.headers.authorization);
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      json(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'no' } });
      return;
    }
    const peers = PEERS_PATH.exec(url.pathname);
    if (req.method === 'GET' && peers?.[1]) {
      this.peerLookups.push(url.searchParams.get('worker_id') ?? '');
      json(res, 200, { items: this.peers.get(peers[1]) ?? [] });
      return;
    }
    const image = IMAGE_PATH.exec(url.pathname);
    if (req.method === 'GET' && image?.[1]) {
      const sha = image[1];
      this.imageRequests.set(sha, (this.imageRequests.get(sha) ?? 0) + 1);
      const bytes = this.images.get(sha);
      if (!bytes) {
        json(res, 404, { error: { code: 'BLOB_NOT_FOUND', message: `no object scaibunker/images/${sha}` } });
        return;
      }
      const mode = this.misbehave.get(sha);
      const range = req.headers.range;
      this.imageRanges.set(sha, [...(this.imageRanges.get(sha) ?? []), range]);
      const start = mode === 'no-range' ? undefined : /^bytes=(\d+)-$/.exec(range ?? '')?.[1];
      const from = start === undefined ? 0 : Number(start);
      const part = bytes.subarray(from);
      if (start === undefined) res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
      else
        res.writeHead(206, {
          'content-type': 'application/octet-stream',
          'content-length': part.length,
          'content-range': `bytes ${from}-${bytes.length - 1}/${bytes.length}`,
        });
      const first = this.imageRequests.get(sha) === 1;
      if (mode === 'truncate' || ((mode === 'truncate-once' || mode === 'no-range') && first)) {
        const half = part.subarray(0, part.length >> 1);
        this.count(sha, half.length);
        res.write(half, () => res.destroy());
        return;
      }
      const body = mode === 'corrupt' ? flipped(part, part.length >> 1) : part;
      this.count(sha, body.length);
      res.end(body);
      return;
    }
    json(res, 404, { error: { code: 'ROUTE_NOT_FOUND', message: `${req.method} ${url.pathname}` } });
  }

  private count(sha: string, n: number): void {
    this.imageBytesSent.set(sha, (this.imageBytesSent.get(sha) ?? 0) + n);
  }
}

/** A copy of `buf` with the byte at `at` inverted. */
export function flipped(buf: Buffer, at: number): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt8(out.readUInt8(at) ^ 0xff, at);
  return out;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
