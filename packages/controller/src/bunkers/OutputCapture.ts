import { PassThrough } from 'node:stream';
import type { BlobStore } from '../blobs/BlobStore.js';
import type { OutputBudget } from './OutputStorage.js';

/** What of a stream's output the blob store holds. */
export type OutputStoreState = 'inline' | 'complete' | 'capped' | 'failed';

/**
 * One output stream of an exec: the first `inlineCap` bytes are kept for the response; once
 * exceeded, the stream (including what was kept) is streamed to the blob store, as far as the
 * exec's budget allows (per-exec cap, tenant cap, the disk reserve). Past the budget the stored
 * object ends there (`capped`); a store that fails under it (a full disk, S3 down) leaves no
 * object (`failed`). Either way the command runs on and its result comes back: output beyond
 * what is kept is counted and dropped, never a reason to crash or to stall the exec.
 */
export class OutputCapture {
  private readonly inline: Buffer[] = [];
  private inlineBytes = 0;
  private totalBytes = 0;
  private storedBytes = 0;
  private spill: { stream: PassThrough; done: Promise<unknown> } | undefined;
  private state: OutputStoreState = 'inline';
  private spillError: unknown;

  constructor(
    private readonly blobs: BlobStore,
    private readonly blobKey: string,
    private readonly inlineCap: number,
    private readonly budget: OutputBudget,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    this.totalBytes += chunk.length;
    if (this.state === 'inline' && this.inlineBytes + chunk.length <= this.inlineCap) {
      this.inline.push(chunk);
      this.inlineBytes += chunk.length;
      return;
    }
    if (this.state === 'inline') {
      // The stored object is everything so far, then this chunk whole; the response keeps what fits.
      const before = Buffer.concat(this.inline);
      const room = this.inlineCap - this.inlineBytes;
      if (room > 0) {
        this.inline.push(chunk.subarray(0, room));
        this.inlineBytes += room;
      }
      if (!(await this.startSpill())) return;
      await this.store(before);
    }
    if (this.state === 'complete') await this.store(chunk);
  }

  private async startSpill(): Promise<boolean> {
    const refusal = await this.budget.open();
    if (refusal) {
      this.state = refusal;
      return false;
    }
    const stream = new PassThrough({ highWaterMark: 1024 * 1024 });
    // Handled at once: a put that fails before `finish` (ENOSPC, S3 gone) must not go unheard.
    const done = this.blobs.put(this.blobKey, stream).catch((err: unknown) => {
      this.spillError = err;
      this.state = 'failed';
      this.budget.release(this.storedBytes);
      this.storedBytes = 0;
      throw err;
    });
    done.catch(() => undefined);
    this.spill = { stream, done };
    this.state = 'complete';
    return true;
  }

  /** Stores what the budget allows of `chunk`; past it the object is closed as `capped`. */
  private async store(chunk: Buffer): Promise<void> {
    const spill = this.spill;
    if (!spill || this.state !== 'complete') return;
    const allowed = this.budget.take(chunk.length);
    const part = allowed < chunk.length ? chunk.subarray(0, allowed) : chunk;
    this.storedBytes += part.length;
    if (allowed < chunk.length) this.state = 'capped';
    // Back-pressure: wait when the blob store is slower than the command (or until it failed).
    if (part.length > 0 && !spill.stream.write(part)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          spill.stream.off('drain', done);
          spill.stream.off('close', done);
          resolve();
        };
        spill.stream.once('drain', done);
        spill.stream.once('close', done);
        spill.done.catch(done);
      });
    }
  }

  /** The response lacks part of the output. */
  get truncated(): boolean {
    return this.totalBytes > this.inlineBytes;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** What the blob store holds of this stream. */
  get storeState(): OutputStoreState {
    return this.state;
  }

  get stored(): number {
    return this.storedBytes;
  }

  text(): string {
    return Buffer.concat(this.inline).toString('utf8');
  }

  preview(n: number): string {
    return Buffer.concat(this.inline).subarray(0, n).toString('utf8');
  }

  /**
   * Completes the blob. With `storeInline`, a stream that never spilled is stored too, so that
   * a truncated exec has both of its streams in the blob store (within the budget).
   */
  async finish(storeInline = false): Promise<void> {
    if (this.state === 'inline' && storeInline) {
      const whole = Buffer.concat(this.inline);
      if (!(await this.startSpill())) return;
      await this.store(whole);
    }
    if (!this.spill) return;
    this.spill.stream.end();
    try {
      await this.spill.done;
    } catch {
      // `failed`, with nothing stored: the result says so rather than the exec failing.
    }
  }

  /** Why storing failed, when it did. */
  get error(): unknown {
    return this.spillError;
  }

  async abort(): Promise<void> {
    if (!this.spill) return;
    this.spill.stream.destroy(new Error('exec aborted'));
    await this.spill.done.catch(() => undefined);
    this.budget.release(this.storedBytes);
    this.storedBytes = 0;
  }
}

/** An exec's stored output as one word: the worse of its two streams. */
export function combinedStoreState(a: OutputStoreState, b: OutputStoreState): OutputStoreState {
  for (const s of ['failed', 'capped', 'complete'] as const) if (a === s || b === s) return s;
  return 'inline';
}
