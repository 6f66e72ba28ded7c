/**
 * Worker-side client of the in-bunker agent (packages/agent, protocol in PROTOCOL.md): the
 * verbs callers use. The layers under it, one job each:
 * - protocol.ts: the frame codec; payloads.ts: the JSON payloads inside frames;
 * - AgentStream.ts: one request's stream and its credit-based flow control;
 * - AgentConnection.ts: the multiplexer of streams over one socket, HELLO and shutdown;
 * - connectSocket.ts: dialling the agent's socket while the bunker boots;
 * - spawnProcess.ts, watchDirectory.ts, openTunnel.ts, readFileChunks.ts: the verbs with
 *   more than a request and a result.
 *
 * Data in both directions is credit-based: the agent never sends more than the window we
 * granted, and we grant more only after the consumer has handled a chunk (awaiting a
 * returned Promise), so a slow consumer slows the producing process down instead of
 * growing buffers.
 */
import type { Duplex } from 'node:stream';
import { AgentConnection } from './AgentConnection.js';
import type {
  AgentHello,
  AgentProcess,
  AgentSpawnRequest,
  ConnectOptions,
  ExecHandlers,
  ExecRequest,
  ExecResult,
  FileStat,
  HealthInfo,
  IdentityRequest,
  IdentityResult,
  WatchEvent,
  WatchHandle,
} from './agentTypes.js';
import { connectSocket } from './connectSocket.js';
import { openTunnel } from './openTunnel.js';
import { readFileChunks } from './readFileChunks.js';
import type { SharedReads } from './SharedReads.js';
import { spawnProcess } from './spawnProcess.js';
import { watchDirectory } from './watchDirectory.js';

export { AgentError } from './AgentError.js';
export type * from './agentTypes.js';
export { HOST_TIMEOUT_GRACE_MS } from './spawnProcess.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

export class AgentClient {
  readonly closed: Promise<void>;
  /**
   * Resolves with the agent's first HELLO frame. Rejects (CHANNEL_CLOSED, or PROTOCOL_ERROR
   * for a malformed HELLO) if the channel ends first; an unobserved rejection is harmless.
   */
  readonly hello: Promise<AgentHello>;

  private readonly conn: AgentConnection;

  private constructor(sock: Duplex, reads?: SharedReads) {
    this.conn = new AgentConnection(sock, reads);
    this.closed = this.conn.closed;
    this.hello = this.conn.hello;
  }

  /**
   * Connects to the agent's Unix socket, retrying while the socket does not exist yet or
   * refuses connections (the bunker may still be booting), until timeoutMs elapses. With
   * awaitHello, also waits (within the same timeoutMs) for the agent's HELLO frame.
   */
  static async connect(socketPath: string, opts?: ConnectOptions): Promise<AgentClient> {
    const timeoutMs = opts?.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const { socket, reads } = await connectSocket(socketPath, deadline, timeoutMs, opts?.signal);
    const client = new AgentClient(socket, reads);
    socket.resume();
    if (opts?.awaitHello) await client.waitHello(Math.max(0, deadline - Date.now()));
    return client;
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
    return this.conn.waitHello(timeoutMs);
  }

  health(): Promise<HealthInfo> {
    return this.conn.call({ op: 'health' }) as Promise<unknown> as Promise<HealthInfo>;
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
    return spawnProcess(this.conn, req, handlers);
  }

  /**
   * Watches a directory (with `recursive`, its whole tree) for changes. onEvent is called
   * once per event, in order; credit is granted after it returned (or its promise resolved),
   * so a slow handler makes the agent stop reading (the kernel queue may then overflow,
   * reported as an 'overflow' event).
   */
  watch(path: string, opts: { recursive?: boolean }, onEvent: (e: WatchEvent) => void | Promise<void>): WatchHandle {
    return watchDirectory(this.conn, path, opts, onEvent);
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
   * the connect (ECONNRESET, CHANNEL_CLOSED) destroy the Duplex with the AgentError. Its
   * chunks may be lent: see openTunnel.ts.
   */
  connectPort(port: number): Promise<Duplex> {
    return openTunnel(this.conn, port);
  }

  /**
   * Streams a file in chunks of up to 64 KiB. Errors (NOT_FOUND, IS_A_DIRECTORY, ...) are
   * thrown by the first iteration step, before any chunk. Credit is granted as the caller
   * pulls chunks; breaking out of the loop cancels the read.
   */
  readFile(path: string): AsyncIterable<Buffer> {
    return readFileChunks(this.conn, path);
  }

  async writeFile(
    path: string,
    data: Buffer | string | AsyncIterable<Buffer>,
    opts?: { mode?: number | undefined; mkdirParents?: boolean | undefined },
  ): Promise<{ bytes: number }> {
    const st = this.conn.open({ op: 'write', path, mode: opts?.mode, mkdir_parents: opts?.mkdirParents === true });
    // Not awaited: RESULT only follows our EOF, and an early ERROR (NOT_FOUND, NO_SPACE...)
    // must reject at once even while a slow source is still producing.
    this.conn.pump(st, data).catch((err: unknown) => {
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
    const r = await this.conn.call({
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
    return this.conn.call({ op: 'stat', path }) as Promise<unknown> as Promise<FileStat>;
  }

  /** Entries of a directory (not recursive), sorted by name. At most 10,000 entries. */
  async list(path: string): Promise<FileStat[]> {
    const entries: FileStat[] = [];
    let partial = '';
    const st = this.conn.open({ op: 'list', path }, (_type, chunk) => {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line) entries.push(JSON.parse(line) as FileStat);
    });
    await st.result;
    if (partial) entries.push(JSON.parse(partial) as FileStat);
    return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async mkdir(path: string, opts?: { parents?: boolean | undefined }): Promise<void> {
    await this.conn.call({ op: 'mkdir', path, parents: opts?.parents === true });
  }

  async remove(path: string, opts?: { recursive?: boolean | undefined }): Promise<void> {
    await this.conn.call({ op: 'remove', path, recursive: opts?.recursive === true });
  }

  async chmod(path: string, mode: number): Promise<void> {
    await this.conn.call({ op: 'chmod', path, mode });
  }

  close(): void {
    this.conn.close();
  }
}
