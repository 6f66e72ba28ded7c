import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Duplex, PassThrough } from 'node:stream';
import { test } from 'node:test';
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
