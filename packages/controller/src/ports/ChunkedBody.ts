import { MalformedHead } from './responseHead.js';

/** A chunk-size line or a trailer line longer than this is refused. */
const MAX_LINE = 4096;

/** Where the decoder is: a size line, chunk data, the CRLF after it, trailer lines, past the end. */
const State = { Size: 0, Data: 1, DataEnd: 2, Trailer: 3, Done: 4 } as const;
type State = (typeof State)[keyof typeof State];

/**
 * Decodes a chunked body (RFC 9112 §7.1) as it streams: the data comes out as views into the
 * received buffers (never copied), the framing is dropped, and `done` says when the last
 * chunk and its trailer section have passed. Chunk extensions and trailers are read and
 * dropped (the relay sends hop-by-hop-free heads only).
 */
export class ChunkedBody {
  private state: State = State.Size;
  private line = '';
  private left = 0;

  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Feeds bytes; returns the body data in them. Bytes after the end are ignored. MalformedHead
   * (the relay's "not HTTP" error) on a broken framing.
   */
  push(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < buf.length && this.state !== State.Done) {
      if (this.state === State.Data) {
        const n = Math.min(this.left, buf.length - i);
        out.push(buf.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = State.DataEnd;
        continue;
      }
      const lf = buf.indexOf(10, i);
      const upTo = lf < 0 ? buf.length : lf;
      this.line += buf.toString('latin1', i, upTo);
      if (this.line.length > MAX_LINE) throw new MalformedHead('chunked framing line too long');
      if (lf < 0) break;
      i = lf + 1;
      const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
      this.line = '';
      this.endOfLine(line);
    }
    return out;
  }

  private endOfLine(line: string): void {
    switch (this.state) {
      case State.Size: {
        const m = /^([0-9a-fA-F]{1,12})[\t ]*(?:;.*)?$/.exec(line);
        if (!m) throw new MalformedHead('invalid chunk size');
        this.left = Number.parseInt(m[1] as string, 16);
        this.state = this.left === 0 ? State.Trailer : State.Data;
        return;
      }
      case State.DataEnd:
        if (line !== '') throw new MalformedHead('chunk data longer than its size');
        this.state = State.Size;
        return;
      case State.Trailer:
        if (line === '') this.state = State.Done;
        return;
    }
  }
}
