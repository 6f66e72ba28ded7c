/**
 * The stub API's processes: background execs with a journal of numbered output chunks, their
 * SSE events (`from`, `Last-Event-ID`), stdin/signal/resize, and the attach and shell
 * WebSockets (header or single-use ticket auth, refused with a plain HTTP answer before the
 * upgrade as the controller does).
 *
 * A background command is the stub's script language (`echo TEXT; err TEXT; exit N`): its
 * output is journaled at once and it exits, unless a step is `hold` (runs until a signal that
 * ends it, or until its stdin is closed) or `cat` (as `hold`, and its stdin comes back as
 * stdout). Tests add output and end processes with `output` and `end`. A shell echoes what is
 * typed and exits with N when a line `exit N` is typed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import type { BunkerInfo, ProcessInfo } from '../../src/index.js';
import { HttpFailure, newId, sendJson } from './stubHttp.js';

interface Chunk {
  seq: number;
  stream: 'stdout' | 'stderr';
  data: string;
}

interface StubProcess {
  info: ProcessInfo;
  chunks: Chunk[];
  echo: boolean;
  shell: boolean;
  typed: string;
  stdin: Buffer[];
  signals: string[];
  resizes: Array<{ cols: number; rows: number }>;
  /** Woken on each new chunk and when the process ends. */
  listeners: Set<() => void>;
  eventReaders: number;
  /** Terminal WebSockets connected to it. */
  terminals: number;
}

const ENDING_SIGNALS = new Set(['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGQUIT']);

export class StubProcesses {
  private readonly processes = new Map<string, StubProcess>();
  private readonly tickets = new Set<string>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  private readonly readerWaiters: Array<() => void> = [];
  /** The next event stream is cut after this many output events (a dropped connection). */
  private cutNextEventStreamAfter: number | undefined;
  /** Tickets redeemed on an upgrade. */
  ticketsUsed = 0;

  constructor(
    private readonly apiKey: string,
    private readonly bunkers: Map<string, BunkerInfo>,
  ) {}

  // ---- test controls ---------------------------------------------------------------------

  /** Puts a running process in place (or starts one from the script language). */
  add(bunkerId: string, command: string, overrides: Partial<ProcessInfo> = {}): ProcessInfo {
    const p = this.create(bunkerId, { command, background: true, ...(overrides.tag ? { tag: overrides.tag } : {}) });
    return Object.assign(p.info, overrides);
  }

  get(execId: string): StubProcess | undefined {
    return this.processes.get(execId);
  }

  output(execId: string, stream: 'stdout' | 'stderr', data: string): void {
    this.append(this.require(execId), stream, data);
  }

  end(execId: string, how: Partial<Pick<ProcessInfo, 'state' | 'exit_code' | 'signal'>> = {}): void {
    this.finish(this.require(execId), { state: 'exited', exit_code: 0, signal: null, ...how });
  }

  cutNextEventStream(afterOutputEvents: number): void {
    this.cutNextEventStreamAfter = afterOutputEvents;
  }

  /** Resolves once `n` terminals are connected to the exec. */
  async waitForTerminals(execId: string, n: number): Promise<void> {
    while (this.require(execId).terminals < n) await new Promise<void>((r) => this.readerWaiters.push(r));
  }

  /** Resolves once `n` event streams of the exec are open. */
  async waitForEventReaders(execId: string, n: number): Promise<void> {
    while (this.require(execId).eventReaders < n) await new Promise<void>((r) => this.readerWaiters.push(r));
  }

