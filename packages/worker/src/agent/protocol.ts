/**
 * Wire format of the ScaiBunker agent channel (see packages/agent/PROTOCOL.md).
 *
 * Every frame: u32 BE payload length | u32 BE stream id | u8 type | payload.
 */

export const HEADER_SIZE = 9;
export const MAX_PAYLOAD = 1024 * 1024;
/** Initial per-stream credit, each direction. */
export const INITIAL_WINDOW = 256 * 1024;
/** Size of the data frames the client sends. */
export const CHUNK_SIZE = 64 * 1024;
export const PROTOCOL_VERSION = 1;

export const FrameType = {
  OPEN: 1,
  DATA: 2,
  STDOUT: 3,
  STDERR: 4,
  EOF: 5,
  WINDOW: 6,
  RESULT: 7,
  ERROR: 8,
  CANCEL: 9,
  SIGNAL: 10,
  /** Agent → client on stream 0: the first frame of every connection. */
  HELLO: 11,
  /** Agent → client on an exec stream: the command was forked, JSON {pid}; precedes its output. */
  STARTED: 12,
  /** Client → agent on a pty exec stream: JSON {cols, rows}, the terminal's new size. */
  RESIZE: 13,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export interface Frame {
  stream: number;
  type: number;
  payload: Buffer;
}

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const EMPTY = Buffer.alloc(0);

export function encodeFrame(stream: number, type: number, payload: Buffer | Uint8Array = EMPTY): Buffer {
  if (payload.length > MAX_PAYLOAD) {
    throw new ProtocolError(`frame payload of ${payload.length} bytes exceeds ${MAX_PAYLOAD}`);
  }
  if (!Number.isInteger(stream) || stream < 0 || stream > 0xffffffff) {
    throw new ProtocolError(`invalid stream id ${stream}`);
  }
  const out = Buffer.allocUnsafe(HEADER_SIZE + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(stream, 4);
  out.writeUInt8(type, 8);
  if (payload.length) out.set(payload, HEADER_SIZE);
  return out;
}

export function encodeJsonFrame(stream: number, type: number, value: unknown): Buffer {
  return encodeFrame(stream, type, Buffer.from(JSON.stringify(value), 'utf8'));
}

export function encodeWindow(stream: number, increment: number): Buffer {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(increment, 0);
  return encodeFrame(stream, FrameType.WINDOW, p);
}

export function decodeWindow(payload: Buffer): number {
  if (payload.length !== 4) throw new ProtocolError('WINDOW payload must be 4 bytes');
  return payload.readUInt32BE(0);
}

/**
 * Incremental decoder. Payloads returned are views into the received chunks
 * (no copy); they stay valid because received buffers are never reused.
 */
export class FrameDecoder {
  private buf: Buffer = EMPTY;

  /** Feeds bytes, returns every complete frame. Throws ProtocolError on oversize frames. */
  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.length - off >= HEADER_SIZE) {
      const len = this.buf.readUInt32BE(off);
      if (len > MAX_PAYLOAD) {
        throw new ProtocolError(`frame of ${len} bytes exceeds the ${MAX_PAYLOAD} byte limit`);
      }
      if (this.buf.length - off < HEADER_SIZE + len) break;
      frames.push({
        stream: this.buf.readUInt32BE(off + 4),
        type: this.buf.readUInt8(off + 8),
        payload: this.buf.subarray(off + HEADER_SIZE, off + HEADER_SIZE + len),
      });
      off += HEADER_SIZE + len;
    }
    this.buf = off === this.buf.length ? EMPTY : this.buf.subarray(off);
    return frames;
  }

  /** Bytes held waiting for the rest of a frame. */
  get pending(): number {
    return this.buf.length;
  }
}
