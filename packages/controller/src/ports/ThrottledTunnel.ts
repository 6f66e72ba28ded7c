import { Duplex } from 'node:stream';
import type { TokenBucket } from './TokenBucket.js';

/**
 * A tunnel held to a bunker's bandwidth: bytes from the bunker pass through `out`, bytes to it
 * through `into`; a bucket in debt pauses that direction (the tunnel stops being read, or the
 * write is acknowledged late), so back-pressure reaches the service or the caller as usual.
 * Half-closes, errors and destroy pass through both ways. `heldMs` sums the pauses.
 */
export class ThrottledTunnel extends Duplex {
  heldMs = 0;
  private waiting = false;

  constructor(
    private readonly inner: Duplex,
    private readonly out: TokenBucket,
    private readonly into: TokenBucket,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: inner.readableHighWaterMark, writableHighWaterMark: inner.writableHighWaterMark });
    inner.on('data', (chunk: Buffer) => {
      const wait = this.out.take(chunk.length);
      const more = this.push(chunk);
      if (wait > 0) this.hold(wait);
      else if (!more) inner.pause();
    });
    let ended = false;
    inner.on('end', () => {
      ended = true;
      this.push(null);
    });
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => {
      // Closed after its end: what this side still holds is read out first, then it ends by
      // itself. Closed without one (cancelled): nothing more comes.
      if (!ended && !this.destroyed) this.destroy();
    });
    inner.pause();
  }

  override _read(): void {
    if (!this.waiting) this.inner.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const wait = this.into.take(chunk.length);
    this.inner.write(chunk, (err) => {
      if (err || wait === 0) return cb(err);
      this.heldMs += wait;
      setTimeout(() => cb(), wait).unref();
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.destroy(err ?? undefined);
    cb(err);
  }

  /** Stops reading the tunnel for `ms`, then reads on if there is room (else `_read` will). */
  private hold(ms: number): void {
    this.heldMs += ms;
    this.waiting = true;
    this.inner.pause();
    setTimeout(() => {
      this.waiting = false;
      if (!this.destroyed && this.readableLength < this.readableHighWaterMark) this.inner.resume();
    }, ms).unref();
  }
}