  /** Cuts every terminal connection without a close frame (the network failing). */
  dropTerminals(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  close(): void {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
  }

  // ---- HTTP ------------------------------------------------------------------------------

  /** `POST …/exec` with `background: true`: 202 with the running process. */
  startBackground(res: ServerResponse, bunker: BunkerInfo, body: Record<string, unknown>): void {
    if (body.stream) throw new HttpFailure(400, 'VALIDATION_FAILED', '`stream` cannot be used with `background`');
    if (typeof body.stdin === 'string') throw new HttpFailure(400, 'VALIDATION_FAILED', 'a text `stdin` cannot be used with `background`');
    sendJson(res, 202, this.create(bunker.id, body).info);
  }

  /** `…/execs…` and `…/shell-tickets`; false when the route is not one of them. */
  async route(
    req: IncomingMessage,
    res: ServerResponse,
    bunker: BunkerInfo,
    rest: string,
    q: URLSearchParams,
    json: unknown,
  ): Promise<boolean> {
    if (rest === '/shell-tickets' && req.method === 'POST') {
      const ticket = newId('tk');
      this.tickets.add(ticket);
      sendJson(res, 201, { ticket, expires_at: new Date(Date.now() + 30_000).toISOString() });
      return true;
    }
    if (rest === '/execs' && req.method === 'GET') {
      const all = [...this.processes.values()]
        .filter((p) => p.info.bunker_id === bunker.id)
        .filter((p) => (!q.get('state') || p.info.state === q.get('state')) && (!q.get('tag') || p.info.tag === q.get('tag')))
        .reverse();
      const limit = Number(q.get('limit') ?? 50);
      const start = Number(q.get('cursor') ?? 0);
      const items = all.slice(start, start + limit).map((p) => p.info);
      sendJson(res, 200, { items, next_cursor: start + limit < all.length ? String(start + limit) : null });
      return true;
    }
    const m = /^\/execs\/([^/]+)(\/.*)?$/.exec(rest);
    if (!m) return false;
    const p = this.processes.get(m[1]!);
    if (!p || p.info.bunker_id !== bunker.id) {
      req.resume();
      throw new HttpFailure(404, 'EXEC_NOT_FOUND', `no exec ${m[1]}`);
    }
    const verb = m[2] ?? '';
    if (verb === '' && req.method === 'GET') sendJson(res, 200, p.info);
    else if (verb === '/events' && req.method === 'GET') {
      const lastEventId = Number(req.headers['last-event-id']);
      const from = Number.isInteger(lastEventId) && lastEventId > 0 ? lastEventId + 1 : Number(q.get('from') ?? 1);
      await this.streamEvents(res, p, from);
    } else if (verb === '/stdin' && req.method === 'POST') {
      const parts: Buffer[] = [];
      for await (const chunk of req as AsyncIterable<Buffer>) parts.push(chunk);
      this.requireSteerable(p, true);
      const data = Buffer.concat(parts);
      this.writeStdin(p, data);
      sendJson(res, 200, { bytes: data.length });
    } else if (verb === '/stdin/close' && req.method === 'POST') {
      this.requireSteerable(p, true);
      this.closeStdin(p);
      res.writeHead(204).end();
    } else if (verb === '/signal' && req.method === 'POST') {
      this.requireSteerable(p, false);
      this.signal(p, String((json as { signal?: unknown }).signal));
      res.writeHead(204).end();
    } else if (verb === '/resize' && req.method === 'POST') {
      this.requireSteerable(p, false);
      if (!p.info.pty) throw new HttpFailure(409, 'EXEC_CONFLICT', `exec ${p.info.exec_id} has no terminal`);
      p.resizes.push(json as { cols: number; rows: number });
      res.writeHead(204).end();
    } else return false;
    return true;
  }

  // ---- WebSockets ------------------------------------------------------------------------

  /** The server's 'upgrade' event: auth (header or ticket) and route checked before upgrading, as the controller does. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://stub');
    const ticket = url.searchParams.get('ticket');
    const byHeader = req.headers.authorization === `Bearer ${this.apiKey}`;
    const byTicket = ticket !== null && this.tickets.delete(ticket);
    if (byTicket) this.ticketsUsed++;
    if (!byHeader && !byTicket) {
      refuse(socket, 401, 'UNAUTHENTICATED', 'missing or unknown credentials');
      return;
    }
    const m = /^\/v1\/modules\/scaibunker\/bunkers\/([^/]+)\/(shell|execs\/([^/]+)\/attach)$/.exec(url.pathname);
    if (!m) {
      refuse(socket, 404, 'NOT_FOUND', `no route ${url.pathname}`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.once('close', () => this.sockets.delete(ws));
      try {
        const bunker = this.bunkers.get(m[1]!);
        if (!bunker) throw new HttpFailure(404, 'BUNKER_NOT_FOUND', `no bunker ${m[1]}`);
        if (m[2] === 'shell') this.openShell(ws, bunker, url.searchParams);
        else this.attach(ws, bunker, m[3]!, Number(url.searchParams.get('from') ?? 1));
      } catch (err) {
        const e = err instanceof HttpFailure ? err : new HttpFailure(500, 'INTERNAL', String(err));
        ws.send(JSON.stringify({ type: 'error', code: e.code, message: e.message }));
        ws.close(1011, e.code);
      }
    });
  }

  private openShell(ws: WebSocket, bunker: BunkerInfo, q: URLSearchParams): void {
    let p: StubProcess;
    const execId = q.get('exec_id');
    if (execId) {
      const found = this.processes.get(execId);
      if (!found || found.info.bunker_id !== bunker.id) throw new HttpFailure(404, 'EXEC_NOT_FOUND', `no exec ${execId}`);
      if (!found.info.pty) throw new HttpFailure(409, 'EXEC_CONFLICT', `exec ${execId} has no terminal`);
      p = found;
    } else {
      p = this.create(bunker.id, {
        command: q.get('command') ?? 'bash -l',
        pty: { cols: Number(q.get('cols') ?? 80), rows: Number(q.get('rows') ?? 24) },
        background: false,
      });
      p.shell = true;
      p.echo = true;
    }
    ws.send(JSON.stringify({ type: 'ready', exec_id: p.info.exec_id, pid: p.info.pid }));
    this.runTerminal(ws, p, 1);
  }

  private attach(ws: WebSocket, bunker: BunkerInfo, execId: string, from: number): void {
    const p = this.processes.get(execId);
    if (!p || p.info.bunker_id !== bunker.id) throw new HttpFailure(404, 'EXEC_NOT_FOUND', `no exec ${execId}`);
    this.runTerminal(ws, p, from);
  }

  /** Output from `from` as binary frames, then live; binary frames in are stdin, text frames control. */
  private runTerminal(ws: WebSocket, p: StubProcess, from: number): void {
    let next = from;
    const pump = () => {
      if (ws.readyState !== ws.OPEN) return;
      for (; next <= p.chunks.length; next++) ws.send(Buffer.from(p.chunks[next - 1]!.data), { binary: true });
      if (p.info.state !== 'running') {
        p.listeners.delete(pump);
        ws.send(JSON.stringify({ type: 'exit', exit_code: p.info.exit_code, signal: p.info.signal, state: p.info.state }));
        ws.close(1000);
      }
    };
    p.listeners.add(pump);
    p.terminals++;
    for (const w of this.readerWaiters.splice(0)) w();
    ws.once('close', () => {
      p.listeners.delete(pump);
      p.terminals--;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
      if (p.info.state !== 'running') return;
      if (isBinary) {
        this.writeStdin(p, bytes);
        return;
      }
      const control = JSON.parse(bytes.toString('utf8')) as { type: string; cols?: number; rows?: number; signal?: string };
      if (control.type === 'resize') p.resizes.push({ cols: control.cols!, rows: control.rows! });
      else if (control.type === 'signal') this.signal(p, control.signal!);
      else if (control.type === 'stdin_close') {
        // As the controller's bridge does: a failed control frame is an error frame without a code, and the terminal goes on.
        if (p.info.stdin_open) this.closeStdin(p);
        else ws.send(JSON.stringify({ type: 'error', message: `exec ${p.info.exec_id} has no open stdin` }));
      }
    });
    pump();
  }

  // ---- the processes themselves ------------------------------------------------------------

  private create(bunkerId: string, body: Record<string, unknown>): StubProcess {
    const command = Array.isArray(body.command) ? (body.command as string[]).join(' ') : String(body.command);
    const steps = command.split(';').map((s) => s.trim());
    const pty = body.pty as { cols: number; rows: number } | undefined;
    const p: StubProcess = {
      info: {
        exec_id: newId('ex'),
        bunker_id: bunkerId,
        caller: 'key:stub',
        command,
        tag: (body.tag as string | undefined) ?? null,
        background: body.background === true,
        pty: pty !== undefined,
        pid: 1000 + this.processes.size,
        state: 'running',
        exit_code: null,
        signal: null,
        timed_out: false,
        duration_ms: null,
        end_reason: null,
        stdin_open: body.stdin === true || pty !== undefined,
        next_seq: 1,
        started_at: new Date().toISOString(),
        finished_at: null,
      },
      chunks: [],
      echo: steps.includes('cat'),
      shell: false,
      typed: '',
      stdin: [],
      signals: [],
      resizes: pty ? [pty] : [],
      listeners: new Set(),
      eventReaders: 0,
      terminals: 0,
    };
    if (p.echo) p.info.stdin_open = true;
    this.processes.set(p.info.exec_id, p);
    let exitCode = 0;
    for (const step of steps) {
      const [verb, ...args] = step.split(' ');
      if (verb === 'echo') this.append(p, 'stdout', `${args.join(' ')}\n`);
      else if (verb === 'err') this.append(p, 'stderr', `${args.join(' ')}\n`);
      else if (verb === 'exit') exitCode = Number(args[0] ?? 0);
    }
    const keepsRunning = steps.includes('hold') || steps.includes('cat') || pty !== undefined || body.background === false;
    if (!keepsRunning) this.finish(p, { state: 'exited', exit_code: exitCode, signal: null });
    return p;
  }

  private append(p: StubProcess, stream: 'stdout' | 'stderr', data: string): void {
    p.chunks.push({ seq: p.chunks.length + 1, stream, data });
    p.info.next_seq = p.chunks.length + 1;
    this.wake(p);
  }

  private finish(p: StubProcess, how: Pick<ProcessInfo, 'state' | 'exit_code' | 'signal'>): void {
    if (p.info.state !== 'running') return;
    Object.assign(p.info, how, {
      stdin_open: false,
      finished_at: new Date().toISOString(),
      duration_ms: Date.now() - Date.parse(p.info.started_at),
    });
    this.wake(p);
  }

  private wake(p: StubProcess): void {
    for (const listener of [...p.listeners]) listener();
  }

  private writeStdin(p: StubProcess, data: Buffer): void {
    p.stdin.push(data);
    if (p.echo) this.append(p, 'stdout', data.toString('utf8'));
    if (p.shell) {
      p.typed += data.toString('utf8');
      const exit = /(?:^|[\r\n])exit (\d+)[\r\n]/.exec(p.typed);
      if (exit) this.finish(p, { state: 'exited', exit_code: Number(exit[1]), signal: null });
    }
  }

  private closeStdin(p: StubProcess): void {
    p.info.stdin_open = false;
    // `cat` and `hold` end at end of input, as a shell would.
    this.finish(p, { state: 'exited', exit_code: 0, signal: null });
  }

  private signal(p: StubProcess, signal: string): void {
    p.signals.push(signal);
    if (ENDING_SIGNALS.has(signal)) this.finish(p, { state: 'killed', exit_code: null, signal });
  }

  private requireSteerable(p: StubProcess, needsStdin: boolean): void {
    if (p.info.state !== 'running') throw new HttpFailure(409, 'EXEC_CONFLICT', `exec ${p.info.exec_id} is ${p.info.state}`);
    if (needsStdin && !p.info.stdin_open) throw new HttpFailure(409, 'EXEC_CONFLICT', `exec ${p.info.exec_id} has no open stdin`);
  }

  private require(execId: string): StubProcess {
    const p = this.processes.get(execId);
    if (!p) throw new Error(`stub: no process ${execId}`);
    return p;
  }

  private async streamEvents(res: ServerResponse, p: StubProcess, from: number): Promise<void> {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    const cutAfter = this.cutNextEventStreamAfter;
    this.cutNextEventStreamAfter = undefined;
    p.eventReaders++;
    for (const w of this.readerWaiters.splice(0)) w();
    try {
      let next = from;
      let sent = 0;
      for (;;) {
        for (; next <= p.chunks.length; next++) {
          const c = p.chunks[next - 1]!;
          const event = `id: ${c.seq}\nevent: ${c.stream}\ndata: ${JSON.stringify({ data: c.data })}\n\n`;
          if (cutAfter !== undefined && ++sent >= cutAfter) {
            // Cut once the events are on the wire: destroying with writes pending would drop them.
            await new Promise<void>((resolve) => res.write(event, () => resolve()));
            res.socket?.destroy();
            return;
          }
          res.write(event);
        }
        if (p.info.state !== 'running') {
          res.end(`event: exit\ndata: ${JSON.stringify(p.info)}\n\n`);
          return;
        }
        await new Promise<void>((resolve) => {
          const done = () => {
            p.listeners.delete(done);
            res.off('close', done);
            resolve();
          };
          p.listeners.add(done);
          res.once('close', done);
        });
        if (res.destroyed) return;
      }
    } finally {
      p.eventReaders--;
    }
  }
}

/** A refused upgrade: a plain HTTP answer on the raw socket, as the controller refuses before upgrading. */
function refuse(socket: Duplex, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message, details: {} } });
  socket.end(
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Not Found'}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
