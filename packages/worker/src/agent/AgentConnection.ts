/**
 * The multiplexer under AgentClient: one byte stream to the agent (a Unix socket or a
 * virtio-serial port) carrying many concurrent AgentStreams, each on its own stream id.
 * It owns the socket, the frame decoder, the stream table, the HELLO and the shutdown that
 * fails every open stream with CHANNEL_CLOSED; the verbs are built on open()/sendData().
 */
import type { Duplex } from 'node:stream';
import { AgentError } from './AgentError.js';
import { AgentStream, type Channel, type Consumer, type StreamOptions } from './AgentStream.js';
import type { AgentHello } from './agentTypes.js';
import { errorFromPayload, parseHello, toBuffer } from './payloads.js';
import { CHUNK_SIZE, encodeFrame, encodeJsonFrame, type Frame, FrameDecoder, FrameType, isByteStream } from './protocol.js';
import type { SharedReads } from './SharedReads.js';

/** Input a stream sends: stdin or file content. */
export type Input = Buffer | Uint8Array | string | AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer>;

export class AgentConnection {
  readonly closed: Promise<void>;
  /**
   * Resolves with the agent's first HELLO frame. Rejects (CHANNEL_CLOSED, or PROTOCOL_ERROR
   * for a malformed HELLO) if the channel ends first; an unobserved rejection is harmless.
   */
  readonly hello: Promise<AgentHello>;

  private readonly streams = new Map<number, AgentStream>();
  /** Data in pieces: a frame split across reads is passed on as it arrives, never copied together. */
  private readonly decoder: FrameDecoder;
  private nextId = 1;
  private isClosed = false;
  private closeReason = 'closed';
  private resolveClosed!: () => void;
  private resolveHello!: (h: AgentHello) => void;
  private rejectHello!: (e: unknown) => void;
  private drainWaiters: Array<() => void> = [];
  private readonly channel: Channel;

