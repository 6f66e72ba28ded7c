/**
 * A small in-memory HTTP server speaking the ScaiBunker API shapes — just enough for the SDK and
 * CLI tests to check request building, streamed uploads, SSE handling and error mapping. It is
 * not the controller: the end-to-end suite runs the real `scaibunker serve`.
 *
 * Exec understands a tiny script language: `;`-separated steps `echo TEXT`, `err TEXT`,
 * `exit N`, `sleep MS`, plus the special commands `boom` (SSE error event), `hangup` (the
 * event stream ends without an exit), `cut` (the connection is cut mid-stream), `split` (events
 * cut at awkward byte boundaries) and `big` (a truncated result with full output stored).
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BunkerInfo, ExecLog, ExecResult, FileStat } from '../../src/index.js';
import { StubFileWatches } from './StubFileWatches.js';
import { StubProcesses } from './StubProcesses.js';
import { HttpFailure, newId } from './stubHttp.js';

const API = '/v1/modules/scaibunker';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The client's port: requests from one kept-alive connection share it. */
  remotePort: number | undefined;
  json?: unknown;
}

export interface UploadRecord {
  path: string;
  bytes: number;
  chunks: number;
  transferEncoding: string | undefined;
  contentLength: string | undefined;
}

interface StubFile {
  data: Buffer;
  mode: string;
  mtime: string;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class StubApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly uploads: UploadRecord[] = [];
  readonly bunkers = new Map<string, BunkerInfo>();
  private readonly files = new Map<string, Map<string, StubFile>>();
  private readonly dirs = new Map<string, Set<string>>();
  private readonly execLogs = new Map<string, ExecLog[]>();
  private readonly outputs = new Map<string, { stdout: Buffer; stderr: Buffer }>();
  private readonly tenants = new Map<string, string>();
  private uploadProgress = 0;
  private readonly uploadWaiters: Array<{ bytes: number; resolve: () => void }> = [];
  /** Background processes, their events and terminals (see StubProcesses). */
  readonly processes: StubProcesses;
  readonly watches = new StubFileWatches();

  private constructor(
    private readonly server: Server,
    readonly url: string,
    readonly apiKey: string,
    readonly uploadCapBytes: number,
  ) {
    this.processes = new StubProcesses(apiKey, this.bunkers);
  }

