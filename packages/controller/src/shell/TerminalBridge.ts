import { ApiError, type ProcessInfo } from '@scaibunker/core';
import type { WebSocket } from 'ws';
import type { ProcessHandle } from '../bunkers/ProcessService.js';
import type { SocketInbox } from './SocketInbox.js';

/** Past this much unsent output the bridge stops reading the process until the socket drains. */
const SOCKET_HIGH_WATER = 1024 * 1024;

export interface BridgeOptions {
  /** First output sequence number to send (1: everything the worker still journals). */
  from: number;
  /** A shell: once no client is attached for `graceMs`, its process group is killed. */
  killWhenAbandoned: boolean;
}

interface Attachments {
  count: number;
  grace?: NodeJS.Timeout | undefined;
}

/**
 * Joins a WebSocket to a running exec: binary frames from the client are the process's stdin,
 * its output goes back as binary frames, text frames carry JSON control (`resize`, `signal`,
 * `stdin_close` in; `exit`, `error` out). Several clients may attach to one exec. A shell
 * whose last client went away is given `graceMs` to be reattached (by exec id), then killed.
 */
export class TerminalBridge {
  private readonly attachments = new Map<string, Attachments>();

  constructor(
    private readonly graceMs: number,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  /** Runs until the process ends or the socket closes. */
  async run(socket: WebSocket, inbox: SocketInbox, handle: ProcessHandle, opts: BridgeOptions): Promise<ProcessInfo | undefined> {
    const execId = handle.row.id;
    this.attach(execId);
    const reading = new AbortController();
    let inputs: Promise<unknown> = Promise.resolve();
    // The terminal stays open: a bad control frame or a refused write is the client's to handle.
    const fail = (err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError('INTERNAL', (err as Error).message);
      sendControl(socket, { type: 'error', code: e.code, message: e.message });
    };

    inbox.consume(({ data, isBinary }) => {
      // One at a time, in order: keystrokes must not overtake each other.
      inputs = inputs
        .then(async () => {
          if (isBinary) await handle.write(data);
          else await this.control(handle, data.toString('utf8'));
        })
        .catch(fail);
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    closed.then(() => reading.abort());

    let ended: ProcessInfo | undefined;
    try {
      ended = await handle.events(
        opts.from,
        async (e) => {
          if (socket.readyState !== socket.OPEN) return;
          socket.send(e.data, { binary: true });
          if (socket.bufferedAmount > SOCKET_HIGH_WATER) await drained(socket, closed);
        },
        reading.signal,
      );
    } catch (err) {
      if (!reading.signal.aborted) fail(err);
    }
    if (ended && ended.state !== 'running' && socket.readyState === socket.OPEN) {
      sendControl(socket, { type: 'exit', exit_code: ended.exitCode, signal: ended.signal, state: ended.state });
      socket.close(1000, 'process ended');
    } else if (socket.readyState === socket.OPEN) {
      socket.close(1011, 'output stream ended');
    }
    await closed;
    this.detach(execId, opts.killWhenAbandoned && (!ended || ended.state === 'running') ? handle : null);
    return ended;
  }

  private async control(handle: ProcessHandle, text: string): Promise<void> {
    let msg: { type?: unknown; cols?: unknown; rows?: unknown; signal?: unknown };
    try {
      msg = JSON.parse(text);
    } catch {
      throw new ApiError('VALIDATION_FAILED', 'control frames are JSON objects');
    }
    if (msg.type === 'resize' && isSize(msg.cols) && isSize(msg.rows)) return handle.resize(msg.cols, msg.rows);
    if (msg.type === 'signal' && typeof msg.signal === 'string' && /^SIG[A-Z0-9]{2,8}$/.test(msg.signal)) return handle.signal(msg.signal);
    if (msg.type === 'stdin_close') return handle.closeStdin();
    throw new ApiError('VALIDATION_FAILED', `unknown control frame: ${text.slice(0, 100)}`);
  }

  private attach(execId: string): void {
    const a = this.attachments.get(execId) ?? { count: 0 };
    if (a.grace) clearTimeout(a.grace);
    a.grace = undefined;
    a.count++;
    this.attachments.set(execId, a);
  }

  private detach(execId: string, abandoned: ProcessHandle | null): void {
    const a = this.attachments.get(execId);
    if (!a) return;
    a.count--;
    if (a.count > 0) return;
    if (!abandoned) {
      this.attachments.delete(execId);
      return;
    }
    a.grace = setTimeout(() => {
      this.attachments.delete(execId);
      abandoned.signal('SIGKILL').catch((err) => this.log(`[shell] killing abandoned ${execId}: ${(err as Error).message}`));
    }, this.graceMs);
    a.grace.unref();
  }

  /** Cancels grace timers (controller shutdown: the shells run on until someone reattaches). */
  close(): void {
    for (const a of this.attachments.values()) if (a.grace) clearTimeout(a.grace);
    this.attachments.clear();
  }
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 1000;
}

function sendControl(socket: WebSocket, msg: object): void {
  if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(msg));
}

function drained(socket: WebSocket, closed: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const check = setInterval(() => {
      if (socket.bufferedAmount <= SOCKET_HIGH_WATER / 2 || socket.readyState !== socket.OPEN) {
        clearInterval(check);
        resolve();
      }
    }, 10);
    closed.then(() => {
      clearInterval(check);
      resolve();
    });
  });
}
