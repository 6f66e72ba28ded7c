import { connectionFailed, errorFromApi, type ScaiBunkerError } from './errors.js';
import type { ProcessSignal, ProcessState } from './types.js';

/** How a terminal's process ended (the `exit` control frame). */
export interface TerminalExit {
  exit_code: number | null;
  signal: string | null;
  state: ProcessState;
}

export interface TerminalConnectOptions {
  /** The ws:// or wss:// URL, with `ticket=` already in it when a ticket authenticates. */
  url: string;
  /** Upgrade headers (authorization); only runtimes whose WebSocket takes headers (Node's undici) get them. */
  headers?: Record<string, string>;
  /** A shell: the connection is usable once the server's `ready` frame names the exec. */
  awaitReady: boolean;
  /**
   * Finds the typed error when the upgrade is refused: the WebSocket API hides the HTTP status
   * and body of a refusal, so the caller asks the API over plain HTTP why it would refuse.
   */
  diagnose: () => Promise<ScaiBunkerError>;
}

type ControlFrame =
  | { type: 'ready'; exec_id: string; pid: number | null }
  | ({ type: 'exit' } & TerminalExit)
  | { type: 'error'; code?: string; message?: string; details?: Record<string, unknown> };

/** The shape of the runtime's WebSocket this class uses (Node's global undici one, or a browser's). */
interface WebSocketLike {
  binaryType: string;
  readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number; reason?: string }) => void): void;
}
type WebSocketConstructor = new (url: string, init?: { headers: Record<string, string> }) => WebSocketLike;

const OPEN = 1;

/**
 * A process's terminal over a WebSocket (`…/execs/{exec_id}/attach` or `…/shell`): binary frames
 * carry the terminal's bytes both ways, text frames JSON control. Output is held until the first
 * consumer (`onData` or iteration) takes it, so nothing sent between the connection opening and
 * the caller subscribing is lost; later consumers see output from when they subscribe.
 */
export class Terminal implements AsyncIterable<Buffer> {
  /** Resolves with the exit once the process ends; rejects with a typed error, or CONNECTION_FAILED when the connection ends first (also after `close()`). */
  readonly exited: Promise<TerminalExit>;
  private resolveExit!: (exit: TerminalExit) => void;
  private rejectExit!: (err: unknown) => void;
  private id: string | undefined;
  private processPid: number | null = null;
  private backlog: Buffer[] | null = [];
  private readonly listeners = new Set<(chunk: Buffer) => void>();
  private readonly endWatchers = new Set<() => void>();
  private readonly errorListeners = new Set<(err: ScaiBunkerError) => void>();
  /** The last error frame: what ended the terminal, when the connection then closes without an exit. */
  private lastError: ScaiBunkerError | undefined;
  private ended = false;
  private closedByCaller = false;
  private exitSeen = false;
  /** What ended the terminal abnormally (an error frame, a lost connection): iteration throws it. */
  private failure: ScaiBunkerError | undefined;

  private constructor(
    private readonly socket: WebSocketLike,
    execId: string | undefined,
  ) {
    this.id = execId;
    this.exited = new Promise<TerminalExit>((resolve, reject) => {
      this.resolveExit = resolve;
      this.rejectExit = reject;
    });
    // A caller that never awaits `exited` must not get an unhandled rejection; awaiting it still throws.
    this.exited.catch(() => {});
  }

