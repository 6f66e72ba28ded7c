/**
 * One open `scaibunker-mux` connection to a worker (see mux.ts): many calls at once, each a
 * call id. An exec's output is handed to its handlers in order, one chunk at a time, and the
 * worker is granted credit for a chunk only once its handler returned (or its promise resolved):
 * a slow caller holds the worker back (and through it the agent) instead of either side
 * buffering more than MUX_EXEC_WINDOW per exec. Losing the connection fails every call on it
 * with WORKER_UNAVAILABLE; the client opens a new channel for the next call.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { ExecHandlers } from './api.js';
import { toWorkerError, WorkerError } from './errors.js';
import { MuxFrameDecoder } from './MuxFrameDecoder.js';
import {
  encodeMuxCredit,
  encodeMuxFrame,
  encodeMuxJson,
  MUX_EXEC_WINDOW,
  MUX_MAX_REPLY,
  MUX_PATH,
  MUX_UPGRADE,
  type MuxFrame,
  MuxFrameType,
  MuxProtocolError,
  parseMuxJson,
} from './mux.js';
import type { AnyWireRequest, AnyWorkerRoute } from './routes.js';
import type { ExecOutcome } from './schemas.js';
import { TurnBatchedWriter } from './TurnBatchedWriter.js';
import { errorFrom, transportError } from './transportErrors.js';

/** The default cap on a JSON answer, as HttpWorkerClient reads it. */
const DEFAULT_REPLY_LIMIT = 1024 * 1024;
/** Idle connections are probed (TCP keep-alive) so a vanished worker host fails the calls on it. */
const KEEPALIVE_MS = 15_000;

interface PendingCall {
  route: AnyWorkerRoute;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  handlers: ExecHandlers | undefined;
  /** exec: output and its end, waiting for the handlers. */
  queue: MuxFrame[];
  draining: boolean;
  /** exec: output bytes the worker may still send. */
  window: number;
  cleanup(): void;
}

/** The worker answered the upgrade 404: it predates the channel (the client falls back to HTTP). */
export class MuxUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MuxUnsupported';
  }
}

/** A terminal frame the channel makes itself: the connection is gone. */
const LOST = -1;

export class MuxChannel {
  private readonly calls = new Map<number, PendingCall>();
  private readonly decoder = new MuxFrameDecoder(MUX_MAX_REPLY);
  private nextId = 1;
  private readonly out: TurnBatchedWriter;
  private closing = false;
  private lostError: WorkerError | null = null;

