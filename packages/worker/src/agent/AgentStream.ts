/**
 * One request/response exchange on an agent connection, with its credit in both
 * directions: we send within the agent's grants (sendCredit), and grant the agent more only
 * after the consumer has handled a chunk, so a slow consumer slows the producer down.
 */
import { ChunkPool } from '@scaibunker/core';
import { AgentError } from './AgentError.js';
import { errorFromPayload, isPromiseLike, parseJson } from './payloads.js';
import { decodeWindow, encodeFrame, encodeJsonFrame, encodeWindow, FrameType, INITIAL_WINDOW, ProtocolError } from './protocol.js';

/** Receives a stream's DATA/STDOUT/STDERR/EOF payloads; credit goes back once it returned or its promise resolved. */
export type Consumer = (type: number, chunk: Buffer) => void | Promise<void>;

/** What a stream needs of its connection. */
export interface Channel {
  /** Queues a frame; false when the socket asks to wait for 'drain'. */
  send(frame: Buffer): boolean;
  /** The stream finished: its id may be reused. */
  forget(id: number): void;
  /** Payloads handed to handle() are valid only during the call (SharedReads): what is kept is copied. */
  readonly transient: boolean;
}

/** Re-grant credit once this many bytes were consumed (well below the window: never starves). */
const GRANT_THRESHOLD = 32 * 1024;

/**
 * Where the data of a stream whose consumer hands its chunks back (a tunnel, read by a relay)
 * is copied to, off a transient read: all of a stream's data in one read (SharedReads' 256 KiB
 * at most) as one chunk; 4 MiB kept at most.
 */
const LENT_CHUNKS = new ChunkPool(256 * 1024, 16);
/**
 * Less (a slow producer) is copied into memory of its own size: a block would hold up to 4×
 * what the stream's window counts.
 */
const LEND_MIN = LENT_CHUNKS.blockSize / 4;

export interface StreamOptions {
  window?: number;
  lend?: boolean;
}

interface QueueItem {
  end: boolean;
  type: number;
  payload: Buffer;
}

/** One request/response exchange on the connection. */
export class AgentStream {
  sendCredit = INITIAL_WINDOW;
  /** Terminal frame received (or channel gone): the agent sends nothing more. */
  finished = false;
  /** Drop incoming data (cancelled, or the consumer failed). */
  discard = false;
  readonly result: Promise<Record<string, unknown>>;

  private recvAllowed = INITIAL_WINDOW;
  private pendingGrant = 0;
  /**
   * Credit is given back once this many bytes were consumed; a widened window (tunnels): half
   * of it, so the agent always holds credit for half a window while we catch up and WINDOW
   * frames stay few.
   */
  private readonly grantThreshold: number;
  /** The consumer hands its chunks back (returnChunk): they may be lent. */
  readonly lends: boolean;
  private queue: QueueItem[] = [];
  private draining = false;
  private settled = false;
  private creditWaiters: Array<() => void> = [];
  private resolve!: (v: Record<string, unknown>) => void;
  private reject!: (e: unknown) => void;

  /**
   * `window`: the receive window (a widened one for tunnels); `lend`: the consumer hands the
   * chunks it gets back (returnChunk) once it no longer holds them, so off a transient read they
   * are copied into pooled memory (ChunkPool) rather than allocated afresh.
   */
  constructor(
    private readonly ch: Channel,
    readonly id: number,
    private readonly consumer?: Consumer,
    private readonly onStarted?: (info: Record<string, unknown>) => void,
    { window = INITIAL_WINDOW, lend = false }: StreamOptions = {},
  ) {
    this.lends = lend;
    this.grantThreshold = window > INITIAL_WINDOW ? window / 2 : GRANT_THRESHOLD;
    this.result = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.result.catch(() => {}); // callers observe it; never an unhandled rejection
  }

  handle(type: number, payload: Buffer): void {
    switch (type) {
      case FrameType.WINDOW:
        this.sendCredit += decodeWindow(payload);
        this.wake();
        return;
      case FrameType.DATA:
      case FrameType.STDOUT:
      case FrameType.STDERR:
        this.handleData(type, [payload]);
        return;
      case FrameType.RESULT:
      case FrameType.ERROR:
        this.finished = true;
        this.ch.forget(this.id);
        this.wake();
        this.queue.push({ end: true, type, payload });
        void this.drain();
        return;
      case FrameType.STARTED:
        this.onStarted?.(parseJson(payload)); // a malformed one is a protocol error
        return;
      case FrameType.EOF:
        // connect streams: the server closed its side. Queued so it follows the data before it.
        if (this.discard) return;
        this.queue.push({ end: false, type, payload });
        void this.drain();
        return;
      default:
        // Frame types added to the protocol later (agent → client) are ignored (PROTOCOL.md §1).
        return;
    }
  }