  static async start(opts: { apiKey?: string; uploadCapBytes?: number } = {}): Promise<StubApiServer> {
    let stub: StubApiServer | undefined;
    const server = createServer((req, res) => {
      stub?.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { code: 'INTERNAL', message: String(err), details: {} } }));
        } else res.destroy();
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    stub = new StubApiServer(server, `http://127.0.0.1:${port}`, opts.apiKey ?? 'sbk_test', opts.uploadCapBytes ?? 1024 * 1024);
    const started = stub;
    server.on('upgrade', (req, socket, head) => {
      started.requests.push({
        method: 'UPGRADE',
        path: new URL(req.url ?? '/', 'http://stub').pathname,
        query: new URL(req.url ?? '/', 'http://stub').searchParams,
        headers: req.headers,
        remotePort: req.socket.remotePort,
      });
      started.processes.upgrade(req, socket, head);
    });
    return stub;
  }

  async close(): Promise<void> {
    this.processes.close();
    this.watches.endAll();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Resolves once the upload in progress has delivered at least `bytes` bytes to the server. */
  waitForUploadBytes(bytes: number): Promise<void> {
    if (this.uploadProgress >= bytes) return Promise.resolve();
    return new Promise((resolve) => this.uploadWaiters.push({ bytes, resolve }));
  }

  /** Puts a running bunker in place without going through the API. */
  addBunker(overrides: Partial<BunkerInfo> = {}): BunkerInfo {
    const now = new Date().toISOString();
    const info: BunkerInfo = {
      id: newId('bk'),
      tenant_id: 'tn_stub',
      image: 'minimal',
      image_sha256: 'ab'.repeat(32),
      lifecycle: 'ephemeral',
      state: 'running',
      termination_reason: null,
      worker_id: 'wk_stub',
      worker_reachable: true,
      isolation: 'container',
      cpu_millicores: 1000,
      memory_mb: 512,
      disk_mb: 1024,
      gpu_count: 0,
      network_profile: 'isolated',
      network_allowlist: null,
      bandwidth_mbit: null,
      interfaces: null,
      idle_timeout_s: 300,
      max_lifetime_s: 3600,
      metadata: {},
      created_at: now,
      started_at: now,
      last_activity_at: now,
      ended_at: null,
      snapshot_id: null,
      passivated: false,
      auto_resume: false,
      recovered_from: null,
      ...overrides,
    };
    this.bunkers.set(info.id, info);
    this.files.set(info.id, new Map());
    this.dirs.set(info.id, new Set(['/', '/tmp']));
    this.execLogs.set(info.id, []);
    return info;
  }

  fileContent(bunkerId: string, path: string): Buffer | undefined {
    return this.files.get(bunkerId)?.get(path)?.data;
  }

  fileMode(bunkerId: string, path: string): string | undefined {
    return this.files.get(bunkerId)?.get(path)?.mode;
  }

  lastRequest(method: string, pathSuffix: string): RecordedRequest | undefined {
    return [...this.requests].reverse().find((r) => r.method === method && r.path.endsWith(pathSuffix));
  }

  // ---- dispatch ----------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://stub');
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      remotePort: req.socket.remotePort,
    };
    this.requests.push(record);
    try {
      if (req.headers.authorization !== `Bearer ${this.apiKey}`) {
        req.resume();
        throw new HttpFailure(401, 'UNAUTHENTICATED', 'missing or unknown credentials');
      }
      const isUpload = (req.method === 'PUT' && /\/files$/.test(url.pathname)) || (req.method === 'POST' && /\/stdin$/.test(url.pathname));
      if (!isUpload && (req.method === 'POST' || req.method === 'PUT')) record.json = await this.readJson(req);
      else if (!isUpload) req.resume();
      await this.route(req, res, url, record);
    } catch (err) {
      if (!(err instanceof HttpFailure)) throw err;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.send(res, err.status, { error: { code: err.code, message: err.message, details: err.details } });
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, record: RecordedRequest): Promise<void> {
    const p = url.pathname;
    const q = url.searchParams;
    if (req.method === 'POST' && p === '/v1/admin/tenants') {
      const { name } = record.json as { name?: string };
      if (!name) throw new HttpFailure(400, 'VALIDATION_FAILED', "body must have required property 'name'");
      const id = newId('tn');
      this.tenants.set(id, name);
      return this.send(res, 201, { id, name });
    }
    const apiKeyRoute = /^\/v1\/admin\/tenants\/([^/]+)\/api-keys$/.exec(p);
    if (req.method === 'POST' && apiKeyRoute) {
      const m = apiKeyRoute;
      if (!this.tenants.has(m[1]!)) throw new HttpFailure(404, 'TENANT_NOT_FOUND', `no tenant ${m[1]}`);
      return this.send(res, 201, { id: newId('ak'), key: `sbk_${randomBytes(8).toString('hex')}` });
    }
    if (req.method === 'GET' && p === `${API}/workers`) return this.send(res, 200, { items: [this.worker('online')] });
    const workerRoute = /^\/v1\/modules\/scaibunker\/workers\/([^/]+)\/(drain|resume)$/.exec(p);
    if (req.method === 'POST' && workerRoute) {
      const m = workerRoute;
      if (m[1] !== 'wk_stub0000000000000000') throw new HttpFailure(404, 'WORKER_NOT_FOUND', `no worker ${m[1]}`);
      return this.send(res, 200, this.worker(m[2] === 'drain' ? 'draining' : 'online'));
    }
    if (req.method === 'GET' && p === `${API}/images`) {
      return this.send(res, 200, {
        items: [
          {
            name: 'minimal',
            sha256: 'ab'.repeat(32),
            state: 'ready',
            scope: 'platform',
            size_bytes: 1234,
            created_at: new Date(0).toISOString(),
          },
        ],
      });
    }
    if (p === `${API}/bunkers`) {
      if (req.method === 'POST') return this.createBunker(res, record.json as Record<string, unknown>);
      if (req.method === 'GET') return this.listBunkers(res, q);
    }
    const m = /^\/v1\/modules\/scaibunker\/bunkers\/([^/]+)(\/.*)?$/.exec(p);
    if (!m) throw new HttpFailure(404, 'NOT_FOUND', `no route ${req.method} ${p}`);
    const id = m[1]!;
    const rest = m[2] ?? '';
    if (id === 'bk_proxyerror0000000000') {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
      return;
    }
    const bunker = this.bunkers.get(id);
    if (!bunker) {
      if ((rest === '/files' && req.method === 'PUT') || rest.endsWith('/stdin')) req.resume();
      throw new HttpFailure(404, 'BUNKER_NOT_FOUND', `no bunker ${id}`);
    }
    if (rest === '') {
      if (req.method === 'GET') return this.send(res, 200, bunker);
      if (req.method === 'DELETE') {
        if (bunker.state !== 'terminated') {
          bunker.state = 'terminated';
          bunker.termination_reason = 'user';
          bunker.ended_at = new Date().toISOString();
        }
        return this.send(res, 200, bunker);
      }
    }
    if ((rest === '/pause' || rest === '/resume') && req.method === 'POST') {
      const [from, to] = rest === '/pause' ? (['running', 'paused'] as const) : (['paused', 'running'] as const);
      if (bunker.state !== from) {
        throw new HttpFailure(409, 'BUNKER_INVALID_TRANSITION', `bunker ${bunker.id} cannot go from ${bunker.state} to ${to}`, {
          from: bunker.state,
          to,
        });
      }
      bunker.state = to;
      return this.send(res, 200, bunker);
    }
    if (rest === '/exec-logs' && req.method === 'GET') {
      const logs = this.execLogs.get(id) ?? [];
      const limit = Number(q.get('limit') ?? 50);
      const start = Number(q.get('cursor') ?? 0);
      const items = logs.slice(start, start + limit);
      return this.send(res, 200, { items, next_cursor: start + limit < logs.length ? String(start + limit) : null });
    }
    const outputRoute = /^\/exec-logs\/([^/]+)\/output$/.exec(rest);
    if (outputRoute && req.method === 'GET') {
      const out = this.outputs.get(outputRoute[1]!);
      if (!out) throw new HttpFailure(404, 'OUTPUT_NOT_FOUND', `no stored output for ${outputRoute[1]}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(q.get('stream') === 'stderr' ? out.stderr : out.stdout);
      return;
    }
    if (rest === '/exec' && req.method === 'POST') return this.exec(res, bunker, record.json as Record<string, unknown>);
    if (rest.startsWith('/files')) return this.fileRoute(req, res, bunker, rest, q, record);
    if (await this.processes.route(req, res, bunker, rest, q, record.json)) return;
    throw new HttpFailure(404, 'NOT_FOUND', `no route ${req.method} ${p}`);
  }

  // ---- bunkers -----------------------------------------------------------------------------

  private createBunker(res: ServerResponse, body: Record<string, unknown>): void {
    if (typeof body.image !== 'string')
      throw new HttpFailure(400, 'VALIDATION_FAILED', "body must have required property 'image'", { field: 'body' });
    if (body.image === 'missing') throw new HttpFailure(404, 'IMAGE_NOT_FOUND', 'no image missing');
    if ((body.memory_mb as number) > 100000)
      throw new HttpFailure(429, 'QUOTA_EXCEEDED', 'memory quota exceeded', {
        bucket: { kind: 'user', id: 'stub', user_id: 'stub', group: null },
        resource: 'memory_mb',
        current: 0,
        cap: 100000,
        requested: body.memory_mb,
        profile_id: null,
      });
    const info = this.addBunker({
      image: body.image,
      ...(body.lifecycle ? { lifecycle: body.lifecycle as BunkerInfo['lifecycle'] } : {}),
      ...(body.isolation ? { isolation: body.isolation as BunkerInfo['isolation'] } : {}),
      ...(body.cpu_millicores ? { cpu_millicores: body.cpu_millicores as number } : {}),
      ...(body.memory_mb ? { memory_mb: body.memory_mb as number } : {}),
      ...(body.disk_mb ? { disk_mb: body.disk_mb as number } : {}),
      ...(body.gpu_count ? { gpu_count: body.gpu_count as number } : {}),
      ...(body.network_profile ? { network_profile: body.network_profile as string } : {}),
      ...(body.network_allowlist ? { network_allowlist: body.network_allowlist as string[] } : {}),
      ...(body.bandwidth_mbit ? { bandwidth_mbit: body.bandwidth_mbit as number } : {}),
      ...(body.metadata ? { metadata: body.metadata as Record<string, string> } : {}),
    });
    this.send(res, 201, info);
  }

  private listBunkers(res: ServerResponse, q: URLSearchParams): void {
    const labels = q.getAll('label').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const);
    const state = q.get('state');
    const all = [...this.bunkers.values()]
      .reverse()
      .filter((b) => (!state || b.state === state) && labels.every(([k, v]) => b.metadata[k] === v));
    const limit = Number(q.get('limit') ?? 50);
    const start = Number(q.get('cursor') ?? 0);
    this.send(res, 200, { items: all.slice(start, start + limit), next_cursor: start + limit < all.length ? String(start + limit) : null });
  }

  private worker(state: 'online' | 'draining') {
    return {
      id: 'wk_stub0000000000000000',
      name: 'stub',
      state,
      isolations: ['container'],
      network_profiles: ['isolated'],
      capacity: { cpu_millicores: 2000, memory_mb: 4096, disk_mb: 10000 },
      allocated: { cpu_millicores: 0, memory_mb: 0, disk_mb: 0 },
      bunker_count: this.bunkers.size,
      last_heartbeat_at: new Date().toISOString(),
    };
  }

  // ---- exec --------------------------------------------------------------------------------

  private async exec(res: ServerResponse, bunker: BunkerInfo, body: Record<string, unknown>): Promise<void> {
    if (body.command === undefined) throw new HttpFailure(400, 'VALIDATION_FAILED', "body must have required property 'command'");
    if (bunker.state !== 'running') throw new HttpFailure(409, 'BUNKER_NOT_RUNNING', `bunker ${bunker.id} is ${bunker.state}`);
    if (body.background === true) return this.processes.startBackground(res, bunker, body);
    if (body.tag !== undefined || body.pty !== undefined || body.stdin === true)
      throw new HttpFailure(400, 'VALIDATION_FAILED', '`tag`, `pty` and `stdin: true` need `background: true`');
    const command = Array.isArray(body.command) ? (body.command as string[]).join(' ') : String(body.command);
    const execId = newId('ex');
    const started = Date.now();
    const steps = command.split(';').map((s) => s.trim());
    const chunks: Array<{ stream: 'stdout' | 'stderr'; text: string }> = [];
    let exitCode = 0;
    const env = (body.env ?? {}) as Record<string, string>;
    for (const step of steps) {
      const [verb, ...args] = step.split(' ');
      const text = args.join(' ').replace(/\$([A-Z_]+)/g, (_m, k: string) => env[k] ?? '');
      if (verb === 'echo') chunks.push({ stream: 'stdout', text: `${text}\n` });
      else if (verb === 'err') chunks.push({ stream: 'stderr', text: `${text}\n` });
      else if (verb === 'exit') exitCode = Number(args[0] ?? 0);
      else if (verb === 'pwd') chunks.push({ stream: 'stdout', text: `${String(body.cwd ?? '/')}\n` });
      else if (verb === 'cat' && typeof body.stdin === 'string') chunks.push({ stream: 'stdout', text: body.stdin });
      else if (verb === 'big') chunks.push({ stream: 'stdout', text: 'x'.repeat(3000) });
    }
    const stdout = chunks
      .filter((c) => c.stream === 'stdout')
      .map((c) => c.text)
      .join('');
    const stderr = chunks
      .filter((c) => c.stream === 'stderr')
      .map((c) => c.text)
      .join('');
    const truncated = steps.includes('big');
    const result: ExecResult = {
      exec_id: execId,
      exit_code: exitCode,
      signal: null,
      stdout: truncated ? stdout.slice(0, 1000) : stdout,
      stderr,
      duration_ms: Date.now() - started,
      timed_out: false,
      truncated,
      full_output_ref: truncated ? `/bunkers/${bunker.id}/exec-logs/${execId}/output` : null,
      output_store: truncated ? 'complete' : 'inline',
      output_stored_bytes: truncated ? stdout.length + stderr.length : 0,
    };
    this.outputs.set(execId, { stdout: Buffer.from(stdout), stderr: Buffer.from(stderr) });
    this.execLogs.get(bunker.id)?.unshift({
      id: execId,
      bunker_id: bunker.id,
      caller: 'key:stub',
      command,
      exit_code: exitCode,
      signal: null,
      timed_out: false,
      duration_ms: result.duration_ms,
      stdout_preview: stdout.slice(0, 200),
      stderr_preview: stderr.slice(0, 200),
      truncated,
      full_output_ref: result.full_output_ref,
      started_at: new Date(started).toISOString(),
      finished_at: new Date().toISOString(),
      output_store: result.output_store,
      output_stored_bytes: result.output_stored_bytes,
    });
    if (!body.stream) return this.send(res, 200, result);

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    const write = (s: string | Buffer) => new Promise<void>((r) => res.write(s, () => r()));
    const { stdout: _o, stderr: _e, ...exit } = result;
    if (steps.includes('boom')) {
      await write(
        `event: error\ndata: ${JSON.stringify({ code: 'WORKER_UNAVAILABLE', message: 'the worker went away', details: { worker_id: 'wk_x' } })}\n\n`,
      );
      res.end();
      return;
    }
    if (steps.includes('split')) {
      // Event text cut mid-field, mid-CRLF and inside a multi-byte UTF-8 character, with comments.
      const text = Buffer.from(
        `: keep-alive\r\nevent: stdout\r\ndata: ${JSON.stringify({ data: 'héllo ✓\n' })}\r\n\r\nevent: stderr\ndata: ${JSON.stringify({ data: 'wärn\n' })}\n\nevent: exit\ndata: ${JSON.stringify(exit)}\n\n`,
      );
      const betweenCrLf = text.indexOf('\r\n', 14) + 1;
      const insideE = text.indexOf(Buffer.from('é')) + 1;
      const insideCheck = text.indexOf(Buffer.from('✓')) + 2;
      const insideA = text.indexOf(Buffer.from('ä')) + 1;
      const cuts = [3, betweenCrLf, insideE, insideCheck, insideA, insideA + 9, text.length - 1, text.length];
      let from = 0;
      for (const cut of cuts) {
        await write(text.subarray(from, cut));
        from = cut;
        await sleep(5);
      }
      res.end();
      return;
    }
    await write(`event: start\ndata: ${JSON.stringify({ exec_id: execId })}\n\n`);
    for (const c of chunks) {
      await write(`event: ${c.stream}\ndata: ${JSON.stringify({ data: c.text })}\n\n`);
      await sleep(2);
    }
    if (steps.includes('hangup')) {
      res.end();
      return;
    }
    if (steps.includes('cut')) {
      res.destroy();
      return;
    }
    await write(`event: exit\ndata: ${JSON.stringify(exit)}\n\n`);
    res.end();
  }

  // ---- files -------------------------------------------------------------------------------

  private async fileRoute(
    req: IncomingMessage,
    res: ServerResponse,
    bunker: BunkerInfo,
    rest: string,
    q: URLSearchParams,
    record: RecordedRequest,
  ): Promise<void> {
    const files = this.files.get(bunker.id)!;
    const dirs = this.dirs.get(bunker.id)!;
    const path = rest === '/files/mkdir' ? String((record.json as { path?: unknown }).path ?? '') : (q.get('path') ?? '');
    if (!path.startsWith('/')) {
      if (req.method === 'PUT') req.resume();
      throw new HttpFailure(400, 'VALIDATION_FAILED', 'querystring/path must be an absolute path', { field: 'querystring/path' });
    }
    if (bunker.state !== 'running') {
      if (req.method === 'PUT') req.resume();
      throw new HttpFailure(409, 'BUNKER_NOT_RUNNING', `bunker ${bunker.id} is ${bunker.state}`);
    }
    if (rest === '/files/watch' && req.method === 'GET') {
      if (files.has(path)) throw new HttpFailure(409, 'FILE_CONFLICT', `${path} is not a directory`);
      if (!dirs.has(path)) throw new HttpFailure(404, 'FILE_NOT_FOUND', `no directory ${path}`);
      return this.watches.open(res, bunker.id, path, q.get('recursive') === 'true');
    }
    if (rest === '/files' && req.method === 'PUT') {
      if (!dirs.has(parentOf(path))) {
        if (q.get('parents') !== 'true') {
          req.resume();
          throw new HttpFailure(404, 'FILE_NOT_FOUND', `no directory ${parentOf(path)}`);
        }
        for (let d = parentOf(path); d !== '/'; d = parentOf(d)) dirs.add(d);
      }
      const existed = files.has(path);
      await this.receiveUpload(req, res, files, path, q.get('mode') ?? '0644');
      if (files.has(path)) this.watches.changed(bunker.id, { type: existed ? 'write' : 'create', path, is_dir: false });
      return;
    }
    if (rest === '/files' && req.method === 'GET') {
      const f = files.get(path);
      if (!f) throw new HttpFailure(404, 'FILE_NOT_FOUND', `no file ${path}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Several writes, so clients see a chunked body.
      for (let i = 0; i < f.data.length; i += 64 * 1024) res.write(f.data.subarray(i, i + 64 * 1024));
      res.end();
      return;
    }
    if (rest === '/files' && req.method === 'DELETE') {
      if (files.delete(path)) {
        this.watches.changed(bunker.id, { type: 'remove', path, is_dir: false });
        return this.send(res, 200, {});
      }
      if (!dirs.has(path)) throw new HttpFailure(404, 'FILE_NOT_FOUND', `no file ${path}`);
      const inside = [...files.keys(), ...dirs].filter((x) => x.startsWith(`${path}/`));
      if (inside.length && q.get('recursive') !== 'true') throw new HttpFailure(409, 'FILE_CONFLICT', `directory ${path} is not empty`);
      for (const x of inside) {
        files.delete(x);
        dirs.delete(x);
      }
      dirs.delete(path);
      return this.send(res, 200, {});
    }
    if (rest === '/files/stat' && req.method === 'GET') {
      const st = this.statOf(files, dirs, path);
      if (!st) throw new HttpFailure(404, 'FILE_NOT_FOUND', `no file ${path}`);
      return this.send(res, 200, st);
    }
    if (rest === '/files/list' && req.method === 'GET') {
      if (!dirs.has(path)) throw new HttpFailure(404, 'FILE_NOT_FOUND', `no directory ${path}`);
      const children = [...new Set([...files.keys(), ...dirs])].filter((x) => x !== path && parentOf(x) === path).sort();
      return this.send(res, 200, { items: children.map((c) => this.statOf(files, dirs, c)) });
    }
    if (rest === '/files/mkdir' && req.method === 'POST') {
      const parents = (record.json as { parents?: boolean }).parents === true;
      if (dirs.has(path) || files.has(path)) throw new HttpFailure(409, 'FILE_CONFLICT', `${path} exists`);
      if (!dirs.has(parentOf(path)) && !parents) throw new HttpFailure(404, 'FILE_NOT_FOUND', `no directory ${parentOf(path)}`);
      for (let d = path; d !== '/'; d = parentOf(d)) dirs.add(d);
      this.watches.changed(bunker.id, { type: 'create', path, is_dir: true });
      return this.send(res, 201, {});
    }
    throw new HttpFailure(404, 'NOT_FOUND', `no route ${req.method} ${rest}`);
  }

  private async receiveUpload(
    req: IncomingMessage,
    res: ServerResponse,
    files: Map<string, StubFile>,
    path: string,
    mode: string,
  ): Promise<void> {
    const record: UploadRecord = {
      path,
      bytes: 0,
      chunks: 0,
      transferEncoding: req.headers['transfer-encoding'],
      contentLength: req.headers['content-length'],
    };
    this.uploads.push(record);
    this.uploadProgress = 0;
    const parts: Buffer[] = [];
    // 'data' events, not `for await`: leaving a for-await loop early destroys the request, and
    // with it the socket, before the client has read the early answer below.
    const overCap = await new Promise<boolean>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        record.bytes += chunk.length;
        record.chunks++;
        this.uploadProgress = record.bytes;
        for (const w of this.uploadWaiters.splice(0)) {
          if (w.bytes <= record.bytes) w.resolve();
          else this.uploadWaiters.push(w);
        }
        if (record.bytes > this.uploadCapBytes) {
          req.off('data', onData);
          resolve(true);
          return;
        }
        parts.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => resolve(false));
      req.once('error', reject);
    });
    if (overCap) {
      this.answerEarly(req, res, 413, {
        error: { code: 'PAYLOAD_TOO_LARGE', message: `upload exceeds ${this.uploadCapBytes} bytes`, details: {} },
      });
      return;
    }
    files.set(path, { data: Buffer.concat(parts), mode, mtime: new Date().toISOString() });
    this.send(res, 200, { path, bytes: record.bytes });
  }

  private statOf(files: Map<string, StubFile>, dirs: Set<string>, path: string): FileStat | undefined {
    const name = path === '/' ? '/' : path.slice(path.lastIndexOf('/') + 1);
    const f = files.get(path);
    if (f) return { path, name, type: 'file', size: f.data.length, mode: f.mode, mtime: f.mtime };
    if (dirs.has(path)) return { path, name, type: 'dir', size: 4096, mode: '0755', mtime: new Date(0).toISOString() };
    return undefined;
  }

  // ---- plumbing ----------------------------------------------------------------------------

  private async readJson(req: IncomingMessage): Promise<unknown> {
    const parts: Buffer[] = [];
    for await (const chunk of req as AsyncIterable<Buffer>) parts.push(chunk);
    const text = Buffer.concat(parts).toString('utf8');
    if (!text) return {};
    if (!(req.headers['content-type'] ?? '').includes('application/json')) {
      throw new HttpFailure(400, 'VALIDATION_FAILED', `unsupported content type: ${req.headers['content-type']}`);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpFailure(400, 'VALIDATION_FAILED', 'malformed JSON body');
    }
  }

  /**
   * Answers before the request body is all read (an upload over the cap). The whole answer is
   * written at once, but the response is only ended — which closes a `connection: close`
   * socket — once the client stopped sending (or 8 MiB more were dropped): closing while the
   * client still writes can fail its write (EPIPE) before it has read the answer.
   */
  private answerEarly(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.write(text);
    let dropped = 0;
    const finish = () => {
      req.off('data', onData);
      if (!res.writableEnded) res.end();
    };
    const onData = (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > 8 * 1024 * 1024) finish();
    };
    req.on('data', onData);
    req.once('end', finish);
    req.once('close', finish);
  }

  private send(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}