  private constructor(
    private readonly socket: Socket,
    private readonly origin: string,
  ) {
    this.out = new TurnBatchedWriter(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.decoder.push(chunk)) this.dispatch(frame);
      } catch (err) {
        this.fail(new WorkerError('WORKER_UNAVAILABLE', `worker at ${origin}: bad frame on the channel: ${(err as Error).message}`));
      }
    });
    socket.on('error', (err) => this.fail(transportError(err, origin)));
    socket.on('close', () => this.fail(new WorkerError('WORKER_UNAVAILABLE', `worker at ${origin}: connection lost`)));
  }

  /** Upgrades a fresh connection to the channel; a refused upgrade is its WorkerError (a 401: WORKER_UNAVAILABLE). */
  static open(base: URL, token: string): Promise<MuxChannel> {
    const transport = base.protocol === 'https:' ? https : http;
    return new Promise<MuxChannel>((resolve, reject) => {
      const req = transport.request(new URL(MUX_PATH.slice(1), base), {
        method: 'GET',
        agent: false,
        headers: { authorization: `Bearer ${token}`, connection: 'Upgrade', upgrade: MUX_UPGRADE },
      });
      req.on('error', (err) => reject(transportError(err, base.origin)));
      req.on('upgrade', (res, socket: Socket, head: Buffer) => {
        if (res.headers.upgrade?.toLowerCase() !== MUX_UPGRADE) {
          socket.destroy();
          reject(new WorkerError('IO_ERROR', `worker upgraded to ${res.headers.upgrade ?? 'nothing'}`));
          return;
        }
        const channel = new MuxChannel(socket, base.origin);
        if (head.length) socket.unshift(head);
        resolve(channel);
      });
      req.on('response', (res) => {
        // A worker from before the channel: it knows no such upgrade (404) and serves HTTP only.
        if (res.statusCode === 404) {
          res.resume();
          reject(new MuxUnsupported(`worker at ${base.origin} has no ${MUX_UPGRADE} channel`));
          return;
        }
        errorFrom(res).then(reject, reject);
      });
      req.end();
    });
  }

  /** False once the connection is gone or closing: the client opens another. */
  get usable(): boolean {
    return this.lostError === null && !this.closing;
  }

  /** Sends one call; resolves with the route's wire answer (`empty`: undefined; `exec`: the outcome). */
  call(route: AnyWorkerRoute, wire: AnyWireRequest, requestId: string | undefined): Promise<unknown> {
    if (this.lostError) return Promise.reject(this.lostError);
    const handlers = wire.handlers;
    const signal = handlers?.signal;
    if (signal?.aborted) return Promise.reject(new WorkerError('IO_ERROR', 'request aborted by the caller'));
    const id = this.allocateId();
    return new Promise<unknown>((resolve, reject) => {
      const onAbort = () => {
        if (!this.calls.has(id)) return;
        this.finish(id);
        this.send(encodeMuxFrame(id, MuxFrameType.CANCEL));
        reject(new WorkerError('IO_ERROR', 'request aborted by the caller'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.calls.set(id, {
        route,
        resolve,
        reject,
        handlers,
        queue: [],
        draining: false,
        window: MUX_EXEC_WINDOW,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      });
      this.send(
        encodeMuxJson(id, MuxFrameType.CALL, {
          v: route.verb,
          w: { params: wire.params, query: wire.query, body: wire.body },
          r: requestId,
        }),
      );
    });
  }

  /** Ends the connection once the calls on it are done (none new are taken). */
  close(): void {
    this.closing = true;
    if (this.calls.size === 0) this.socket.end();
  }

  private allocateId(): number {
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.calls.has(this.nextId));
    return this.nextId;
  }

  /** A frame to the worker (frames of one turn share a write, see TurnBatchedWriter). */
  private send(frame: Buffer): void {
    if (this.lostError || this.socket.destroyed) return;
    this.out.write(frame);
  }

  private finish(id: number): void {
    const call = this.calls.get(id);
    if (!call) return;
    this.calls.delete(id);
    call.cleanup();
    if (this.closing && this.calls.size === 0) this.socket.end();
  }

  private dispatch(frame: MuxFrame): void {
    const call = this.calls.get(frame.id);
    switch (frame.type) {
      case MuxFrameType.RESULT: {
        if (!call) return; // cancelled
        if (call.route.kind === 'exec') throw new MuxProtocolError('RESULT for an exec');
        this.finish(frame.id);
        if (frame.payload.length > (call.route.replyLimit ?? DEFAULT_REPLY_LIMIT)) {
          call.reject(new WorkerError('IO_ERROR', 'worker reply too large'));
          return;
        }
        const reply = parseMuxJson(frame.payload);
        if (call.route.kind === 'empty') call.resolve(undefined);
        else call.resolve(call.route.fromWire ? call.route.fromWire(reply) : reply);
        return;
      }
      case MuxFrameType.ERROR:
        if (!call) return;
        if (call.route.kind === 'exec') {
          this.enqueue(call, frame);
          return;
        }
        this.finish(frame.id);
        call.reject(errorOf(frame.payload));
        return;
      case MuxFrameType.STDOUT:
      case MuxFrameType.STDERR:
        if (!call) return;
        if (call.route.kind !== 'exec') throw new MuxProtocolError('output for a call that is not an exec');
        if (frame.payload.length > call.window) throw new MuxProtocolError(`worker overran the window of call ${frame.id}`);
        call.window -= frame.payload.length;
        this.enqueue(call, frame);
        return;
      case MuxFrameType.EXIT:
        if (!call) return;
        if (call.route.kind !== 'exec') throw new MuxProtocolError('EXIT for a call that is not an exec');
        this.enqueue(call, frame);
        return;
      default:
        throw new MuxProtocolError(`unknown frame type ${frame.type}`);
    }
  }

  private enqueue(call: PendingCall, frame: MuxFrame): void {
    call.queue.push(frame);
    if (!call.draining) void this.drain(frame.id, call);
  }

  /** Hands an exec's frames to its handlers in order, granting credit for each chunk once handled. */
  private async drain(id: number, call: PendingCall): Promise<void> {
    call.draining = true;
    try {
      for (let frame = call.queue.shift(); frame; frame = call.queue.shift()) {
        if (this.calls.get(id) !== call) return; // aborted meanwhile
        switch (frame.type) {
          case MuxFrameType.STDOUT:
          case MuxFrameType.STDERR: {
            const handler = frame.type === MuxFrameType.STDOUT ? call.handlers?.onStdout : call.handlers?.onStderr;
            const pending = handler?.call(call.handlers, frame.payload);
            if (pending) await pending;
            if (this.calls.get(id) !== call) return;
            call.window += frame.payload.length;
            this.send(encodeMuxCredit(id, frame.payload.length));
            break;
          }
          case MuxFrameType.EXIT: {
            this.finish(id);
            const o = parseMuxJson(frame.payload) as ExecOutcome;
            call.resolve({ exitCode: o.exitCode, signal: o.signal, timedOut: o.timedOut, durationMs: o.durationMs });
            return;
          }
          case MuxFrameType.ERROR:
            this.finish(id);
            call.reject(errorOf(frame.payload));
            return;
          case LOST:
            this.finish(id);
            call.reject(this.lostError);
            return;
        }
      }
    } catch (err) {
      // The caller's handler failed: stop the exec (as an HTTP client hanging up does).
      if (this.calls.get(id) === call) {
        this.finish(id);
        this.send(encodeMuxFrame(id, MuxFrameType.CANCEL));
      }
      call.reject(transportError(err, this.origin));
    } finally {
      call.draining = false;
    }
  }

  /** The connection is gone (or broke the protocol): every call on it fails with `err`. */
  private fail(err: WorkerError): void {
    if (this.lostError) return;
    this.lostError = err;
    this.socket.destroy();
    for (const [id, call] of [...this.calls]) {
      if (call.draining) {
        // Output already received is handed over first, as an NDJSON answer cut short would be.
        call.queue.push({ id, type: LOST, payload: Buffer.alloc(0) });
      } else {
        this.finish(id);
        call.reject(err);
      }
    }
  }
}

function errorOf(payload: Buffer): WorkerError {
  const e = parseMuxJson(payload) as { code?: string; message?: string } | undefined;
  return toWorkerError(e?.code ?? 'IO_ERROR', e?.message ?? 'worker call failed');
}
