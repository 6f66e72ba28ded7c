/**
 * One exec's output, kept with sequence numbers so a reader can come back at any time and
 * resume where it left off. The newest bytes stay in memory (up to `memoryBytes`); older ones
 * move to an append-only spill file on the worker's disk, up to `diskBytes` and while
 * `canSpill` allows (the worker's disk reserve). Past that the journal stops keeping output
 * (`truncated`): what it kept stays readable, later chunks still get their sequence numbers and
 * reach live readers, but cannot be replayed.
 *
 * Readers never hold the writer back: each reads at its own pace from what is kept, and a
 * reader that reached the end waits for the next chunk (or the end of the exec).
 */
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export type OutputStream = 'stdout' | 'stderr';

/** How much spilled output one replay read fetches. */
const READ_BATCH_BYTES = 1024 * 1024;

export interface JournalChunk {
  seq: number;
  stream: OutputStream;
  data: Buffer;
}

export interface OutputJournalOptions {
  /** Where spilled output goes; created on the first spill, removed by discard(). */
  spillPath: string;
  memoryBytes: number;
  /** 0: never spill (past memoryBytes nothing more is kept). */
  diskBytes: number;
  /** Asked before each spill write: false (the disk is under its reserve) ends keeping. */
  canSpill?: (bytes: number) => Promise<boolean>;
}

interface Spilled {
  seq: number;
  stream: OutputStream;
  offset: number;
  length: number;
}

export class OutputJournal {
  /** Chunks in memory, oldest first; their seqs are consecutive and follow the spilled ones. */
  private readonly memory: JournalChunk[] = [];
  private memoryHead = 0;
  private memoryUsed = 0;
  private readonly spilled: Spilled[] = [];
  private spillFile: FileHandle | null = null;
  private spillOffset = 0;
  /** Serialises spill-file writes with each other and with discard(). */
  private spillChain: Promise<void> = Promise.resolve();
  private nextSeqValue = 1;
  private firstKept = 1;
  private totalBytes = 0;
  private isTruncated = false;
  /** False once the bounds are reached: later chunks are counted, not kept. */
  private keeping = true;
  private isEnded = false;
  private discarded = false;
  private waiters: Array<() => void> = [];

  constructor(private readonly opts: OutputJournalOptions) {}

  /** The sequence number the next chunk will get. */
  get nextSeq(): number {
    return this.nextSeqValue;
  }
  /** The oldest sequence number still kept (== nextSeq when nothing is). */
  get firstSeq(): number {
    return this.firstKept;
  }
  /** Output bytes seen, kept or not. */
  get bytes(): number {
    return this.totalBytes;
  }
  /** Bytes of output held in memory now. */
  get memoryBytes(): number {
    return this.memoryUsed;
  }
  /** True once output was dropped for being over the bounds. */
  get truncated(): boolean {
    return this.isTruncated;
  }
  get ended(): boolean {
    return this.isEnded;
  }

  /**
   * Records a chunk and returns its sequence number. The promise resolves once the chunk is
   * kept (a spill to disk is awaited): callers await it, which slows the producing process
   * down instead of letting memory grow.
   */
  async append(stream: OutputStream, data: Buffer): Promise<number> {
    const seq = this.nextSeqValue++;
    this.totalBytes += data.length;
    if (!this.keeping || this.discarded) {
      // Not kept; the seq still counts so readers see where the gap is.
      if (!this.discarded) this.isTruncated = true;
      if (this.memoryLength() === 0 && this.spilled.length === 0) this.firstKept = this.nextSeqValue;
      this.wake();
      return seq;
    }
    this.memory.push({ seq, stream, data });
    this.memoryUsed += data.length;
    this.wake();
    if (this.memoryUsed > this.opts.memoryBytes) await this.spill();
    return seq;
  }

  /** No more output: readers that caught up finish. */
  end(): void {
    this.isEnded = true;
    this.wake();
  }

  /** Frees memory and deletes the spill file; readers finish. */
  async discard(): Promise<void> {
    this.discarded = true;
    this.memory.length = 0;
    this.memoryHead = 0;
    this.memoryUsed = 0;
    this.spilled.length = 0;
    this.end();
    const chain = this.spillChain
      .catch(() => undefined)
      .then(async () => {
        // Never spilled (every blocking exec): there is no file, and no syscall to spend finding out.
        const file = this.spillFile;
        if (!file) return;
        this.spillFile = null;
        await file.close().catch(() => undefined);
        await rm(this.opts.spillPath, { force: true });
      });
    this.spillChain = chain;
    await chain;
  }