  /**
   * Payloads of DATA (STDOUT, STDERR) frames of this stream, in order: one frame's, or several
   * frames' in a row of one read (a lending stream's; see AgentConnection), which off a
   * transient read are copied out together as one chunk.
   */
  handleData(type: number, pieces: readonly Buffer[]): void {
    let total = 0;
    for (const p of pieces) total += p.length;
    if (total > this.recvAllowed) {
      throw new ProtocolError(`agent overran the window on stream ${this.id}`);
    }
    this.recvAllowed -= total;
    if (this.discard) return;
    if (!this.ch.transient) {
      for (const payload of pieces) this.queue.push({ end: false, type, payload });
    } else if (this.lends && total >= LEND_MIN && total <= LENT_CHUNKS.blockSize) {
      this.queue.push({ end: false, type, payload: LENT_CHUNKS.lend(pieces) });
    } else {
      // A piece lies within one read, so it fits a block whole.
      for (const p of pieces) {
        this.queue.push({ end: false, type, payload: this.lends && p.length >= LEND_MIN ? LENT_CHUNKS.lend(p) : Buffer.from(p) });
      }
    }
    void this.drain();
  }

  /** Delivers queued items one at a time, in order, awaiting the consumer. */
  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) {
        if (item.end) {
          if (item.type === FrameType.RESULT) {
            try {
              this.settle(null, parseJson(item.payload));
            } catch (err) {
              this.settle(new AgentError('PROTOCOL_ERROR', `malformed RESULT: ${String(err)}`));
            }
          } else {
            this.settle(errorFromPayload(item.payload));
          }
          continue;
        }
        if (this.discard) continue;
        if (this.consumer) {
          try {
            const r = this.consumer(item.type, item.payload);
            if (isPromiseLike(r)) await r;
          } catch (err) {
            this.discard = true;
            this.queue = this.queue.filter((q) => q.end);
            this.settle(err);
            this.cancel();
            continue;
          }
        }
        this.grant(item.payload.length);
      }
    } finally {
      this.draining = false;
    }
  }

  private grant(n: number): void {
    if (this.finished) return;
    this.pendingGrant += n;
    if (this.pendingGrant < this.grantThreshold) return;
    this.ch.send(encodeWindow(this.id, this.pendingGrant));
    this.recvAllowed += this.pendingGrant;
    this.pendingGrant = 0;
  }

  settle(err: unknown, value?: Record<string, unknown>): void {
    if (this.settled) return;
    this.settled = true;
    if (err) this.reject(err);
    else this.resolve(value ?? {});
  }

  cancel(): void {
    if (!this.finished) this.ch.send(encodeFrame(this.id, FrameType.CANCEL));
  }

  /**
   * Gives up on the agent: the result is settled here and whatever still arrives is dropped
   * (its RESULT, when it comes, closes the stream as usual).
   */
  expire(value: Record<string, unknown>): void {
    this.cancel();
    this.discard = true;
    this.queue = [];
    this.wake();
    this.settle(null, value);
  }

  signal(sig: string): void {
    if (!this.finished) this.ch.send(encodeJsonFrame(this.id, FrameType.SIGNAL, { signal: sig }));
  }

  resize(cols: number, rows: number): void {
    if (!this.finished) this.ch.send(encodeJsonFrame(this.id, FrameType.RESIZE, { cols, rows }));
  }

  /** The channel is gone: nothing more will arrive. */
  /** Opens the receive window past the initial one (right after OPEN: a WINDOW to the agent). */
  widen(window: number): void {
    if (window <= this.recvAllowed) return;
    this.ch.send(encodeWindow(this.id, window - this.recvAllowed));
    this.recvAllowed = window;
  }

  abandon(err: AgentError): void {
    this.finished = true;
    this.discard = true;
    this.queue = [];
    this.wake();
    this.settle(err);
  }

  waitCredit(): Promise<void> {
    if (this.sendCredit > 0 || this.finished) return Promise.resolve();
    return new Promise((res) => this.creditWaiters.push(res));
  }

  private wake(): void {
    const w = this.creditWaiters;
    this.creditWaiters = [];
    for (const f of w) f();
  }
}
