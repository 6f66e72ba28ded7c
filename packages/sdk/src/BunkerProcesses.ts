import { BunkerProcess } from './BunkerProcess.js';
import { connectionFailed, errorFromApi, errorFromResponseBody, ScaiBunkerError } from './errors.js';
import type { HttpTransport } from './HttpTransport.js';
import { type Page, Paginator } from './Paginator.js';
import { followProcessEvents, type ProcessEvent, type ProcessEventsOptions } from './processEvents.js';
import { Terminal } from './Terminal.js';
import type { ExecRequestBody, PathWith, ProcessInfo, ProcessSignal, ProcessState, ShellTicket, TerminalSize } from './types.js';
import { toUploadBody, type UploadData } from './uploadBody.js';

export interface StartProcessOptions {
  /** A label to find the process by (`list({ tag })`). */
  tag?: string;
  /** Keep stdin open for `sendStdin` / `closeStdin` (a `pty` process always has it). */
  stdin?: boolean;
  /** Run it in a terminal of this size: stdout and stderr are then one stream; attach to it with `attach`. */
  pty?: TerminalSize;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Kill it after this many seconds (a background process has no timeout by default). */
  timeoutS?: number;
  signal?: AbortSignal;
}

export interface ListProcessesOptions {
  state?: ProcessState;
  tag?: string;
  /** Page size (1–200). */
  limit?: number;
  cursor?: string;
}

/**
 * How a WebSocket authenticates: `header` sends the Authorization header (Node's WebSocket can);
 * `ticket` first mints a single-use ticket (`POST …/shell-tickets`) and puts it in the URL, as a
 * browser must. Default: `header` in Node, `ticket` elsewhere.
 */
export type TerminalAuth = 'header' | 'ticket';

export interface AttachOptions {
  /** Replay output from this sequence number (default 1: all the worker still journals). */
  from?: number;
  auth?: TerminalAuth;
}

export interface ShellOptions {
  /** Terminal size (default 80×24). */
  cols?: number;
  rows?: number;
  /** Run this (by `/bin/sh -c`) instead of a login shell. */
  command?: string;
  /** Reattach to this shell instead of opening a new one. */
  execId?: string;
  auth?: TerminalAuth;
}

const EXEC_PATH = '/v1/modules/scaibunker/bunkers/{id}/execs/{exec_id}';
/** The verbs that answer 204. */
type SteeringPath = `${typeof EXEC_PATH}/stdin/close` | `${typeof EXEC_PATH}/signal` | `${typeof EXEC_PATH}/resize`;

/** Whether this runtime's WebSocket can send an Authorization header on its upgrade (Node's undici one can; browsers' cannot). */
function runtimeSendsUpgradeHeaders(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string' && !('window' in globalThis);
}

/**
 * The processes of one bunker (`bunker.processes`): start background commands, find them
 * again, follow their output, feed their stdin, signal them, and attach to their terminals.
 */
export class BunkerProcesses {
  constructor(
    private readonly transport: HttpTransport,
    readonly bunkerId: string,
  ) {}

  /** Starts a command in the background (a string runs under `/bin/sh -c`, an array is argv); resolves once it runs. */
  async start(command: string | string[], opts: StartProcessOptions = {}): Promise<BunkerProcess> {
    const body: ExecRequestBody = { command, background: true };
    if (opts.tag !== undefined) body.tag = opts.tag;
    if (opts.stdin) body.stdin = true;
    if (opts.pty !== undefined) body.pty = opts.pty;
    if (opts.env !== undefined) body.env = opts.env;
    if (opts.cwd !== undefined) body.cwd = opts.cwd;
    if (opts.user !== undefined) body.user = opts.user;
    if (opts.timeoutS !== undefined) body.timeout_s = opts.timeoutS;
    // Not `json()`: its type is the 200 answer (an exec result); a background start answers 202 with the process.
    const res = await this.transport.request('post', '/v1/modules/scaibunker/bunkers/{id}/exec', {
      path: { id: this.bunkerId },
      json: body,
      signal: opts.signal,
    });
    const text = (await this.transport.readBuffer(res)).toString('utf8');
    if (res.status !== 202) throw errorFromResponseBody(502, `expected 202 with the started process, got ${res.status}: ${text}`);
    return new BunkerProcess(this.parse(text), this);
  }

