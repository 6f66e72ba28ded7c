/**
 * Worker-side client of the in-bunker agent (packages/agent, protocol in PROTOCOL.md).
 *
 * One connection carries many concurrent requests, each on its own stream id. Data in
 * both directions is credit-based: the agent never sends more than the window we
 * granted, and we grant more only after the consumer has handled a chunk (awaiting a
 * returned Promise), so a slow consumer slows the producing process down instead of
 * growing buffers.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import type { ExecHandlers, ExecOutcome as ExecResult, FileStatInfo as FileStat } from '@scaibunker/core';
import { AgentError } from './AgentError.js';
import {
  CHUNK_SIZE,
  decodeWindow,
  encodeFrame,
  encodeJsonFrame,
  encodeWindow,
  FrameDecoder,
  FrameType,
  INITIAL_WINDOW,
  ProtocolError,
} from './protocol.js';

export { AgentError } from './AgentError.js';
/** A file's stat, an exec's outcome and its output handlers: the worker contract's (core/src/worker). */
export type { ExecHandlers, ExecResult, FileStat };

export interface HealthInfo {
  version: string;
  uptime_ms: number;
  pid: number;
  /** Protocol version spoken by the agent. */
  protocol?: number;
  /** Agent resident set size, when /proc is available inside the bunker. */
  rss_bytes?: number;
}

/**
 * The agent's HELLO frame, the first frame on every connection (PROTOCOL.md §5.1). On a
 * virtio-serial port it means the agent has (re)opened the port: only bytes sent after it
 * are guaranteed to reach the agent.
 */
export interface AgentHello {
  /** Protocol version spoken by the agent. */
  protocol: number;
  /** Agent version, e.g. "0.1.0". */
  version: string;
  /** The agent's pid in its own pid namespace (1 when it is the bunker's init). */
  pid: number;
  /** The kernel's boot id (/proc/sys/kernel/random/boot_id); '' when unavailable. */
  bootId: string;
}

export interface ConnectOptions {
  /** Upper bound for the whole connect(), including the wait for HELLO. Default 10 s. */
  timeoutMs?: number;
  /**
   * Resolve only once the agent's HELLO arrived; if it does not within timeoutMs, the
   * connection is closed and connect() rejects with AgentError 'TIMEOUT'. Default false.
   */
  awaitHello?: boolean;
}

/** `identity` request: every member optional, at least one required (PROTOCOL.md §3.4). */
export interface IdentityRequest {
  /** 1–64 characters of A–Z a–z 0–9 '-' '.'. */
  hostname?: string;
  /** 32 lowercase hex digits, written to /etc/machine-id. */
  machineId?: string;
  /** 1–512 bytes fed to the kernel's entropy pool (credited in full), then the CRNG is reseeded. */
  entropy?: Buffer;
  /** CLOCK_REALTIME to set, in nanoseconds since the epoch. */
  timeUnixNs?: bigint;
}

export interface IdentityResult {
  /** The hostname that was set, or null when not requested. */
  hostname: string | null;
  /** The machine id that was written, or null when not requested. */
  machineId: string | null;
  /** Bytes of entropy added (0 when not requested). */
  entropyBytes: number;
  /** Whether the clock was set. */
  clockSet: boolean;
}

export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  stdin?: Buffer | string | AsyncIterable<Buffer>;
  timeoutMs?: number;
}

/**
 * A process started with spawn(): the lower-level form of exec() for background processes
 * and interactive terminals.
 */
export interface AgentSpawnRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs?: number;
  /**
   * 'pipe': stdin is written later with write() / closeStdin(); a Buffer, string or
   * iterable: fed, then EOF; absent: no stdin (reads EOF at once). With `pty`, stdin is
   * always the terminal: absent means write()/closeStdin() may be used, as with 'pipe'.
   */
  stdin?: 'pipe' | Buffer | string | AsyncIterable<Buffer>;
  /** Run in a pseudo-terminal of this size (1–1000 each); output arrives on onStdout only. */
  pty?: { cols: number; rows: number };
}

