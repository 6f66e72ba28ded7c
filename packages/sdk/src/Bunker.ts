import { Readable } from 'node:stream';
import { BunkerCode } from './BunkerCode.js';
import { BunkerFiles } from './BunkerFiles.js';
import { BunkerPorts } from './BunkerPorts.js';
import { BunkerProcesses, type ShellOptions } from './BunkerProcesses.js';
import { connectionFailed, errorFromApi, errorFromResponseBody } from './errors.js';
import type { TransportResponse } from './HttpTransport.js';
import { type Page, Paginator } from './Paginator.js';
import { type ClientOptions, ScaiBunkerClient } from './ScaiBunkerClient.js';
import { readSseEvents, type SseEvent } from './SseParser.js';
import type { Terminal } from './Terminal.js';
import type {
  AuditBatch,
  BunkerInfo,
  BunkerState,
  CreateBunkerBody,
  ExecExit,
  ExecLog,
  ExecRequestBody,
  ExecResult,
  FlowRecord,
  OutputStream,
  Snapshot,
} from './types.js';

/**
 * What a bunker is created with: the API's create body as it is (`image`, or `snapshot_id` to start from a snapshot; `lifecycle`,
 * `cpu_millicores`, `memory_mb`, `disk_mb`, `network_profile` (`isolated` default, `registry`,
 * `allowlisted`, `unrestricted`, `transit`; each but `isolated` needs its
 * `scaibunker:network:<profile>` permission), `network_allowlist` (hostnames and `*.domain`
 * wildcards, required with and only with `allowlisted`), `interfaces` (`[{bridge_id, mac?,
 * spoof_guard?}]`, required with and only with `transit`), `bandwidth_mbit` (1–10000), `isolation` (`container` default, or
 * `microvm`), `idle_timeout_s`, `max_lifetime_s`, `env`, `metadata`), typed from the generated
 * OpenAPI schema.
 */
export type CreateBunkerOptions = CreateBunkerBody;

export interface ListBunkersOptions {
  state?: BunkerState;
  /** Only bunkers whose metadata has all these key/value pairs. */
  labels?: Record<string, string>;
  /** Page size (1–200, default 50). */
  limit?: number;
  cursor?: string;
}

export interface ExecOptions {
  /** Called with each piece of stdout as it arrives; passing a handler makes the exec stream (SSE). */
  onStdout?: (text: string) => void | Promise<void>;
  /** Called with each piece of stderr as it arrives; passing a handler makes the exec stream (SSE). */
  onStderr?: (text: string) => void | Promise<void>;
  /**
   * When streaming: called with the exec id as soon as the command has started (the stream's
   * `start` event), before any output: e.g. to `processes.signal` it or read its events elsewhere.
   */
  onStart?: (execId: string) => void | Promise<void>;
  /** Kill the command after this many seconds (server default 60); the result then has `timed_out: true`. */
  timeoutS?: number;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  /** Text fed to the command's stdin. */
  stdin?: string;
  /** When streaming: also collect the output into the result's stdout/stderr (default true). */
  collectOutput?: boolean;
  signal?: AbortSignal;
}

export interface PageOptions {
  limit?: number;
  cursor?: string;
}

type ClientOrOptions = ScaiBunkerClient | ClientOptions;

function execBody(command: string | string[], opts: ExecOptions): ExecRequestBody {
  const body: ExecRequestBody = { command };
  if (opts.timeoutS !== undefined) body.timeout_s = opts.timeoutS;
  if (opts.env !== undefined) body.env = opts.env;
  if (opts.cwd !== undefined) body.cwd = opts.cwd;
  if (opts.user !== undefined) body.user = opts.user;
  if (opts.stdin !== undefined) body.stdin = opts.stdin;
  return body;
}

function eventJson<T>(event: SseEvent): T {
  try {
    return JSON.parse(event.data) as T;
  } catch {
    throw errorFromResponseBody(502, `malformed data in exec event '${event.event}': ${event.data.slice(0, 200)}`);
  }
}

/**
 * One bunker: create, connect or list them with the static methods; then exec, files, logs and
 * terminate. `info` is the API's view of the bunker as of the last call that returned it.
 */
export class Bunker {
  readonly files: BunkerFiles;
  /** Background processes: start, list, follow, signal, attach. */
  readonly processes: BunkerProcesses;
  /** Ports inside the bunker: `url(port)` (path proxy), previews. */
  readonly ports: BunkerPorts;
  /** Stateful Python: `await bunker.code.run('x = 1')`. */
  readonly code: BunkerCode;
  private data: BunkerInfo;

  constructor(
    info: BunkerInfo,
    readonly client: ScaiBunkerClient,
  ) {
    this.data = info;
    this.files = new BunkerFiles(client.transport, info.id);
    this.processes = new BunkerProcesses(client.transport, info.id);
    this.ports = new BunkerPorts(client.transport, info.id);
    this.code = new BunkerCode(client.transport, info.id);
  }

