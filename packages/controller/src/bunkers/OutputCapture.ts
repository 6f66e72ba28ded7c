import { PassThrough } from 'node:stream';
import type { BlobStore } from '../blobs/BlobStore.js';

/**
 * One output stream of an exec: the first `inlineCap` bytes are kept for the response; once
 * exceeded, the whole stream (including what was kept) is streamed to the blob store.
 */
export class OutputCapture {
  private readonly inline: Buffer[] = [];
  private inlineBytes = 0;
  private totalBytes = 0;
  private spill: { stream: PassThrough; done: Promise<unknown> } | undefined;

  constructor(
    private readonly blobs: BlobStore,
    private readonly blobKey: string,
    private readonly inlineCap: number,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    this.totalBytes += chunk.length;
    if (!this.spill && this.inlineBytes + chunk.length <= this.inlineCap) {
      this.inline.push(chunk);
      this.inlineBytes += chunk.length;
      return;
    }
    if (!this.spill) {
      const stream = new PassThrough({ highWaterMark: 1024 * 1024 });
      this.spill = { stream, done: this.blobs.put(this.blobKey, stream) };
      for (const c of this.inline) stream.write(c);
      const room = this.inlineCap - this.inlineBytes;
      if (room > 0) {
        this.inline.push(chunk.subarray(0, room));
        this.inlineBytes += room;
      }
    }
    // Back-pressure: wait when the blob store is slower than the command.
    if (!this.spill.stream.write(chunk)) await new Promise((r) => this.spill?.stream.once('drain', r));
  }

  get truncated(): boolean {
    return this.spill !== undefined;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  text(): string {
    return Buffer.concat(this.inline).toString('utf8');
  }

  preview(n: number): string {
    return Buffer.concat(this.inline).subarray(0, n).toString('utf8');
  }

  /**
   * Completes the blob. With `storeInline`, a stream that never spilled is stored too, so
   * that a truncated exec has both of its streams in the blob store.
   */
  async finish(storeInline = false): Promise<void> {
    if (!this.spill) {
      if (storeInline) await this.blobs.put(this.blobKey, Buffer.concat(this.inline));
      return;
    }
    this.spill.stream.end();
    await this.spill.done;
  }

  async abort(): Promise<void> {
    if (!this.spill) return;
    this.spill.stream.destroy(new Error('exec aborted'));
    await this.spill.done.catch(() => undefined);
  }
}