export interface AgentProcess {
  /**
   * Resolves with the pid once the agent reports the fork (STARTED); rejects if the exec
   * failed before starting (INVALID_ARGUMENT, NOT_FOUND cwd, CHANNEL_CLOSED, …). With an
   * agent that predates STARTED it resolves with the RESULT's pid when the process ended.
   */
  readonly started: Promise<{ pid: number }>;
  /** The exec's outcome (as exec() returns it). */
  readonly result: Promise<ExecResult>;
  /**
   * Writes to stdin ('pipe' or pty) within the stream's credit; resolves when queued to
   * the socket. A no-op once the process finished; rejects (INVALID_ARGUMENT) after
   * closeStdin() or when stdin is not writable ('pipe' not requested).
   */
  write(data: Buffer | string): Promise<void>;
  /** EOF on stdin, after every pending write (pty: the terminal's EOF character, ^D, once). */
  closeStdin(): void;
  /** Sends a signal to the process group (pty: the terminal's foreground process group). */
  signal(sig: string): void;
  /** Sets the terminal's size (pty only; the agent ignores it otherwise). */
  resize(cols: number, rows: number): void;
  /** SIGKILL to the process group (CANCEL); `result` still resolves (signal 'SIGKILL'). */
  kill(): void;
}

/** One change seen by watch(). */
export interface WatchEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod' | 'overflow';
  path: string;
  is_dir: boolean;
}

export interface WatchHandle {
  /**
   * Resolves when the watch ended normally (stop(), or the watched directory was removed
   * or moved away); rejects with AgentError (NOT_FOUND, NOT_A_DIRECTORY, TOO_MANY_ENTRIES,
   * CHANNEL_CLOSED, …) or with the error onEvent threw.
   */
  done: Promise<void>;
  /** Ends the watch; no onEvent call starts after it. */
  stop(): void;
}

const WATCH_TYPES = new Set(['create', 'write', 'remove', 'rename', 'chmod', 'overflow']);

type Consumer = (type: number, chunk: Buffer) => void | Promise<void>;
type Input = Buffer | Uint8Array | string | AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer>;

/**
 * What a tunnel lets the agent send ahead (its receive window): larger than the protocol's
 * initial one, so the bulk of a download moves in larger batches with fewer WINDOW frames
 * (each a write that wakes the agent). At most this much waits in the tunnel's buffer.
 */
const TUNNEL_WINDOW = 1024 * 1024;

/** Re-grant credit once this many bytes were consumed (well below the window: never starves). */
const GRANT_THRESHOLD = 32 * 1024;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

interface QueueItem {
  end: boolean;
  type: number;
  payload: Buffer;
}

interface Channel {
  send(frame: Buffer): boolean;
  forget(id: number): void;
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function parseJson(payload: Buffer): Record<string, unknown> {
  const v: unknown = JSON.parse(payload.toString('utf8'));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('expected a JSON object');
  return v as Record<string, unknown>;
}

function parseHello(payload: Buffer): AgentHello {
  const h = parseJson(payload);
  if (typeof h.protocol !== 'number' || typeof h.version !== 'string' || typeof h.pid !== 'number') {
    throw new ProtocolError('HELLO lacks protocol, version or pid');
  }
  return {
    protocol: h.protocol,
    version: h.version,
    pid: h.pid,
    bootId: typeof h.boot_id === 'string' ? h.boot_id : '',
  };
}

function toError(payload: Buffer): AgentError {
  try {
    const e = parseJson(payload);
    const code = typeof e.code === 'string' ? e.code : 'IO_ERROR';
    const message = typeof e.message === 'string' ? e.message : code;
    return new AgentError(code, message, typeof e.errno === 'string' ? { errno: e.errno } : undefined);
  } catch {
    return new AgentError('PROTOCOL_ERROR', 'malformed ERROR frame from agent');
  }
}

/** One request/response exchange on the connection. */
class Stream {
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
  private queue: QueueItem[] = [];
  private draining = false;
  private settled = false;
  private creditWaiters: Array<() => void> = [];
  private resolve!: (v: Record<string, unknown>) => void;
  private reject!: (e: unknown) => void;