  /** Creates a bunker and resolves once it runs. */
  static async create(opts: CreateBunkerOptions, clientOrOptions?: ClientOrOptions): Promise<Bunker> {
    const client = ScaiBunkerClient.from(clientOrOptions);
    const info = await client.transport.json('post', '/v1/modules/scaibunker/bunkers', { body: opts });
    return new Bunker(info, client);
  }

  /** An existing bunker by id (NotFoundError when the caller's tenant has none). */
  static async connect(id: string, clientOrOptions?: ClientOrOptions): Promise<Bunker> {
    const client = ScaiBunkerClient.from(clientOrOptions);
    const info = await client.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}', { path: { id } });
    return new Bunker(info, client);
  }

  /**
   * The tenant's bunkers, newest first, fetched lazily page by page:
   * `for await (const b of Bunker.list({ state: 'running' }))` walks them all;
   * `await Bunker.list({ limit: 20 }).page()` fetches one page.
   */
  static list(opts: ListBunkersOptions = {}, clientOrOptions?: ClientOrOptions): Paginator<Bunker> {
    const client = ScaiBunkerClient.from(clientOrOptions);
    const label = Object.entries(opts.labels ?? {}).map(([k, v]) => `${k}=${v}`);
    return new Paginator(async (cursor): Promise<Page<Bunker>> => {
      const page = await client.transport.json('get', '/v1/modules/scaibunker/bunkers', {
        query: {
          ...(opts.state ? { state: opts.state } : {}),
          ...(label.length ? { label } : {}),
          ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
          ...(cursor !== undefined ? { cursor } : {}),
        },
      });
      return { items: page.items.map((info) => new Bunker(info, client)), nextCursor: page.next_cursor };
    }, opts.cursor);
  }

  get id(): string {
    return this.data.id;
  }

  get state(): BunkerState {
    return this.data.state;
  }

  get info(): BunkerInfo {
    return this.data;
  }

  /** Re-reads the bunker from the API. */
  async refresh(): Promise<BunkerInfo> {
    this.data = await this.client.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}', { path: { id: this.id } });
    return this.data;
  }

  /** Terminates the bunker (idempotent) and returns its final state. */
  async terminate(): Promise<BunkerInfo> {
    this.data = await this.client.transport.json('delete', '/v1/modules/scaibunker/bunkers/{id}', { path: { id: this.id } });
    return this.data;
  }

  /**
   * Freezes every process in the bunker (running → paused); its files and memory are kept.
   * `passivate: true` (persistent bunkers): snapshots it and releases its worker instead
   * (`passivated: true`); `resume()` restores it, on any worker.
   */
  async pause(opts: { passivate?: boolean } = {}): Promise<BunkerInfo> {
    this.data = await this.client.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/pause', {
      path: { id: this.id },
      ...(opts.passivate ? { body: { passivate: true } } : {}),
    });
    return this.data;
  }

  /**
   * Snapshots the bunker's files (its writable layer) and, by default, resolves once the
   * snapshot is `ready` (a failed one rejects with why); `wait: false` answers it `creating`.
   */
  async snapshot(
    opts: { name?: string; expiresInS?: number; wait?: boolean; onProgress?: (snapshot: Snapshot) => void } = {},
  ): Promise<Snapshot> {
    const created = await this.client.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/snapshots', {
      path: { id: this.id },
      body: {
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(opts.expiresInS !== undefined ? { expires_in_s: opts.expiresInS } : {}),
      },
    });
    opts.onProgress?.(created);
    return opts.wait === false
      ? created
      : this.client.snapshots.waitReady(created.id, opts.onProgress ? { onProgress: opts.onProgress } : {});
  }

  /** `count` (1–20) independent running bunkers from one fresh snapshot of this one. */
  async fork(count = 1): Promise<Bunker[]> {
    const forked = await this.client.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/fork', {
      path: { id: this.id },
      body: { count },
    });
    return forked.bunkers.map((info) => new Bunker(info, this.client));
  }

  /** Thaws a paused bunker (paused → running), or restores a passivated one from its snapshot. */
  async resume(): Promise<BunkerInfo> {
    this.data = await this.client.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/resume', { path: { id: this.id } });
    return this.data;
  }

  /**
   * Runs a command: a string runs under `/bin/sh -c`, an array is argv. With `onStdout` or
   * `onStderr` the output streams live (Server-Sent Events); without, the result comes back in
   * one JSON answer. A non-zero exit or a timeout is a result, not an error.
   */
  exec(command: string | string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const body = execBody(command, opts);
    if (opts.onStdout || opts.onStderr) return this.execStreaming(body, opts);
    return this.client.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/exec', {
      path: { id: this.id },
      body,
      signal: opts.signal,
    });
  }

  /**
   * A login shell (`bash -l`, else `sh -l`; or `command`) in a terminal, over a WebSocket;
   * `execId` reattaches to a shell opened earlier (its id is `terminal.execId`).
   */
  shell(opts: ShellOptions = {}): Promise<Terminal> {
    return this.processes.shell(opts);
  }

  /** One page of the bunker's exec log, newest first (default 50 entries; `cursor` from a previous page). */
  async execLogs(opts: PageOptions = {}): Promise<ExecLog[]> {
    return (await this.execLogPages(opts).page()).items;
  }

  /** The bunker's whole exec log, newest first, fetched page by page as it is iterated. */
  execLogPages(opts: PageOptions = {}): Paginator<ExecLog> {
    return new Paginator(async (cursor): Promise<Page<ExecLog>> => {
      const page = await this.client.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/exec-logs', {
        path: { id: this.id },
        query: { ...(opts.limit !== undefined ? { limit: opts.limit } : {}), ...(cursor !== undefined ? { cursor } : {}) },
      });
      return { items: page.items, nextCursor: page.next_cursor };
    }, opts.cursor);
  }

  /** The full output of an exec whose result was truncated, in memory. */
  async fullOutput(execId: string, stream: OutputStream = 'stdout'): Promise<Buffer> {
    return this.client.transport.readBuffer(await this.openOutput(execId, stream));
  }

  /** The full output of an exec as a byte stream. */
  fullOutputStream(execId: string, stream: OutputStream = 'stdout'): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const res = await self.openOutput(execId, stream);
      for await (const chunk of self.client.transport.bodyChunks(res)) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  /**
   * Flow-audit batches of an `unrestricted` bunker, oldest first: `sinceUs` (µs since the epoch)
   * skips older ones; iterating the paginator fetches page after page.
   */
  auditBatchPages(opts: { sinceUs?: bigint | number; limit?: number } = {}): Paginator<AuditBatch> {
    return new Paginator(async (token): Promise<Page<AuditBatch>> => {
      const page = await this.client.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/audit-batches', {
        path: { id: this.id },
        query: {
          ...(opts.sinceUs !== undefined ? { since_us: String(opts.sinceUs) } : {}),
          ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
          ...(token !== undefined ? { continuation_token: token } : {}),
        },
      });
      return { items: page.items, nextCursor: page.next_continuation_token };
    });
  }

  /** One audit batch's flow records (one JSON object per line in the stored batch). */
  async auditBatch(name: string): Promise<FlowRecord[]> {
    const res = await this.client.transport.request('get', '/v1/modules/scaibunker/bunkers/{id}/audit-batches/{name}', {
      path: { id: this.id, name },
      headers: { accept: 'application/x-ndjson, application/json' },
    });
    const text = (await this.client.transport.readBuffer(res)).toString('utf8');
    return text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as FlowRecord);
  }

  toJSON(): BunkerInfo {
    return this.data;
  }

  private openOutput(execId: string, stream: OutputStream): Promise<TransportResponse> {
    return this.client.transport.request('get', '/v1/modules/scaibunker/bunkers/{id}/exec-logs/{exec_id}/output', {
      path: { id: this.id, exec_id: execId },
      query: { stream },
      headers: { accept: 'application/octet-stream, application/json' },
    });
  }

  private async execStreaming(body: ExecRequestBody, opts: ExecOptions): Promise<ExecResult> {
    const transport = this.client.transport;
    const res = await transport.request('post', '/v1/modules/scaibunker/bunkers/{id}/exec', {
      path: { id: this.id },
      json: { ...body, stream: true },
      headers: { accept: 'text/event-stream' },
      signal: opts.signal,
    });
    if (!(res.header('content-type') ?? '').includes('text/event-stream')) {
      // A server that answered inline JSON anyway: hand the output to the handlers in one piece.
      const result = JSON.parse((await transport.readBuffer(res)).toString('utf8')) as ExecResult;
      if (result.stdout) await opts.onStdout?.(result.stdout);
      if (result.stderr) await opts.onStderr?.(result.stderr);
      return result;
    }
    const collect = opts.collectOutput ?? true;
    let stdout = '';
    let stderr = '';
    for await (const event of readSseEvents(transport.bodyChunks(res))) {
      switch (event.event) {
        case 'start':
          await opts.onStart?.(eventJson<{ exec_id: string }>(event).exec_id);
          break;
        case 'stdout': {
          const text = eventJson<{ data: string }>(event).data;
          if (collect) stdout += text;
          await opts.onStdout?.(text);
          break;
        }
        case 'stderr': {
          const text = eventJson<{ data: string }>(event).data;
          if (collect) stderr += text;
          await opts.onStderr?.(text);
          break;
        }
        case 'exit':
          return { ...eventJson<ExecExit>(event), stdout, stderr };
        case 'error':
          throw errorFromApi(undefined, eventJson<{ code: string; message?: string; details?: Record<string, unknown> }>(event));
        default:
          // Unknown events (keep-alives, future additions) are ignored.
          break;
      }
    }
    throw connectionFailed(`the exec event stream from ${transport.baseUrl} ended before its exit event`);
  }
}
