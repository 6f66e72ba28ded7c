import { MUX_HEADER_SIZE, type MuxFrame, MuxProtocolError } from './mux.js';

/**
 * Cuts the channel's byte stream into frames (see mux.ts). Holds at most one incomplete frame
 * (its pieces, joined once it is complete: a large reply costs one copy, not one per chunk); a
 * frame declared larger than `maxPayload` is a MuxProtocolError before any of it is held.
 */
export class MuxFrameDecoder {
  private pieces: Buffer[] = [];
  private heldBytes = 0;
  /** Header + payload size of the held frame, once its header is in. */
  private needed = 0;

  constructor(private readonly maxPayload: number) {}

  push(chunk: Buffer): MuxFrame[] {
    if (this.heldBytes > 0) {
      this.pieces.push(chunk);
      this.heldBytes += chunk.length;
      if (this.needed === 0 && this.heldBytes >= MUX_HEADER_SIZE) this.needed = this.frameSize(Buffer.concat(this.pieces), 0);
      if (this.needed === 0 || this.heldBytes < this.needed) return [];
      chunk = Buffer.concat(this.pieces);
      this.pieces = [];
      this.heldBytes = 0;
      this.needed = 0;
    }
    const frames: MuxFrame[] = [];
    let off = 0;
    while (chunk.length - off >= MUX_HEADER_SIZE) {
      const size = this.frameSize(chunk, off);
      if (chunk.length - off < size) break;
      frames.push({
        id: chunk.readUInt32BE(off + 4),
        type: chunk.readUInt8(off + 8),
        payload: chunk.subarray(off + MUX_HEADER_SIZE, off + size),
      });
      off += size;
    }
    if (off < chunk.length) {
      const rest = chunk.subarray(off);
      this.pieces = [rest];
      this.heldBytes = rest.length;
      this.needed = rest.length >= MUX_HEADER_SIZE ? this.frameSize(rest, 0) : 0;
    }
    return frames;
  }

  private frameSize(buf: Buffer, off: number): number {
    const len = buf.readUInt32BE(off);
    if (len > this.maxPayload) throw new MuxProtocolError(`frame of ${len} bytes exceeds ${this.maxPayload}`);
    return MUX_HEADER_SIZE + len;
  }
}
