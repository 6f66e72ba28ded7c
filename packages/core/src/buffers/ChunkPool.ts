/**
 * Memory lent with the chunks a relay passes on, and taken back when the last holder is done.
 *
 * A process relaying hundreds of MB/s in 64 KiB chunks that are each a fresh allocation spends
 * most of its time on them rather than on the bytes: every chunk is memory outside V8's heap,
 * and that memory, growing by the hundred MB a second, is what triggers V8's full garbage
 * collections (of the whole heap, however little of it the relay uses); the allocator's fresh
 * pages are also zeroed by the kernel. A pool copies each chunk into a block it lends
 * (`ChunkPool.lend`); whoever holds the chunk last — e.g. the relay, in the callback of the
 * socket write that sent its bytes — hands it back (`returnChunk`) and the block is copied into
 * again. Only the very Buffer lent can be handed back, once: a view cut from it, or a chunk
 * never lent, is ignored. A chunk never handed back is collected like any other buffer, so a
 * holder that does not know about lending stays correct; it only misses the reuse.
 */

const lent = new WeakMap<Uint8Array, ChunkPool>();

/**
 * Hands a chunk back to the pool that lent it: call it only once nothing refers to its bytes any
 * more (they were written, copied or dropped). Any other buffer: nothing happens.
 */
export function returnChunk(chunk: Uint8Array): void {
  const pool = lent.get(chunk);
  if (!pool) return;
  lent.delete(chunk);
  pool.takeBack(chunk.buffer as ArrayBuffer);
}

export class ChunkPool {
  private readonly free: ArrayBuffer[] = [];

  /**
   * `blockSize`: the largest chunk lent (larger ones are the caller's to split); `keep`: the
   * blocks kept for reuse at most (more handed back are left to the garbage collector), which
   * bounds what the pool holds while nothing flows.
   */
  constructor(
    readonly blockSize: number,
    private readonly keep: number,
  ) {}

  /** Blocks waiting to be lent again. */
  get idle(): number {
    return this.free.length;
  }

  /**
   * A copy of `bytes` (pieces: joined, in order; at most blockSize in all) in a pooled block,
   * lent until `returnChunk`.
   */
  lend(bytes: Uint8Array | readonly Uint8Array[]): Buffer {
    const pieces = Array.isArray(bytes) ? (bytes as readonly Uint8Array[]) : [bytes as Uint8Array];
    let total = 0;
    for (const p of pieces) total += p.length;
    if (total > this.blockSize) throw new RangeError(`a chunk of ${total} bytes exceeds the pool's ${this.blockSize}`);
    const block = this.free.pop() ?? Buffer.allocUnsafeSlow(this.blockSize).buffer;
    const chunk = Buffer.from(block, 0, total);
    let off = 0;
    for (const p of pieces) {
      chunk.set(p, off);
      off += p.length;
    }
    lent.set(chunk, this);
    return chunk;
  }

  /** A block back from returnChunk. */
  takeBack(block: ArrayBuffer): void {
    if (this.free.length < this.keep) this.free.push(block);
  }
}