  /** Connects; resolves once the socket is open (for a shell: once its `ready` frame arrived). */
  static connect(opts: TerminalConnectOptions, execId?: string): Promise<Terminal> {
    const WebSocketImpl = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketImpl) throw new TypeError('this runtime has no global WebSocket (Node.js 22 or later has one)');
    const headers = opts.headers ?? {};
    const socket = Object.keys(headers).length ? new WebSocketImpl(opts.url, { headers }) : new WebSocketImpl(opts.url);
    socket.binaryType = 'arraybuffer';
    const terminal = new Terminal(socket, execId);
    return new Promise<Terminal>((resolve, reject) => {
      let opened = false;
      let usable = false;
      const becomeUsable = () => {
        usable = true;
        resolve(terminal);
      };
      socket.addEventListener('open', () => {
        opened = true;
        if (!opts.awaitReady) becomeUsable();
      });
      socket.addEventListener('message', (event) => {
        const frame = terminal.receive(event.data);
        if (frame?.type === 'ready' && !usable) becomeUsable();
      });
      // 'error' is always followed by 'close', where the outcome is decided.
      socket.addEventListener('error', () => {});
      socket.addEventListener('close', (event) => {
        terminal.finish(event.code ?? 1006, event.reason ?? '');
        if (usable) return;
        if (!opened) opts.diagnose().then(reject, reject);
        else reject(terminal.failure ?? connectionFailed(`the terminal connection closed (${event.code}) before the shell was ready`));
      });
    });
  }

  /** The exec behind the terminal (for a shell: from its `ready` frame; reattach with it). */
  get execId(): string | undefined {
    return this.id;
  }

  /** The process's pid, when the server said (a shell's `ready` frame). */
  get pid(): number | null {
    return this.processPid;
  }

  /** Sends bytes (text as UTF-8) to the terminal: they are the process's input. */
  write(data: string | Uint8Array): void {
    // Always a binary frame: text frames are control messages.
    this.sendFrame(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  resize(cols: number, rows: number): void {
    this.sendFrame(JSON.stringify({ type: 'resize', cols, rows }));
  }

  signal(signal: ProcessSignal): void {
    this.sendFrame(JSON.stringify({ type: 'signal', signal }));
  }

  /** End of input (a terminal's ^D). */
  closeStdin(): void {
    this.sendFrame(JSON.stringify({ type: 'stdin_close' }));
  }

  /** Calls `listener` with each piece of output; returns the unsubscribe. The first consumer also gets what arrived before it. */
  onData(listener: (chunk: Buffer) => void): () => void {
    const held = this.takeBacklog();
    this.listeners.add(listener);
    for (const chunk of held) listener(chunk);
    return () => this.listeners.delete(listener);
  }

  /**
   * Calls `listener` with each error frame. The server sends one when an input or control frame
   * fails (writing to a closed stdin, say) and the terminal goes on; one that ends the terminal
   * is followed by the connection closing, and is then also how `exited` rejects.
   */
  onError(listener: (err: ScaiBunkerError) => void): () => void {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /** Output as it arrives, until the terminal closes; throws the terminal's error if it ended with one. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    const queue: Buffer[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = this.onData((chunk) => {
      queue.push(chunk);
      wake?.();
    });
    const onEnd = () => wake?.();
    this.endWatchers.add(onEnd);
    try {
      for (;;) {
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.ended) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      if (this.failure && !this.closedByCaller) throw this.failure;
    } finally {
      unsubscribe();
      this.endWatchers.delete(onEnd);
    }
  }

  /** Closes the connection. An attached process keeps running; a shell with no client left is killed after 60 s. */
  close(): void {
    this.closedByCaller = true;
    if (!this.ended) this.socket.close(1000);
  }

  private sendFrame(frame: string | Uint8Array): void {
    if (this.socket.readyState !== OPEN) throw connectionFailed('the terminal is not connected');
    this.socket.send(frame);
  }

  private takeBacklog(): Buffer[] {
    const held = this.backlog ?? [];
    this.backlog = null;
    return held;
  }

  /** Handles one frame from the server; returns the control frame when it was one. */
  private receive(data: unknown): ControlFrame | undefined {
    if (typeof data !== 'string') {
      const chunk = Buffer.from(data as ArrayBuffer);
      if (this.backlog) this.backlog.push(chunk);
      else for (const listener of this.listeners) listener(chunk);
      return undefined;
    }
    let frame: ControlFrame;
    try {
      frame = JSON.parse(data) as ControlFrame;
    } catch {
      return undefined;
    }
    if (frame.type === 'ready') {
      this.id = frame.exec_id;
      this.processPid = frame.pid;
    } else if (frame.type === 'exit') {
      this.exitSeen = true;
      this.resolveExit({ exit_code: frame.exit_code, signal: frame.signal, state: frame.state });
    } else if (frame.type === 'error') {
      // Not every error frame carries a code (a failed input frame's may not): then it is INTERNAL.
      this.lastError = errorFromApi(undefined, { ...frame, code: frame.code ?? 'INTERNAL' });
      for (const listener of this.errorListeners) listener(this.lastError);
    }
    return frame;
  }

  private finish(code: number, reason: string): void {
    this.ended = true;
    const why = this.closedByCaller ? 'it was closed' : `the connection closed (${code}${reason ? ` ${reason}` : ''})`;
    const lost = this.lastError ?? connectionFailed(`the terminal ended before its process exited: ${why}`);
    if (!this.closedByCaller && !this.exitSeen) this.failure = lost;
    // No effect when an exit frame already settled it.
    this.rejectExit(this.closedByCaller ? connectionFailed(`the terminal ended before its process exited: ${why}`) : lost);
    for (const watcher of this.endWatchers) watcher();
  }
}
