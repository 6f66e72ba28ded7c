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

/** Frame types whose payload is a byte stream: what a frame holds may be delivered in pieces. */
const BYTE_STREAM_TYPES: ReadonlySet<number> = new Set([FrameType.DATA, FrameType.STDOUT, FrameType.STDERR]);

/** DATA, STDOUT or STDERR: a frame whose payload is a piece of a byte stream. */
export function isByteStream(type: number): boolean {
  return BYTE_STREAM_TYPES.has(type);
}

/**
 * Incremental decoder. Payloads returned are views into the received chunks (no copy).
 *
 * With `pieces`, a DATA, STDOUT or STDERR frame split across chunks comes out as several
 * frames of the same stream and type, one per chunk it spans (together its payload, in
 * order), instead of being copied together: the bulk of a tunnel or a download is then never
 * copied. Other frames (JSON, WINDOW) always come out whole.
 *
 * With `transient`, the chunks pushed are reused once push() returns (SharedReads): what the
 * decoder holds for later and the payloads of frames that are not byte streams are copied; a
 * byte-stream payload stays a view, valid only until the caller reads the next chunk into
 * that memory (the caller copies what it keeps).
 */
export class FrameDecoder {
  /** An incomplete header, or an incomplete frame that comes out whole: copied together. */
  private held: Buffer = EMPTY;
  /** A byte-stream frame in pieces: its stream and type, and how much of its payload is still to come. */
  private piece = { stream: 0, type: 0, left: 0 };

  constructor(private readonly opts: { pieces?: boolean; transient?: boolean } = {}) {}

  /** Feeds bytes, returns every complete frame (or piece). Throws ProtocolError on oversize frames. */
  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.piece.left > 0) {
        const n = Math.min(this.piece.left, chunk.length - off);
        frames.push({ stream: this.piece.stream, type: this.piece.type, payload: chunk.subarray(off, off + n) });
        this.piece.left -= n;
        off += n;
        continue;
      }
      if (this.held.length === 0 && chunk.length - off >= HEADER_SIZE) {
        // The common case: a header in this chunk, parsed in place.
        const len = payloadLength(chunk, off);
        const stream = chunk.readUInt32BE(off + 4);
        const type = chunk.readUInt8(off + 8);
        const avail = chunk.length - off - HEADER_SIZE;
        if (avail >= len) {
          const payload = chunk.subarray(off + HEADER_SIZE, off + HEADER_SIZE + len);
          frames.push({ stream, type, payload: this.opts.transient && !BYTE_STREAM_TYPES.has(type) ? Buffer.from(payload) : payload });
          off += HEADER_SIZE + len;
        } else if (this.opts.pieces && BYTE_STREAM_TYPES.has(type)) {
          if (avail > 0) frames.push({ stream, type, payload: chunk.subarray(off + HEADER_SIZE) });
          this.piece = { stream, type, left: len - avail };
          off = chunk.length;
        } else {
          this.held = this.opts.transient ? Buffer.from(chunk.subarray(off)) : chunk.subarray(off);
          off = chunk.length;
        }
        continue;
      }
      // Bytes held from before: take from this chunk only what completes the header, and then
      // (for a frame that comes out whole) its payload.
      if (this.held.length < HEADER_SIZE) {
        const n = Math.min(HEADER_SIZE - this.held.length, chunk.length - off);
        this.held = Buffer.concat([this.held, chunk.subarray(off, off + n)]);
        off += n;
        if (this.held.length < HEADER_SIZE) continue;
      }
      const len = payloadLength(this.held, 0);
      const stream = this.held.readUInt32BE(4);
      const type = this.held.readUInt8(8);
      if (this.held.length === HEADER_SIZE && len > 0 && this.opts.pieces && BYTE_STREAM_TYPES.has(type)) {
        this.piece = { stream, type, left: len };
        this.held = EMPTY;
        continue;
      }
      const n = Math.min(HEADER_SIZE + len - this.held.length, chunk.length - off);
      if (n > 0) this.held = Buffer.concat([this.held, chunk.subarray(off, off + n)]);
      off += n;
      if (this.held.length === HEADER_SIZE + len) {
        frames.push({ stream, type, payload: this.held.subarray(HEADER_SIZE) });
        this.held = EMPTY;
      }
    }
    return frames;
  }

  /** Bytes held waiting for the rest of a frame (or still to come of a frame in pieces). */
  get pending(): number {
    return this.held.length + this.piece.left;
  }
}

function payloadLength(buf: Buffer, off: number): number {
  const len = buf.readUInt32BE(off);
  if (len > MAX_PAYLOAD) throw new ProtocolError(`frame of ${len} bytes exceeds the ${MAX_PAYLOAD} byte limit`);
  return len;
}
