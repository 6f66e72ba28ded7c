/**
 * relayHttp over a tunnel whose chunks are lent (ChunkPool, as the agent connection's are): each
 * goes back to the pool only once the write that sent its bytes to the caller is done, so a
 * caller that falls behind still gets every byte as the service sent it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { ChunkPool } from '@scaibunker/core';
import { type RelayStats, relayHttp } from '../../src/ports/relay.js';

const BLOCK = 64 * 1024;

/**
 * A service's answer of `total` bytes (a counting pattern), every body chunk lent from `pool`;
 * it fills its readable buffer (1 MiB, as a tunnel's) whenever it may, also while paused.
 */
class LendingTunnel extends Duplex {
  readonly sha = createHash('sha256');
  private sent = 0;
  private headSent = false;

  constructor(
    private readonly pool: ChunkPool,
    private readonly total: number,
  ) {
    super({ readableHighWaterMark: 1024 * 1024 });
  }

  override _write(_chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    cb(); // the request head
  }

  override _read(): void {
    if (!this.headSent) {
      this.headSent = true;
      this.push(`HTTP/1.1 200 OK\r\ncontent-length: ${this.total}\r\ncontent-type: application/octet-stream\r\n\r\n`);
      return;
    }
    if (this.sent === this.total) {
      this.push(null);
      return;
    }
    const n = Math.min(BLOCK, this.total - this.sent);
    const piece = Buffer.alloc(n);
    for (let i = 0; i + 4 <= n; i += 4) piece.writeUInt32LE((this.sent + i) >>> 0, i);
    this.sha.update(piece);
    this.sent += n;
    this.push(this.pool.lend(piece));
  }
}

test('lent chunks go back only once written: a caller that falls behind gets every byte intact', { timeout: 60_000 }, async () => {
  const total = 24 * 1024 * 1024; // well past what loopback sockets buffer: the relay must wait
  const pool = new ChunkPool(BLOCK, 4);
  const tunnel = new LendingTunnel(pool, total);
  let stats!: Promise<RelayStats>;
  const server = http.createServer((req, res) => {
    stats = new Promise((resolve) => relayHttp({ req, tunnel, port: 8000, path: '/big', idleMs: 60_000 }, res, resolve));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    const req = http.get({ host: '127.0.0.1', port, path: '/' });
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    res.pause();
    // The caller reads nothing until the relay has stopped reading the tunnel: writes are then
    // waiting, and the tunnel lends more chunks into its buffer meanwhile.
    if (!tunnel.isPaused()) await once(tunnel, 'pause');
    const got = createHash('sha256');
    let bytes = 0;
    res.on('data', (c: Buffer) => {
      got.update(c);
      bytes += c.length;
    });
    res.resume();
    await once(res, 'end');
    assert.equal(bytes, total);
    assert.equal(got.digest('hex'), tunnel.sha.digest('hex'), 'every byte as the service sent it');
    assert.equal((await stats).bytesOut, total);
    assert.ok(pool.idle > 0, 'the chunks went back to the pool');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