  /**
   * `reads`: the socket reads into the buffer agent sockets share (SharedReads); without it,
   * its 'data' events are read (a virtio-serial port, a vsock proxy, a test's stream).
   */
  constructor(
    private readonly sock: Duplex,
    reads?: SharedReads,
  ) {
    this.decoder = new FrameDecoder({ pieces: true, transient: reads !== undefined });
    this.closed = new Promise((res) => {
      this.resolveClosed = res;
    });
    this.hello = new Promise<AgentHello>((res, rej) => {
      this.resolveHello = res;
      this.rejectHello = rej;
    });
    this.hello.catch(() => {}); // it may never come (old agent, channel closed): never unhandled
    this.channel = {
      send: (frame) => this.send(frame),
      forget: (id) => {
        this.streams.delete(id);
      },
      transient: reads !== undefined,
    };
    if (reads) reads.attach((chunk) => this.onData(chunk));
    else sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.wakeDrain());
    sock.on('error', (err: Error) => this.shutdown(`socket error: ${err.message}`));
    sock.on('end', () => this.shutdown('agent closed the connection'));
    sock.on('close', () => this.shutdown('connection closed'));
  }

  /**
   * Waits for the agent's HELLO. If it does not arrive within timeoutMs the connection is
   * closed and this rejects with AgentError 'TIMEOUT'; if the channel ends first, with the
   * reason (CHANNEL_CLOSED).
   */
  waitHello(timeoutMs: number): Promise<AgentHello> {
    return new Promise<AgentHello>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new AgentError('TIMEOUT', `no HELLO from the agent within ${timeoutMs} ms`));
        this.close();
      }, timeoutMs);
      this.hello.then(
        (h) => {
          clearTimeout(timer);
          resolve(h);
        },
        (err: unknown) => {
          clearTimeout(timer);
          this.close();
          reject(err);
        },
      );
    });
  }

  close(): void {
    this.sock.destroy();
    this.shutdown('closed by client');
  }

  /** A request with no streamed payload: resolves with its RESULT, rejects with its ERROR. */
  call(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    try {
      return this.open(req).result;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Sends OPEN for a new stream; throws CHANNEL_CLOSED once the connection is gone. */
  open(
    req: Record<string, unknown>,
    consumer?: Consumer,
    onStarted?: (info: Record<string, unknown>) => void,
    opts: StreamOptions = {},
  ): AgentStream {
    if (this.isClosed) throw new AgentError('CHANNEL_CLOSED', `agent channel closed: ${this.closeReason}`);
    let id = this.nextId;
    while (this.streams.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const st = new AgentStream(this.channel, id, consumer, onStarted, opts);
    this.streams.set(id, st);
    this.send(encodeJsonFrame(id, FrameType.OPEN, req));
    if (opts.window) st.widen(opts.window);
    return st;
  }

  /** Sends input (stdin or file content) within the stream's credit, then EOF. */
  async pump(st: AgentStream, data: Input): Promise<void> {
    const source: AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer> =
      typeof data === 'string' || data instanceof Uint8Array ? [toBuffer(data)] : data;
    for await (const piece of source) {
      await this.sendData(st, toBuffer(piece));
      if (st.finished) return;
    }
    this.sendEof(st);
  }

  /** DATA frames within the stream's credit; returns early (dropping the rest) once the stream finished. */
  async sendData(st: AgentStream, buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) {
      if (st.finished) return;
      if (st.sendCredit <= 0) {
        await st.waitCredit();
        continue;
      }
      const n = Math.min(buf.length - off, st.sendCredit, CHUNK_SIZE);
      st.sendCredit -= n;
      const ok = this.send(encodeFrame(st.id, FrameType.DATA, buf.subarray(off, off + n)));
      off += n;
      if (!ok) await this.waitDrain();
    }
  }

  /** EOF on the stream's input (stdin, file content, a tunnel's write side), unless it finished. */
  sendEof(st: AgentStream): void {
    if (!st.finished) this.send(encodeFrame(st.id, FrameType.EOF));
  }

  private send(frame: Buffer): boolean {
    if (this.isClosed) return true;
    return this.sock.write(frame);
  }

  private waitDrain(): Promise<void> {
    if (this.isClosed || !this.sock.writableNeedDrain) return Promise.resolve();
    return new Promise((res) => this.drainWaiters.push(res));
  }

  private wakeDrain(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  private onData(chunk: Buffer): void {
    if (this.isClosed) return;
    // The frames we answer while handling this read (credit for what was consumed at once)
    // leave in one write, not one write each.
    this.sock.cork();
    try {
      const frames = this.decoder.push(chunk);
      for (let i = 0; i < frames.length; i++) {
        const f = frames[i] as Frame;
        if (f.stream === 0) {
          if (f.type === FrameType.ERROR) this.closeReason = `agent: ${errorFromPayload(f.payload).message}`;
          else if (f.type === FrameType.HELLO) this.onHello(f.payload);
          continue; // other connection-level frames: ignored
        }
        const st = this.streams.get(f.stream);
        if (!st) continue; // unknown id: late frame, drop
        // A lending stream's data frames in a row in this read go out as one chunk: a few
        // times fewer chunks for everything downstream to handle.
        let end = i + 1;
        if (st.lends && this.channel.transient && isByteStream(f.type)) {
          while (end < frames.length && frames[end]?.stream === f.stream && frames[end]?.type === f.type) end++;
        }
        if (end === i + 1) st.handle(f.type, f.payload);
        else {
          st.handleData(
            f.type,
            frames.slice(i, end).map((g) => g.payload),
          );
          i = end - 1;
        }
      }
    } catch (err) {
      this.sock.destroy();
      this.shutdown(`protocol error: ${(err as Error).message}`);
    } finally {
      this.sock.uncork();
    }
  }

  /** The first HELLO settles `hello`; later ones (there should be none) are ignored. */
  private onHello(payload: Buffer): void {
    try {
      this.resolveHello(parseHello(payload));
    } catch (err) {
      this.rejectHello(new AgentError('PROTOCOL_ERROR', `malformed HELLO: ${(err as Error).message}`));
    }
  }

  private shutdown(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.closeReason === 'closed') this.closeReason = reason;
    const err = new AgentError('CHANNEL_CLOSED', `agent channel closed: ${this.closeReason}`);
    for (const st of this.streams.values()) st.abandon(err);
    this.streams.clear();
    this.rejectHello(err); // no-op once HELLO arrived
    this.wakeDrain();
    if (!this.sock.destroyed) this.sock.destroy();
    this.resolveClosed();
  }
}