  /** The bunker's processes, running and recent, newest first; fetched page by page as iterated. */
  list(opts: ListProcessesOptions = {}): Paginator<BunkerProcess> {
    return new Paginator(async (cursor): Promise<Page<BunkerProcess>> => {
      const page = await this.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/execs', {
        path: { id: this.bunkerId },
        query: {
          ...(opts.state ? { state: opts.state } : {}),
          ...(opts.tag ? { tag: opts.tag } : {}),
          ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
          ...(cursor !== undefined ? { cursor } : {}),
        },
      });
      return { items: page.items.map((info) => new BunkerProcess(info, this)), nextCursor: page.next_cursor };
    }, opts.cursor);
  }

  /** One process by exec id (EXEC_NOT_FOUND when the bunker has none). */
  async get(execId: string): Promise<BunkerProcess> {
    return new BunkerProcess(await this.info(execId), this);
  }

  /** @internal the API's view of one process */
  info(execId: string): Promise<ProcessInfo> {
    return this.transport.json('get', EXEC_PATH, { path: { id: this.bunkerId, exec_id: execId } });
  }

  /** Output events (`stdout`/`stderr` with their `seq`) and then `exit`; a dropped connection is resumed where it broke. */
  events(execId: string, opts: ProcessEventsOptions = {}): AsyncGenerator<ProcessEvent> {
    return followProcessEvents(this.transport, this.bunkerId, execId, opts);
  }

  /** Follows the process until it ends and returns it as it ended (its output is skipped, not read). */
  async wait(execId: string, opts: { signal?: AbortSignal } = {}): Promise<ProcessInfo> {
    const now = await this.info(execId);
    if (now.state !== 'running') return now;
    // From the next sequence number: only the exit is wanted, not a replay of the output so far.
    const from = now.next_seq ?? 1;
    for await (const event of this.events(execId, { from, ...(opts.signal ? { signal: opts.signal } : {}) })) {
      if (event.type === 'exit') return event.process;
    }
    throw connectionFailed(`the event stream of exec ${execId} ended without its exit`);
  }

  /** Writes to the process's stdin (started with `stdin: true` or `pty`); resolves with the bytes written. */
  async sendStdin(execId: string, data: UploadData, opts: { signal?: AbortSignal } = {}): Promise<{ bytes: number }> {
    const upload = toUploadBody(data);
    const res = await this.transport.request(
      'post',
      `${EXEC_PATH}/stdin`,
      {
        path: { id: this.bunkerId, exec_id: execId },
        body: upload.body,
        headers: { 'content-type': 'application/octet-stream' },
        signal: opts.signal,
      },
      upload.watch,
    );
    return this.parse((await this.transport.readBuffer(res)).toString('utf8')) as unknown as { bytes: number };
  }

  /** Closes the process's stdin (a terminal gets end-of-file, ^D). */
  async closeStdin(execId: string): Promise<void> {
    await this.noContent(`${EXEC_PATH}/stdin/close`, execId);
  }

  /** Sends a signal to the process's group. */
  async signal(execId: string, signal: ProcessSignal): Promise<void> {
    await this.noContent(`${EXEC_PATH}/signal`, execId, { signal });
  }

  /** Resizes the process's terminal (it gets SIGWINCH). */
  async resize(execId: string, cols: number, rows: number): Promise<void> {
    await this.noContent(`${EXEC_PATH}/resize`, execId, { cols, rows });
  }

  /** SIGKILL to the process's group. */
  kill(execId: string): Promise<void> {
    return this.signal(execId, 'SIGKILL');
  }

  /** A single-use ticket (valid 30 s) for `?ticket=` on the terminal WebSockets. */
  mintTicket(): Promise<ShellTicket> {
    return this.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/shell-tickets', { path: { id: this.bunkerId } });
  }

  /** A terminal on a running process: its output replayed from `from`, then live; what is written is its stdin. */
  async attach(execId: string, opts: AttachOptions = {}): Promise<Terminal> {
    const query: Record<string, number> = opts.from !== undefined ? { from: opts.from } : {};
    return this.openTerminal(`${EXEC_PATH}/attach`, { id: this.bunkerId, exec_id: execId }, query, opts.auth, execId, false);
  }

  /** A login shell (or `command`) in a terminal, or a reattached one (`execId`); its exec id is `terminal.execId`. */
  async shell(opts: ShellOptions = {}): Promise<Terminal> {
    const query = {
      ...(opts.cols !== undefined ? { cols: opts.cols } : {}),
      ...(opts.rows !== undefined ? { rows: opts.rows } : {}),
      ...(opts.command !== undefined ? { command: opts.command } : {}),
      ...(opts.execId !== undefined ? { exec_id: opts.execId } : {}),
    };
    return this.openTerminal('/v1/modules/scaibunker/bunkers/{id}/shell', { id: this.bunkerId }, query, opts.auth, opts.execId, true);
  }

  private async openTerminal(
    path: PathWith<'get'>,
    pathParams: Record<string, string>,
    query: Record<string, string | number>,
    auth: TerminalAuth | undefined,
    execId: string | undefined,
    isShell: boolean,
  ): Promise<Terminal> {
    const useTicket = auth === 'ticket' || (auth === undefined && !runtimeSendsUpgradeHeaders());
    // A ticket is minted over plain HTTP, so a bad key or a missing bunker is its typed error right here.
    const ticket = useTicket ? (await this.mintTicket()).ticket : undefined;
    const url = this.transport.webSocketUrl(path, { path: pathParams, query: { ...query, ...(ticket ? { ticket } : {}) } });
    return Terminal.connect(
      {
        url,
        ...(useTicket ? {} : { headers: this.transport.webSocketHeaders() }),
        awaitReady: isShell,
        diagnose: () => this.diagnoseRefusedUpgrade(url, execId),
      },
      execId,
    );
  }

  /**
   * Why the server refused a WebSocket upgrade, which the WebSocket API does not tell: the
   * same checks asked over plain HTTP. Reading the exec (or bunker) finds a bad key (401) or a
   * missing one (404); minting a ticket needs `scaibunker:execute` as the upgrade does (403).
   * When those pass, the refusal stays unexplained: CONNECTION_FAILED.
   */
  private async diagnoseRefusedUpgrade(url: string, execId: string | undefined): Promise<ScaiBunkerError> {
    try {
      if (execId !== undefined) {
        const info = await this.info(execId);
        if (info.state !== 'running') return errorFromApi(409, { code: 'EXEC_CONFLICT', message: `exec ${execId} is ${info.state}` });
      } else {
        await this.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}', { path: { id: this.bunkerId } });
      }
      await this.mintTicket();
    } catch (err) {
      if (err instanceof ScaiBunkerError) return err;
      return connectionFailed(`the WebSocket to ${url.replace(/ticket=[^&]*/, 'ticket=…')} failed: ${(err as Error).message}`, err);
    }
    return connectionFailed(
      `the WebSocket to ${url.replace(/ticket=[^&]*/, 'ticket=…')} could not be opened (the server refused the upgrade or could not be reached)`,
    );
  }

  private async noContent(path: SteeringPath, execId: string, json?: unknown): Promise<void> {
    const res = await this.transport.request('post', path, {
      path: { id: this.bunkerId, exec_id: execId },
      ...(json === undefined ? {} : { json }),
    });
    await this.transport.readBuffer(res);
  }

  private parse(text: string): ProcessInfo {
    try {
      return JSON.parse(text) as ProcessInfo;
    } catch {
      throw errorFromResponseBody(502, text);
    }
  }
}
