/**
 * Agent sockets read into one buffer they all share (net.Socket `onread`) instead of a fresh
 * 64 KiB allocation per read, which at tunnel rates is what the process would spend its time on
 * (see ChunkPool in @scaibunker/core). Sharing is sound because a read and the callback it wakes
 * run together on the one JS thread, before any other socket reads: the reader gets a view
 * valid only until it returns, and copies whatever it keeps (AgentConnection does). Nothing is
 * held per socket, so an idle connection costs no read buffer.
 */
import type { OnReadOpts } from 'node:net';

/** As much as one read takes: a few of the agent's 64 KiB frames, whole. */
const READ_SIZE = 256 * 1024;

let shared: Buffer | undefined;

export class SharedReads {
  private reader: ((chunk: Buffer) => void) | undefined;
  /** Bytes read before a reader was attached (the socket comes back paused, so normally none), copied. */
  private early: Buffer[] = [];

  /** For net.createConnection({ onread }). */
  readonly onread: OnReadOpts = {
    buffer: () => {
      shared ??= Buffer.allocUnsafeSlow(READ_SIZE);
      return shared;
    },
    callback: (n: number, buf: Uint8Array) => {
      const chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
      if (this.reader) this.reader(chunk);
      else this.early.push(Buffer.from(chunk));
      return true;
    },
  };

  /** From now on each read goes to `reader`, as a view that is valid only during the call. */
  attach(reader: (chunk: Buffer) => void): void {
    this.reader = reader;
    const early = this.early;
    this.early = [];
    for (const chunk of early) reader(chunk);
  }
}