  constructor(
    private readonly ch: Channel,
    readonly id: number,
    private readonly consumer?: Consumer,
    private readonly onStarted?: (info: Record<string, unknown>) => void,
    window = INITIAL_WINDOW,
  ) {
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
        if (payload.length > this.recvAllowed) {
          throw new ProtocolError(`agent overran the window on stream ${this.id}`);
        }
        this.recvAllowed -= payload.length;
        if (this.discard) return;
        this.queue.push({ end: false, type, payload });
        void this.drain();
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
            this.settle(toError(item.payload));
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

  /** Opens the receive window past the initial one (right after OPEN: a WINDOW to the agent). */
  widen(window: number): void {
    if (window <= this.recvAllowed) return;
    this.ch.send(encodeWindow(this.id, window - this.recvAllowed));
    this.recvAllowed = window;
  }

  /** The channel is gone: nothing more will arrive. */
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

function toBuffer(piece: Buffer | Uint8Array | string): Buffer {
  if (typeof piece === 'string') return Buffer.from(piece, 'utf8');
  return Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const onError = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ENOTDIR']);

/** How long past an exec's own timeout the client waits for the agent to report it. */
export const HOST_TIMEOUT_GRACE_MS = 5000;

export class AgentClient {
  readonly closed: Promise<void>;
  /**
   * Resolves with the agent's first HELLO frame. Rejects (CHANNEL_CLOSED, or PROTOCOL_ERROR
   * for a malformed HELLO) if the channel ends first; an unobserved rejection is harmless.
   */
  readonly hello: Promise<AgentHello>;

  private readonly streams = new Map<number, Stream>();
  /** Data in pieces: a frame split across reads is passed on as it arrives, never copied together. */
  private readonly decoder = new FrameDecoder({ pieces: true });
  private nextId = 1;
  private isClosed = false;
  private closeReason = 'closed';
  private resolveClosed!: () => void;
  private resolveHello!: (h: AgentHello) => void;
  private rejectHello!: (e: unknown) => void;
  private drainWaiters: Array<() => void> = [];
  private readonly channel: Channel;

  private constructor(private readonly sock: Duplex) {
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
    };
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.wakeDrain());
    sock.on('error', (err: Error) => this.shutdown(`socket error: ${err.message}`));
    sock.on('end', () => this.shutdown('agent closed the connection'));
    sock.on('close', () => this.shutdown('connection closed'));
  }

  /**
   * Connects to the agent's Unix socket, retrying while the socket does not exist yet or
   * refuses connections (the bunker may still be booting), until timeoutMs elapses. With
   * awaitHello, also waits (within the same timeoutMs) for the agent's HELLO frame.
   */
  static async connect(socketPath: string, opts?: ConnectOptions): Promise<AgentClient> {
    const timeoutMs = opts?.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
      let sock: net.Socket;
      try {
        sock = await connectOnce(socketPath);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!RETRYABLE.has(code)) {
          throw new AgentError('CONNECT_FAILED', `connect ${socketPath}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new AgentError('CONNECT_TIMEOUT', `agent socket ${socketPath} not ready after ${timeoutMs} ms (${code})`, {
            cause: err,
          });
        }
        await new Promise((r) => setTimeout(r, Math.min(delay, left)));
        delay = Math.min(delay * 2, 100);
        continue;
      }
      const client = new AgentClient(sock);
      if (opts?.awaitHello) await client.waitHello(Math.max(0, deadline - Date.now()));
      return client;
    }
  }

  /**
   * Speaks the same protocol over any duplex byte stream (e.g. a virtio-serial port).
   * With `awaitHello: true` it returns a Promise that resolves once the agent's HELLO
   * arrived (as connect() does; timeoutMs defaults to 10 s, then 'TIMEOUT' and the stream
   * is destroyed). On a virtio-serial port always wait for HELLO before the first request.
   */
  static fromStream(stream: Duplex, opts?: { awaitHello?: false }): AgentClient;
  static fromStream(stream: Duplex, opts: { awaitHello: true; timeoutMs?: number }): Promise<AgentClient>;
  static fromStream(stream: Duplex, opts?: { awaitHello?: boolean; timeoutMs?: number }): AgentClient | Promise<AgentClient> {
    const client = new AgentClient(stream);
    if (!opts?.awaitHello) return client;
    return client.waitHello(opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS).then(() => client);
  }

  /**
   * Waits for the agent's HELLO. If it does not arrive within timeoutMs the client is closed
   * and this rejects with AgentError 'TIMEOUT'; if the channel ends first, with the reason
   * (CHANNEL_CLOSED).
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

  health(): Promise<HealthInfo> {
    return this.call({ op: 'health' }) as Promise<unknown> as Promise<HealthInfo>;
  }

  exec(req: ExecRequest, handlers: ExecHandlers = {}): Promise<ExecResult> {
    return this.spawn(req, handlers).result;
  }

  /**
   * Starts a process and returns at once: `started` resolves with its pid, `result` with
   * its outcome. Output goes to the handlers (awaited: back-pressure); stdin can be written
   * while it runs ('pipe', or a pty). `handlers.signal` aborting kills the process group and
   * makes `result` reject with ABORTED.
   */
  spawn(req: AgentSpawnRequest, handlers: ExecHandlers = {}): AgentProcess {
    let resolveStarted!: (v: { pid: number }) => void;
    let rejectStarted!: (e: unknown) => void;
    const started = new Promise<{ pid: number }>((res, rej) => {
      resolveStarted = res;
      rejectStarted = rej;
    });
    started.catch(() => {}); // callers of exec() never look at it
    const failed = (err: AgentError): AgentProcess => {
      rejectStarted(err);
      const result = Promise.reject(err);
      result.catch(() => {});
      return {
        started,
        result,
        write: () => Promise.reject(err),
        closeStdin: () => {},
        signal: () => {},
        resize: () => {},
        kill: () => {},
      };
    };
    if (!Array.isArray(req.argv) || req.argv.length === 0 || !req.argv.every((a) => typeof a === 'string')) {
      return failed(new AgentError('INVALID_ARGUMENT', 'argv must be a non-empty array of strings'));
    }
    const abort = handlers.signal;
    if (abort?.aborted) return failed(new AgentError('ABORTED', 'exec aborted before it started'));
    const interactive = req.stdin === 'pipe' || (req.pty !== undefined && req.stdin === undefined);
    const feed = req.stdin !== undefined && req.stdin !== 'pipe' ? (req.stdin as Input) : undefined;
    let st: Stream;
    try {
      st = this.open(
        {
          op: 'exec',
          argv: req.argv,
          env: req.env,
          cwd: req.cwd,
          user: req.user,
          timeout_ms: req.timeoutMs,
          stdin: req.stdin !== undefined,
          pty: req.pty ? { cols: req.pty.cols, rows: req.pty.rows } : undefined,
        },
        // called as methods: handler objects may rely on `this`
        (type, chunk) => (type === FrameType.STDERR ? handlers.onStderr?.(chunk) : handlers.onStdout?.(chunk)),
        (info) => {
          if (typeof info.pid === 'number') resolveStarted({ pid: info.pid });
        },
      );
    } catch (err) {
      return failed(err as AgentError);
    }
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      st.cancel(); // the agent SIGKILLs the process group; the RESULT still follows
    };
    // The agent enforces timeoutMs itself; this bound only fires when it cannot (a paused or
    // wedged guest that stopped reading its channel), so the caller still gets a timeout.
    const t0 = performance.now();
    const hostDeadline =
      req.timeoutMs !== undefined
        ? setTimeout(
            () => st.expire({ timed_out: true, duration_ms: Math.round(performance.now() - t0) }),
            req.timeoutMs + HOST_TIMEOUT_GRACE_MS,
          )
        : undefined;
    abort?.addEventListener('abort', onAbort, { once: true });
    if (feed !== undefined) {
      this.pump(st, feed).catch((err: unknown) => {
        st.settle(err);
        st.cancel();
      });
    }
    const result = st.result.then(
      (r): ExecResult => {
        // an agent without STARTED: the process did start (and has ended)
        if (typeof r.pid === 'number') resolveStarted({ pid: r.pid });
        else rejectStarted(new AgentError('PROTOCOL_ERROR', 'the agent reported no pid'));
        if (aborted) throw new AgentError('ABORTED', 'exec aborted: process group killed');
        return {
          exitCode: typeof r.exit_code === 'number' ? r.exit_code : null,
          signal: typeof r.signal === 'string' ? r.signal : null,
          timedOut: r.timed_out === true,
          durationMs: typeof r.duration_ms === 'number' ? r.duration_ms : 0,
        };
      },
      (err: unknown) => {
        rejectStarted(err); // no-op once STARTED arrived
        throw err;
      },
    );
    result.catch(() => {});
    void result
      .finally(() => {
        clearTimeout(hostDeadline);
        abort?.removeEventListener('abort', onAbort);
      })
      .catch(() => {});

    // stdin writes and the EOF go out in call order
    let chain: Promise<void> = Promise.resolve();
    let stdinClosed = false;
    const notWritable = () =>
      new AgentError('INVALID_ARGUMENT', stdinClosed ? 'stdin was closed' : "stdin is not writable (spawn with stdin: 'pipe' or a pty)");
    return {
      started,
      result,
      write: (data) => {
        if (!interactive || stdinClosed) return Promise.reject(notWritable());
        const buf = toBuffer(data);
        const p = chain.then(() => this.sendData(st, buf));
        chain = p.catch(() => {});
        return p;
      },
      closeStdin: () => {
        if (!interactive || stdinClosed) return;
        stdinClosed = true;
        chain = chain.then(() => {
          if (!st.finished) this.send(encodeFrame(st.id, FrameType.EOF));
        });
      },
      signal: (sig) => st.signal(sig),
      resize: (cols, rows) => st.resize(cols, rows),
      kill: () => st.cancel(),
    };
  }

  /**
   * Watches a directory (with `recursive`, its whole tree) for changes. onEvent is called
   * once per event, in order; credit is granted after it returned (or its promise resolved),
   * so a slow handler makes the agent stop reading (the kernel queue may then overflow,
   * reported as an 'overflow' event).
   */
  watch(path: string, opts: { recursive?: boolean }, onEvent: (e: WatchEvent) => void | Promise<void>): WatchHandle {
    let stopped = false;
    let partial = '';
    const deliver = async (line: string) => {
      if (!line || stopped) return;
      const v = JSON.parse(line) as Partial<WatchEvent>;
      if (typeof v.type !== 'string' || !WATCH_TYPES.has(v.type) || typeof v.path !== 'string') {
        throw new AgentError('PROTOCOL_ERROR', `malformed watch event: ${line.slice(0, 200)}`);
      }
      const r = onEvent({ type: v.type, path: v.path, is_dir: v.is_dir === true });
      if (isPromiseLike(r)) await r;
    };
    let st: Stream;
    try {
      st = this.open({ op: 'watch', path, recursive: opts.recursive === true }, async (_type, chunk) => {
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) await deliver(line);
      });
    } catch (err) {
      const done = Promise.reject(err);
      done.catch(() => {});
      return { done, stop: () => {} };
    }
    const done = st.result.then(
      () => {},
      (err: unknown) => {
        if (stopped) return; // the agent's CANCELLED answer to stop(), or anything racing it
        throw err;
      },
    );
    done.catch(() => {});
    return {
      done,
      stop: () => {
        if (stopped) return;
        stopped = true;
        st.discard = true;
        st.cancel();
      },
    };
  }

  /**
   * A byte tunnel to 127.0.0.1:port inside the bunker: the agent dials the port and relays
   * (PROTOCOL.md §3.6). Resolves once connected; rejects with AgentError PORT_NOT_LISTENING
   * (connection refused), INVALID_ARGUMENT (port not 1–65535), TOO_MANY_STREAMS (the
   * agent's per-connection tunnel cap), IO_ERROR or CHANNEL_CLOSED.
   *
   * The Duplex behaves like a net.Socket with allowHalfOpen: writes wait for the stream's
   * credit (the write callback is the back-pressure), reading grants credit only as the
   * consumer reads, end() sends EOF (the agent shuts the socket's write side), 'end' means
   * the server closed its side, destroy() cancels (the agent closes the socket). Errors after
   * the connect (ECONNRESET, CHANNEL_CLOSED) destroy the Duplex with the AgentError.
   */
  connectPort(port: number): Promise<Duplex> {
    return new Promise<Duplex>((resolve, reject) => {
      let readWaiter: (() => void) | null = null;
      let readEnded = false;
      let connected = false;
      const wakeRead = () => {
        const w = readWaiter;
        readWaiter = null;
        w?.();
      };
      let st!: Stream;
      const duplex = new Duplex({
        allowHalfOpen: true,
        // As much as the agent may send unasked (its window): a smaller buffer would make every
        // chunk wait for the consumer's next read before its credit goes back, one chunk in flight.
        readableHighWaterMark: TUNNEL_WINDOW,
        writableHighWaterMark: INITIAL_WINDOW,
        read: () => wakeRead(),
        write: (chunk: Buffer, _enc, cb) => {
          this.sendData(st, chunk).then(
            () => cb(),
            (err: unknown) => cb(err as Error),
          );
        },
        final: (cb) => {
          if (!st.finished) this.send(encodeFrame(st.id, FrameType.EOF));
          cb();
        },
        destroy: (err, cb) => {
          if (!st.finished) {
            st.discard = true;
            st.cancel(); // the agent closes the socket; its CANCELLED answer is dropped below
          }
          wakeRead();
          cb(err);
        },
      });
      const endRead = () => {
        if (readEnded) return;
        readEnded = true;
        duplex.push(null);
      };
      try {
        st = this.open(
          { op: 'connect', port },
          (type, chunk) => {
            if (duplex.destroyed) return;
            if (type === FrameType.EOF) return endRead();
            // A full readable buffer: hold the credit until the consumer asks for more.
            if (!duplex.push(chunk)) return new Promise<void>((r) => (readWaiter = r));
          },
          () => {
            connected = true;
            resolve(duplex);
          },
          TUNNEL_WINDOW,
        );
      } catch (err) {
        reject(err);
        return;
      }
      st.result.then(
        () => endRead(), // both directions finished; EOF normally came first
        (err: unknown) => {
          if (!connected) {
            duplex.destroy();
            reject(err);
          } else if (!duplex.destroyed) {
            duplex.destroy(err as Error);
          }
        },
      );
    });
  }

  /**
   * Streams a file in chunks of up to 64 KiB. Errors (NOT_FOUND, IS_A_DIRECTORY, ...) are
   * thrown by the first iteration step, before any chunk. Credit is granted as the caller
   * pulls chunks; breaking out of the loop cancels the read.
   */
  async *readFile(path: string): AsyncIterable<Buffer> {
    const ready: Array<{ chunk: Buffer; done: () => void }> = [];
    let notify: (() => void) | null = null;
    const wake = () => {
      const n = notify;
      notify = null;
      n?.();
    };
    const st = this.open({ op: 'read', path }, (_type, chunk) => {
      return new Promise<void>((done) => {
        ready.push({ chunk, done });
        wake();
      });
    });
    let settled = false;
    st.result.then(
      () => {
        settled = true;
        wake();
      },
      () => {
        settled = true;
        wake();
      },
    );
    try {
      for (;;) {
        const next = ready.shift();
        if (next) {
          // the consumer's promise resolves (granting credit) when the caller asks for more
          try {
            yield next.chunk;
          } finally {
            next.done();
          }
          continue;
        }
        if (settled) {
          await st.result; // throws the AgentError, if any
          return;
        }
        await new Promise<void>((r) => {
          notify = r;
        });
      }
    } finally {
      if (!st.finished) {
        st.discard = true;
        st.cancel();
      }
      for (const r of ready.splice(0)) r.done();
    }
  }

  async writeFile(
    path: string,
    data: Buffer | string | AsyncIterable<Buffer>,
    opts?: { mode?: number; mkdirParents?: boolean },
  ): Promise<{ bytes: number }> {
    const st = this.open({ op: 'write', path, mode: opts?.mode, mkdir_parents: opts?.mkdirParents === true });
    // Not awaited: RESULT only follows our EOF, and an early ERROR (NOT_FOUND, NO_SPACE...)
    // must reject at once even while a slow source is still producing.
    this.pump(st, data).catch((err: unknown) => {
      st.cancel(); // the agent removes its temp file
      st.settle(err);
    });
    const r = await st.result;
    return { bytes: typeof r.bytes === 'number' ? r.bytes : 0 };
  }

  /**
   * Gives the bunker a new identity (e.g. after a microVM was restored from a snapshot):
   * hostname, /etc/machine-id, entropy, clock, applied in that order. Invalid members →
   * INVALID_ARGUMENT before anything changes; a failing step stops the rest (earlier steps
   * stay applied).
   */
  async identity(req: IdentityRequest): Promise<IdentityResult> {
    const r = await this.call({
      op: 'identity',
      hostname: req.hostname,
      machine_id: req.machineId,
      entropy: req.entropy?.toString('base64'),
      time_unix_ns: req.timeUnixNs?.toString(),
    });
    return {
      hostname: typeof r.hostname === 'string' ? r.hostname : null,
      machineId: typeof r.machine_id === 'string' ? r.machine_id : null,
      entropyBytes: typeof r.entropy_bytes === 'number' ? r.entropy_bytes : 0,
      clockSet: r.clock_set === true,
    };
  }

  stat(path: string): Promise<FileStat> {
    return this.call({ op: 'stat', path }) as Promise<unknown> as Promise<FileStat>;
  }

  /** Entries of a directory (not recursive), sorted by name. At most 10,000 entries. */
  async list(path: string): Promise<FileStat[]> {
    const entries: FileStat[] = [];
    let partial = '';
    const st = this.open({ op: 'list', path }, (_type, chunk) => {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line) entries.push(JSON.parse(line) as FileStat);
    });
    await st.result;
    if (partial) entries.push(JSON.parse(partial) as FileStat);
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async mkdir(path: string, opts?: { parents?: boolean }): Promise<void> {
    await this.call({ op: 'mkdir', path, parents: opts?.parents === true });
  }

  async remove(path: string, opts?: { recursive?: boolean }): Promise<void> {
    await this.call({ op: 'remove', path, recursive: opts?.recursive === true });
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.call({ op: 'chmod', path, mode });
  }

  close(): void {
    this.sock.destroy();
    this.shutdown('closed by client');
  }

  // ---- internals -----------------------------------------------------------------------

  private call(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    try {
      return this.open(req).result;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private open(
    req: Record<string, unknown>,
    consumer?: Consumer,
    onStarted?: (info: Record<string, unknown>) => void,
    window = INITIAL_WINDOW,
  ): Stream {
    if (this.isClosed) throw new AgentError('CHANNEL_CLOSED', `agent channel closed: ${this.closeReason}`);
    let id = this.nextId;
    while (this.streams.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const st = new Stream(this.channel, id, consumer, onStarted, window);
    this.streams.set(id, st);
    this.send(encodeJsonFrame(id, FrameType.OPEN, req));
    st.widen(window);
    return st;
  }

  /** Sends input (stdin or file content) within the stream's credit, then EOF. */
  private async pump(st: Stream, data: Input): Promise<void> {
    const source: AsyncIterable<Buffer | Uint8Array | string> | Iterable<Buffer> =
      typeof data === 'string' || data instanceof Uint8Array ? [toBuffer(data)] : data;
    for await (const piece of source) {
      await this.sendData(st, toBuffer(piece));
      if (st.finished) return;
    }
    if (!st.finished) this.send(encodeFrame(st.id, FrameType.EOF));
  }

  /** DATA frames within the stream's credit; returns early (dropping the rest) once the stream finished. */
  private async sendData(st: Stream, buf: Buffer): Promise<void> {
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
      for (const f of this.decoder.push(chunk)) {
        if (f.stream === 0) {
          if (f.type === FrameType.ERROR) this.closeReason = `agent: ${toError(f.payload).message}`;
          else if (f.type === FrameType.HELLO) this.onHello(f.payload);
          continue; // other connection-level frames: ignored
        }
        this.streams.get(f.stream)?.handle(f.type, f.payload); // unknown id: late frame, drop
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
