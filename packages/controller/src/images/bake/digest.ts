import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SHA256_HEX_BODY } from '@scaibunker/core';
import { BakeError } from './BakeError.js';

/** An OCI sha256 digest, `sha256:<64 lowercase hex>`; the hex is group 1. */
export const SHA256_DIGEST_RE = new RegExp(`^sha256:(${SHA256_HEX_BODY})$`);

/** The hex part of a `sha256:<hex>` digest; other algorithms are refused (we could not verify them). */
export function sha256Hex(digest: unknown, what: string): string {
  const m = typeof digest === 'string' ? SHA256_DIGEST_RE.exec(digest) : null;
  if (!m)
    throw new BakeError('INVALID_SOURCE', `${what}: unsupported or malformed digest ${JSON.stringify(digest)} (only sha256 is supported)`);
  return m[1]!;
}

export function sha256Of(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Throws DIGEST_MISMATCH unless `data` hashes to `digest` (and has `size` bytes when given). */
export function verifyBytes(data: Buffer, digest: string, what: string, size?: number): void {
  const want = sha256Hex(digest, what);
  if (size !== undefined && data.length !== size) {
    throw new BakeError('DIGEST_MISMATCH', `${what}: expected ${size} bytes, got ${data.length}`);
  }
  const got = sha256Of(data);
  if (got !== want) throw new BakeError('DIGEST_MISMATCH', `${what}: content has sha256:${got}, expected ${digest}`);
}

/**
 * Passes bytes through unchanged while hashing and counting them, so a blob is verified in the
 * same pass that stores or applies it. Fails early when more than `maxBytes` arrive, so a
 * misbehaving server cannot fill the disk before the final digest check.
 */
export class HashingCounter extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;

  constructor(
    private readonly onBytes?: (bytes: number) => void,
    private readonly maxBytes?: number,
    private readonly what = 'blob',
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.maxBytes !== undefined && this.bytes > this.maxBytes) {
      cb(new BakeError('DIGEST_MISMATCH', `${this.what}: more than the ${this.maxBytes} bytes its descriptor declares`));
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(this.bytes);
    cb(null, chunk);
  }

  /** Hex sha256 of everything that passed; call once, after the stream finished. */
  hex(): string {
    return this.hash.digest('hex');
  }
}

/** Hashes a file on disk, streaming; returns hex sha256 and size. */
export async function hashFile(path: string, opts: { onBytes?: (bytes: number) => void; signal?: AbortSignal } = {}) {
  const counter = new HashingCounter(opts.onBytes);
  await pipeline(
    createReadStream(path, { highWaterMark: 1 << 20 }),
    counter,
    async (source: AsyncIterable<Buffer>) => {
      for await (const _ of source);
    },
    opts.signal ? { signal: opts.signal } : {},
  );
  return { hex: counter.hex(), size: counter.bytes };
}

/** Throws DIGEST_MISMATCH unless a counted stream matched the descriptor's digest and size. */
export function checkCounted(counter: HashingCounter, digest: string, what: string, size?: number): void {
  if (size !== undefined && counter.bytes !== size) {
    throw new BakeError('DIGEST_MISMATCH', `${what}: expected ${size} bytes, got ${counter.bytes}`);
  }
  const got = counter.hex();
  if (`sha256:${got}` !== digest) throw new BakeError('DIGEST_MISMATCH', `${what}: content has sha256:${got}, expected ${digest}`);
}

/** Rate-limits byte progress to about one report per MiB, always passing the last one. */
export function throttledBytes(report: (done: number) => void, total?: number): (done: number) => void {
  let last = -1;
  return (done) => {
    if (done - last >= 1 << 20 || done === total) {
      last = done;
      report(done);
    }
  };
}