  /**
   * Every kept chunk from `fromSeq` on, then (unless the journal has ended) each new chunk
   * as it comes. Chunks no longer kept are skipped: the first chunk's seq shows the gap.
   */
  async *read(fromSeq: number, signal?: AbortSignal): AsyncGenerator<JournalChunk> {
    let next = Math.max(1, fromSeq);
    for (;;) {
      if (signal?.aborted) return;
      if (next < this.firstKept) next = this.firstKept;
      if (next < this.nextSeqValue) {
        const chunks = await this.chunksFrom(next);
        if (chunks.length === 0) {
          next++; // not kept
          continue;
        }
        for (const chunk of chunks) {
          if (signal?.aborted) return;
          yield chunk;
        }
        next = (chunks.at(-1) as JournalChunk).seq + 1;
        continue;
      }
      if (this.isEnded) return;
      await this.nextChange(signal);
    }
  }

  private memoryLength(): number {
    return this.memory.length - this.memoryHead;
  }

  /**
   * The chunk with this seq and those after it, from memory or the spill file; empty when it
   * was not kept. Spilled chunks are read up to ~1 MiB at a time: a reader replaying a long
   * output makes one read per MiB, not one per chunk.
   */
  private async chunksFrom(seq: number): Promise<JournalChunk[]> {
    const firstInMemory = this.memory[this.memoryHead]?.seq ?? this.nextSeqValue;
    if (seq >= firstInMemory) {
      const chunk = this.memory[this.memoryHead + (seq - firstInMemory)];
      return chunk?.seq === seq ? [chunk] : [];
    }
    let i = findSpilled(this.spilled, seq);
    if (i < 0 || !this.spillFile) return [];
    const first = this.spilled[i] as Spilled;
    const run: Spilled[] = [];
    let bytes = 0;
    for (; i < this.spilled.length && (run.length === 0 || bytes < READ_BATCH_BYTES); i++) {
      const s = this.spilled[i] as Spilled;
      run.push(s);
      bytes += s.length;
    }
    const data = Buffer.allocUnsafe(bytes);
    await this.spillFile.read(data, 0, bytes, first.offset);
    return run.map((s) => ({
      seq: s.seq,
      stream: s.stream,
      data: data.subarray(s.offset - first.offset, s.offset - first.offset + s.length),
    }));
  }

  /** Moves the oldest chunks to the spill file until memory is at half its bound. */
  private spill(): Promise<void> {
    const run = this.spillChain.then(async () => {
      if (this.discarded) return;
      const moving: JournalChunk[] = [];
      let freed = 0;
      for (let i = this.memoryHead; i < this.memory.length && this.memoryUsed - freed > this.opts.memoryBytes / 2; i++) {
        const chunk = this.memory[i] as JournalChunk;
        moving.push(chunk);
        freed += chunk.data.length;
      }
      if (moving.length === 0) return;
      if (this.spillOffset + freed > this.opts.diskBytes || !(await (this.opts.canSpill?.(freed) ?? true))) {
        // Over the disk bound (or the disk is full): keep what is kept, drop what comes next.
        this.keeping = false;
        return;
      }
      if (!this.spillFile) {
        await mkdir(dirname(this.opts.spillPath), { recursive: true, mode: 0o700 });
        this.spillFile = await open(this.opts.spillPath, 'w+', 0o600);
      }
      const body = Buffer.concat(moving.map((c) => c.data));
      await this.spillFile.write(body, 0, body.length, this.spillOffset);
      let offset = this.spillOffset;
      for (const c of moving) {
        this.spilled.push({ seq: c.seq, stream: c.stream, offset, length: c.data.length });
        offset += c.data.length;
      }
      this.spillOffset = offset;
      // Only now leave memory: a reader between the two steps finds the chunk in either place.
      this.memoryHead += moving.length;
      this.memoryUsed -= freed;
      if (this.memoryHead > 1024 && this.memoryHead * 2 > this.memory.length) {
        this.memory.splice(0, this.memoryHead);
        this.memoryHead = 0;
      }
    });
    this.spillChain = run.catch(() => undefined);
    return run;
  }

  private nextChange(signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Binary search of the spilled index (seqs ascending, consecutive): the entry's position, or -1. */
function findSpilled(index: Spilled[], seq: number): number {
  let lo = 0;
  let hi = index.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = (index[mid] as Spilled).seq;
    if (s === seq) return mid;
    if (s < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
