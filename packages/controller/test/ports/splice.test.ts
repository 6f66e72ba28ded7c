import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex, PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import { ChunkPool } from '@scaibunker/core';
import { type RelayStats, splice } from '../../src/ports/relay.js';

/**
 * A caller's socket that falls behind: it takes writes until it has `takeFirst` bytes, then
 * holds them until told to take the rest (a slow reader), counting what it got.
 */
class SlowCaller extends Duplex {
  got = 0;
  private held: Array<() => void> = [];
  constructor(private readonly takeFirst: number) {
    super({ allowHalfOpen: false, writableHighWaterMark: 1024 * 1024 });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    const take = () => {
      this.got += chunk.length;
      cb();
    };
    if (this.got < this.takeFirst) take();
    else this.held.push(take);
  }
  /** Takes everything written so far, and from now on takes writes as they come. */
  release(): void {
    this._write = (chunk: Buffer, _enc, cb) => {
      this.got += chunk.length;
      cb();
    };
    for (const f of this.held.splice(0)) f();
  }
}

test('a spliced stream the service ended and closed reaches a slow caller whole', async () => {
  const tunnel = new PassThrough();
  const caller = new SlowCaller(250_000);
  const done = new Promise<RelayStats>((resolve) => splice({ socket: caller, head: Buffer.alloc(0) }, tunnel, 60_000, false, resolve));
  const tunnelClosed = once(tunnel, 'close');
  for (let i = 0; i < 30; i++) tunnel.write(Buffer.alloc(10_000, 1));
  tunnel.end();
  // The service's side is gone (ended, then closed) while its last bytes still wait for the caller.
  await tunnelClosed;
  assert.equal(caller.destroyed, false, 'the caller still has bytes to take');
  caller.release();
  await once(caller, 'finish');
  assert.equal(caller.got, 300_000);
  caller.push(null); // the caller ends its side too: the exchange is over
  const stats = await done;
  assert.equal(stats.bytesOut, 300_000);
  assert.equal(stats.error, undefined);
});

/** A caller that holds every write from the first until `release`, then records each chunk as it is when taken. */
class HoldingCaller extends Duplex {
  readonly taken: Buffer[] = [];
  private held: Array<() => void> | undefined = [];
  constructor() {
    super({ allowHalfOpen: false, writableHighWaterMark: 1024 * 1024 });
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    const take = () => {
      this.taken.push(Buffer.from(chunk));
      cb();
    };
    if (this.held) this.held.push(take);
    else take();
  }
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const f of held) f();
  }
}

test("a spliced tunnel's lent chunks go back once written: a caller that falls behind gets them intact", async () => {
  const pool = new ChunkPool(1000, 2);
  const tunnel = new PassThrough();
  const caller = new HoldingCaller();
  const done = new Promise<RelayStats>((resolve) => splice({ socket: caller, head: Buffer.alloc(0) }, tunnel, 60_000, false, resolve));
  after(() => {
    tunnel.destroy();
    caller.destroy();
  });
  const sent: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    const piece = Buffer.alloc(1000, i);
    sent.push(piece);
    tunnel.write(pool.lend(piece));
    await new Promise((r) => setImmediate(r)); // a turn of the loop: the chunk reaches the caller, who holds it
  }
  assert.equal(caller.taken.length, 0);
  caller.release();
  tunnel.end();
  await once(caller, 'finish');
  assert.ok(Buffer.concat(caller.taken).equals(Buffer.concat(sent)), 'every chunk as it was lent');
  assert.ok(pool.idle > 0, 'the chunks went back');
  caller.push(null);
  assert.equal((await done).bytesOut, 100_000);
});
