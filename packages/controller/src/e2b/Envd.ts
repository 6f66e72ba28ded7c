import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { ApiError, type BunkerState, type FileStatInfo, schemas, TERMINAL_STATES, type WatchEvent } from '@scaibunker/core';
import { Value } from '@sinclair/typebox/value';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { ExecService } from '../bunkers/ExecService.js';
import type { FileService } from '../bunkers/FileService.js';
import type { ProcessService } from '../bunkers/ProcessService.js';
import {
  type CallKind,
  ConnectError,
  checkContentType,
  EnvelopeReader,
  readUnaryBody,
  ServerStream,
  timeoutMsOf,
  unaryErrorBody,
} from './connect.js';
import { absolute, entryInfo, homeOf, WATCH_TYPES } from './mapping.js';
import { boundaryOf, readMultipart } from './multipart.js';

/** One envd call: the caller (from the access token), the sandbox it is for, and the envd user. */
export interface EnvdCall {
  principal: Principal;
  bunkerId: string;
  /** `Authorization: Basic base64(user:)` (the SDK's `user` option); root when none. */
  user: string;
  req: IncomingMessage;
  res: ServerResponse;
}

/**
 * `/bin/bash` as the SDK always asks for (`bash -l -c CMD`, a PTY's `bash -i -l`): bash where the
 * image has it, else sh with the same arguments (busybox images have no bash).
 */
const BASH_SHIM = 'if [ -x /bin/bash ]; then exec /bin/bash "$@"; fi; exec /bin/sh "$@"';

type Json = Record<string, unknown>;
type Handler = (call: EnvdCall, msg: Json) => Promise<unknown>;
type StreamHandler = (call: EnvdCall, msg: Json, out: ServerStream) => Promise<void>;

interface Watcher {
  tenantId: string;
  bunkerId: string;
  events: Json[];
  abort: AbortController;
  polled: number;
  error?: unknown;
}

const WATCHER_EVENTS_MAX = 10_000;
const WATCHER_IDLE_MS = 5 * 60_000;
const KEEPALIVE_MS = 50_000;

/**
 * envd on the API's port: its HTTP routes (/health, /files, /envs) and its Connect services
 * (`process.Process`, `filesystem.Filesystem`), each mapped onto ProcessService, FileService and
 * ExecService — the same tenancy, permissions, exec log and audit as the native API.
 */
export class Envd {
  /** `bunker:pid` → exec id of processes seen running (a steer that finds it ended looks it up again). */
  private readonly pids = new Map<string, string>();
  private readonly watchers = new Map<string, Watcher>();
  private readonly unary: Record<string, Handler>;
  private readonly streams: Record<string, StreamHandler>;
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(
    private readonly bunkers: BunkerService,
    private readonly processes: ProcessService,
    private readonly files: FileService,
    private readonly exec: ExecService,
  ) {
    this.unary = {
      'filesystem.Filesystem/Stat': (c, m) => this.stat(c, m),
      'filesystem.Filesystem/MakeDir': (c, m) => this.makeDir(c, m),
      'filesystem.Filesystem/Move': (c, m) => this.move(c, m),
      'filesystem.Filesystem/ListDir': (c, m) => this.listDir(c, m),
      'filesystem.Filesystem/Remove': (c, m) => this.remove(c, m),
      'filesystem.Filesystem/CreateWatcher': (c, m) => this.createWatcher(c, m),
      'filesystem.Filesystem/GetWatcherEvents': (c, m) => this.getWatcherEvents(c, m),
      'filesystem.Filesystem/RemoveWatcher': (c, m) => this.removeWatcher(c, m),
      'process.Process/List': (c) => this.list(c),
      'process.Process/SendInput': (c, m) => this.sendInput(c, m),
      'process.Process/SendSignal': (c, m) => this.sendSignal(c, m),
      'process.Process/Update': (c, m) => this.update(c, m),
      'process.Process/CloseStdin': (c, m) => this.closeStdin(c, m),
    };
    this.streams = {
      'filesystem.Filesystem/WatchDir': (c, m, o) => this.watchDir(c, m, o),
      'process.Process/Start': (c, m, o) => this.start(c, m, o),
      'process.Process/Connect': (c, m, o) => this.connect(c, m, o),
    };
    this.sweepTimer = setInterval(() => this.sweepWatchers(), 60_000);
    this.sweepTimer.unref();
  }

  /** Every Connect method this envd serves, by kind (the routes are made from this). */
  static readonly METHODS: Record<string, CallKind> = {
    'filesystem.Filesystem/Stat': 'unary',
    'filesystem.Filesystem/MakeDir': 'unary',
    'filesystem.Filesystem/Move': 'unary',
    'filesystem.Filesystem/ListDir': 'unary',
    'filesystem.Filesystem/Remove': 'unary',
    'filesystem.Filesystem/WatchDir': 'server_stream',
    'filesystem.Filesystem/CreateWatcher': 'unary',
    'filesystem.Filesystem/GetWatcherEvents': 'unary',
    'filesystem.Filesystem/RemoveWatcher': 'unary',
    'process.Process/List': 'unary',
    'process.Process/Start': 'server_stream',
    'process.Process/Connect': 'server_stream',
    'process.Process/SendInput': 'unary',
    'process.Process/StreamInput': 'client_stream',
    'process.Process/SendSignal': 'unary',
    'process.Process/Update': 'unary',
    'process.Process/CloseStdin': 'unary',
  };

  close(): void {
    clearInterval(this.sweepTimer);
    for (const w of this.watchers.values()) w.abort.abort();
    this.watchers.clear();
  }

  /** Serves one Connect call (the reply is already taken over); never throws. */
  async rpc(call: EnvdCall, method: string): Promise<void> {
    const kind = Envd.METHODS[method];
    const streaming = kind !== undefined && kind !== 'unary';
    let out: ServerStream | undefined;
    try {
      if (!kind) throw new ConnectError('unimplemented', `${method} is not served`);
      checkContentType(call.req, kind);
      if (kind === 'unary') {
        const msg = asObject(await readUnaryBody(call.req));
        const handler = this.unary[method] as Handler;
        const result = await handler(call, msg);
        writeJson(call.res, 200, result ?? {});
        return;
      }
      const reader = new EnvelopeReader(call.req);
      if (kind === 'client_stream') {
        await this.streamInput(call, reader);
        out = new ServerStream(call.res);
        await out.send({});
        out.end();
        return;
      }
      const msg = asObject((await reader.next()) ?? {});
      out = new ServerStream(call.res);
      await (this.streams[method] as StreamHandler)(call, msg, out);
      out.end();
    } catch (err) {
      if (!(err instanceof ConnectError) && !(err instanceof ApiError)) console.error(`[e2b] ${method}: ${(err as Error)?.stack ?? err}`);
      if (streaming || out) {
        out ??= new ServerStream(call.res);
        out.end(err);
      } else if (!call.res.headersSent) {
        const e = unaryErrorBody(err);
        writeJson(call.res, e.status, e.body);
      } else call.res.destroy();
    }
  }

  // ---- HTTP routes ----

  /** 204 while the sandbox runs, 502 once it does not (the SDK's isRunning reads that). */
  async health(call: EnvdCall): Promise<void> {
    const row = await this.bunkers.get(call.principal, call.bunkerId);
    call.res.writeHead(row.state === 'running' ? 204 : 502).end();
  }

  async envs(call: EnvdCall): Promise<void> {
    const row = await this.bunkers.get(call.principal, call.bunkerId);
    writeJson(call.res, 200, JSON.parse(row.env));
  }

  async readFile(call: EnvdCall, path: string | undefined): Promise<void> {
    const abs = absolute(path, call.user);
    const stat = await this.files.stat(call.principal, call.bunkerId, abs);
    if (stat.type === 'dir') throw new ApiError('FILE_CONFLICT', `path '${abs}' is a directory`);
    const body = await this.files.read(call.principal, call.bunkerId, abs);
    call.res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(stat.size),
      'content-disposition': `attachment; filename=${JSON.stringify(posix.basename(abs))}`,
    });
    body.on('error', () => call.res.destroy());
    body.pipe(call.res);
  }

  /** Multipart (each part's filename is its path, else `path=`) or a raw octet-stream body to `path=`. */
  async writeFiles(call: EnvdCall, path: string | undefined): Promise<void> {
    const ct = call.req.headers['content-type'] ?? '';
    const written: Json[] = [];
    const put = async (target: string | undefined, data: Readable) => {
      if (!target) throw new ApiError('VALIDATION_FAILED', 'no path: give path= or a filename per part', { field: 'querystring/path' });
      const abs = absolute(target, call.user);
      await this.files.write(call.principal, call.bunkerId, abs, data, { parents: true });
      written.push({ name: posix.basename(abs), type: 'file', path: abs });
    };
    const boundary = boundaryOf(ct);
    if (boundary) {
      await readMultipart(call.req, boundary, (part) => put(path ?? part.filename, part.data));
    } else if (/^application\/octet-stream/i.test(ct)) {
      if (call.req.headers['content-encoding'] && call.req.headers['content-encoding'] !== 'identity') {
        throw new ApiError('VALIDATION_FAILED', 'compressed uploads (gzip) are not supported', { field: 'header/content-encoding' });
      }
      await put(path, call.req);
    } else {
      throw new ApiError('VALIDATION_FAILED', 'upload as multipart/form-data or application/octet-stream', {
        field: 'header/content-type',
      });
    }
    writeJson(call.res, 200, written);
  }

  // ---- filesystem.Filesystem ----

  private async stat(c: EnvdCall, m: Json) {
    return { entry: entryInfo(await this.rawStat(c, absolute(str(m.path), c.user))) };
  }

  private async rawStat(c: EnvdCall, abs: string): Promise<FileStatInfo> {
    const s = await this.files.stat(c.principal, c.bunkerId, abs);
    return {
      path: s.path,
      name: s.name,
      type: s.type,
      size: s.size,
      mode: Number.parseInt(s.mode, 8),
      mtime_ms: Date.parse(s.mtime),
      ...(s.link_target !== undefined ? { link_target: s.link_target } : {}),
    };
  }

  private async exists(c: EnvdCall, abs: string): Promise<boolean> {
    try {
      await this.files.stat(c.principal, c.bunkerId, abs);
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.code === 'FILE_NOT_FOUND') return false;
      throw err;
    }
  }

  private async makeDir(c: EnvdCall, m: Json) {
    const abs = absolute(str(m.path), c.user);
    if (await this.exists(c, abs)) throw new ConnectError('already_exists', `path '${abs}' already exists`);
    await this.files.mkdir(c.principal, c.bunkerId, abs, true);
    return { entry: entryInfo(await this.rawStat(c, abs)) };
  }

  /** There is no rename verb: `mv` runs in the bunker as an exec (on the exec log and audit trail like any). */
  private async move(c: EnvdCall, m: Json) {
    const src = absolute(str(m.source), c.user);
    const dst = absolute(str(m.destination), c.user);
    await this.rawStat(c, src);
    const parent = posix.dirname(dst);
    if (!(await this.exists(c, parent))) await this.files.mkdir(c.principal, c.bunkerId, parent, true);
    const r = await this.exec.exec(c.principal, c.bunkerId, { command: ['mv', '-f', '--', src, dst], timeout_s: 60 });
    if (r.exit_code !== 0)
      throw new ConnectError('invalid_argument', `cannot move ${src} to ${dst}: ${r.stderr.trim() || `exit ${r.exit_code}`}`);
    return { entry: entryInfo(await this.rawStat(c, dst)) };
  }

  private async listDir(c: EnvdCall, m: Json) {
    const depth = Math.max(1, num(m.depth) ?? 1);
    const root = absolute(str(m.path), c.user);
    const top = await this.rawStat(c, root);
    if (top.type !== 'dir') throw new ConnectError('invalid_argument', `path '${root}' is not a directory`);
    const entries: Json[] = [];
    const walk = async (dir: string, level: number): Promise<void> => {
      for (const s of await this.files.list(c.principal, c.bunkerId, dir)) {
        const info: FileStatInfo = {
          path: s.path,
          name: s.name,
          type: s.type,
          size: s.size,
          mode: Number.parseInt(s.mode, 8),
          mtime_ms: Date.parse(s.mtime),
          ...(s.link_target !== undefined ? { link_target: s.link_target } : {}),
        };
        if (s.type === 'other') continue;
        entries.push(entryInfo(info));
        if (s.type === 'dir' && level < depth) await walk(s.path, level + 1);
      }
    };
    await walk(root, 1);
    return { entries };
  }

  private async remove(c: EnvdCall, m: Json) {
    await this.files.remove(c.principal, c.bunkerId, absolute(str(m.path), c.user), true);
    return {};
  }

  private async watchDir(c: EnvdCall, m: Json, out: ServerStream): Promise<void> {
    const abs = absolute(str(m.path), c.user);
    const st = await this.rawStat(c, abs);
    if (st.type !== 'dir') throw new ConnectError('invalid_argument', `path '${abs}' is not a directory`);
    const abort = new AbortController();
    c.res.on('close', () => abort.abort());
    await out.send({ start: {} });
    const keepalive = setInterval(() => void out.send({ keepalive: {} }), KEEPALIVE_MS);
    try {
      await this.files.watch(
        c.principal,
        c.bunkerId,
        abs,
        m.recursive === true,
        async (e) => {
          const ev = watchEvent(abs, e);
          if (ev) await out.send({ filesystem: ev });
        },
        abort.signal,
      );
    } finally {
      clearInterval(keepalive);
    }
  }

  private async createWatcher(c: EnvdCall, m: Json) {
    const abs = absolute(str(m.path), c.user);
    const st = await this.rawStat(c, abs);
    if (st.type !== 'dir') throw new ConnectError('invalid_argument', `path '${abs}' is not a directory`);
    const id = randomUUID();
    const w: Watcher = {
      tenantId: c.principal.tenantId,
      bunkerId: c.bunkerId,
      events: [],
      abort: new AbortController(),
      polled: Date.now(),
    };
    this.watchers.set(id, w);
    this.files
      .watch(
        c.principal,
        c.bunkerId,
        abs,
        m.recursive === true,
        (e) => {
          const ev = watchEvent(abs, e);
          if (ev && w.events.length < WATCHER_EVENTS_MAX) w.events.push(ev);
        },
        w.abort.signal,
      )
      .catch((err) => {
        w.error = err;
      });
    return { watcherId: id };
  }

  private watcher(c: EnvdCall, m: Json): [string, Watcher] {
    const id = str(m.watcherId ?? m.watcher_id);
    const w = this.watchers.get(id);
    if (!w || w.tenantId !== c.principal.tenantId || w.bunkerId !== c.bunkerId)
      throw new ConnectError('not_found', `watcher ${id} not found`);
    return [id, w];
  }

  private async getWatcherEvents(c: EnvdCall, m: Json) {
    const [id, w] = this.watcher(c, m);
    w.polled = Date.now();
    const events = w.events.splice(0);
    if (events.length === 0 && w.error) {
      this.watchers.delete(id);
      throw w.error;
    }
    return { events };
  }

  private async removeWatcher(c: EnvdCall, m: Json) {
    const [id, w] = this.watcher(c, m);
    w.abort.abort();
    this.watchers.delete(id);
    return {};
  }

  private sweepWatchers(): void {
    const now = Date.now();
    for (const [id, w] of this.watchers) {
      if (now - w.polled > WATCHER_IDLE_MS) {
        w.abort.abort();
        this.watchers.delete(id);
      }
    }
  }

  // ---- process.Process ----

  private async start(c: EnvdCall, m: Json, out: ServerStream): Promise<void> {
    const p = asObject(m.process);
    const cmd = str(p.cmd);
    if (!cmd) throw new ConnectError('invalid_argument', 'process.cmd is required');
    const args = Array.isArray(p.args) ? p.args.map(String) : [];
    const argv = cmd === '/bin/bash' ? ['/bin/sh', '-c', BASH_SHIM, 'bash', ...args] : [cmd, ...args];
    const pty = m.pty ? asObject(asObject(m.pty).size) : undefined;
    const timeoutMs = timeoutMsOf(c.req);
    const body: schemas.ExecBody = {
      command: argv,
      background: true,
      cwd: p.cwd ? absolute(str(p.cwd), c.user) : homeOf(c.user),
      ...(p.envs && Object.keys(asObject(p.envs)).length > 0 ? { env: asObject(p.envs) as Record<string, string> } : {}),
      ...(c.user !== 'root' ? { user: c.user } : {}),
      // envd kills a started process at the call's deadline, never when the client goes away.
      ...(timeoutMs > 0 ? { timeout_s: Math.min(86400, timeoutMs / 1000) } : {}),
      ...(typeof m.tag === 'string' && m.tag ? { tag: m.tag } : {}),
      ...(m.stdin === true || pty ? { stdin: true } : {}),
      ...(pty ? { pty: { cols: num(pty.cols) ?? 80, rows: num(pty.rows) ?? 24 } } : {}),
    };
    if (!Value.Check(schemas.ExecBody, body)) {
      const e = [...Value.Errors(schemas.ExecBody, body)][0];
      throw new ConnectError('invalid_argument', `${e?.path ?? ''} ${e?.message ?? 'is invalid'}`);
    }
    const proc = await this.processes.startFromBody(c.principal, c.bunkerId, body);
    if (proc.pid !== null) this.pids.set(`${c.bunkerId}:${proc.pid}`, proc.exec_id);
    await out.send({ event: { start: { pid: proc.pid ?? 0 } } });
    await this.follow(c, proc.exec_id, 1, pty !== undefined, out);
  }

  private async connect(c: EnvdCall, m: Json, out: ServerStream): Promise<void> {
    const execId = await this.select(c, asObject(m.process));
    const proc = await this.processes.get(c.principal, c.bunkerId, execId);
    if (proc.finished_at !== null) throw new ConnectError('not_found', `process ${proc.pid} has ended`);
    await out.send({ event: { start: { pid: proc.pid ?? 0 } } });
    // Like envd: output from now on (what was printed before connecting is not replayed).
    await this.follow(c, execId, proc.next_seq ?? 1, proc.pty, out);
  }

  /** Output events until the process ends (then its end event) or the client goes away (it runs on). */
  private async follow(c: EnvdCall, execId: string, from: number, pty: boolean, out: ServerStream): Promise<void> {
    const abort = new AbortController();
    c.res.on('close', () => abort.abort());
    const keepalive = setInterval(() => void out.send({ event: { keepalive: {} } }), KEEPALIVE_MS);
    try {
      const ended = await this.processes.events(
        c.principal,
        c.bunkerId,
        execId,
        from,
        (o) => out.send({ event: { data: { [pty ? 'pty' : o.stream]: o.data.toString('base64') } } }),
        abort.signal,
      );
      if (abort.signal.aborted || ended.finished_at === null) return;
      await out.send({ event: { end: endEvent(ended) } });
    } finally {
      clearInterval(keepalive);
    }
  }

  private async list(c: EnvdCall) {
    const page = await this.processes.list(c.principal, c.bunkerId, { state: 'running', limit: 200 });
    return {
      processes: page.items
        .filter((p) => p.background && p.pid !== null)
        .map((p) => {
          this.pids.set(`${c.bunkerId}:${p.pid}`, p.exec_id);
          return { config: configOf(p.command), pid: p.pid, ...(p.tag ? { tag: p.tag } : {}) };
        }),
    };
  }

  /** A ProcessSelector (`{pid}` or `{tag}`) → the running exec's id; not_found otherwise. */
  private async select(c: EnvdCall, sel: Json, fresh = false): Promise<string> {
    if (typeof sel.tag === 'string') {
      const page = await this.processes.list(c.principal, c.bunkerId, { state: 'running', tag: sel.tag, limit: 1 });
      const p = page.items[0];
      if (!p) throw new ConnectError('not_found', `process with tag ${sel.tag} not found`);
      return p.exec_id;
    }
    const pid = num(sel.pid);
    if (pid === undefined) throw new ConnectError('invalid_argument', 'process selector needs pid or tag');
    const key = `${c.bunkerId}:${pid}`;
    const known = fresh ? undefined : this.pids.get(key);
    if (known) return known;
    await this.bunkers.get(c.principal, c.bunkerId);
    const page = await this.processes.list(c.principal, c.bunkerId, { state: 'running', limit: 200 });
    const p = page.items.find((x) => x.pid === pid);
    if (!p) {
      this.pids.delete(key);
      throw new ConnectError('not_found', `process with pid ${pid} not found`);
    }
    this.pids.set(key, p.exec_id);
    return p.exec_id;
  }

  /** A steer on a pid: a cached id whose exec has ended is looked up once more (the pid may be another's now). */
  private async steer(c: EnvdCall, sel: Json, fn: (execId: string) => Promise<unknown>): Promise<void> {
    try {
      await fn(await this.select(c, sel));
    } catch (err) {
      if (!(err instanceof ApiError && (err.code === 'EXEC_CONFLICT' || err.code === 'EXEC_NOT_FOUND'))) throw err;
      let execId: string;
      try {
        execId = await this.select(c, sel, true);
      } catch {
        throw new ConnectError('not_found', `process ${sel.pid ?? sel.tag} not found (it has ended)`);
      }
      await fn(execId);
    }
  }

  private async sendInput(c: EnvdCall, m: Json) {
    const input = asObject(m.input);
    const data = Buffer.from(str(input.stdin ?? input.pty), 'base64');
    await this.steer(c, asObject(m.process), (id) => this.processes.writeStdin(c.principal, c.bunkerId, id, Readable.from([data])));
    return {};
  }

  /** Client streaming (`StreamInput`): a start message naming the process, then input messages. */
  private async streamInput(c: EnvdCall, reader: EnvelopeReader): Promise<void> {
    let execId: string | undefined;
    for (;;) {
      const msg = await reader.next();
      if (msg === undefined) return;
      const m = asObject(msg);
      if (m.start) {
        execId = await this.select(c, asObject(asObject(m.start).process));
      } else if (m.data) {
        if (!execId) throw new ConnectError('failed_precondition', 'StreamInput needs a start message first');
        const input = asObject(asObject(m.data).input);
        const data = Buffer.from(str(input.stdin ?? input.pty), 'base64');
        await this.processes.writeStdin(c.principal, c.bunkerId, execId, Readable.from([data]));
      }
    }
  }

  private async sendSignal(c: EnvdCall, m: Json) {
    const sig =
      m.signal === 'SIGNAL_SIGTERM' || m.signal === 15
        ? 'SIGTERM'
        : m.signal === 'SIGNAL_SIGKILL' || m.signal === 9
          ? 'SIGKILL'
          : undefined;
    if (!sig) throw new ConnectError('invalid_argument', `unsupported signal ${String(m.signal)}`);
    await this.steer(c, asObject(m.process), (id) => this.processes.signal(c.principal, c.bunkerId, id, sig));
    return {};
  }

  private async update(c: EnvdCall, m: Json) {
    const size = m.pty ? asObject(asObject(m.pty).size) : undefined;
    if (!size) return {};
    const cols = num(size.cols);
    const rows = num(size.rows);
    if (!cols || !rows || cols > 1000 || rows > 1000)
      throw new ConnectError('invalid_argument', 'pty size must be 1–1000 columns and rows');
    await this.steer(c, asObject(m.process), (id) => this.processes.resize(c.principal, c.bunkerId, id, cols, rows));
    return {};
  }

  private async closeStdin(c: EnvdCall, m: Json) {
    await this.steer(c, asObject(m.process), (id) => this.processes.closeStdin(c.principal, c.bunkerId, id));
    return {};
  }

  /** Whether the sandbox has ended (envd answers 502 for a dead sandbox). */
  async ended(principal: Principal, bunkerId: string): Promise<boolean> {
    const row = await this.bunkers.get(principal, bunkerId);
    return TERMINAL_STATES.has(row.state as BunkerState);
  }
}

/** envd's EndEvent: exit code, whether it exited (not signalled), Go's ProcessState string. */
function endEvent(p: schemas.Process): Json {
  if (p.state === 'exited' && p.exit_code !== null) {
    return {
      exitCode: p.exit_code,
      exited: true,
      status: `exit status ${p.exit_code}`,
      ...(p.exit_code !== 0 ? { error: `exit status ${p.exit_code}` } : {}),
    };
  }
  const sig = (p.signal ?? 'SIGKILL').replace(/^SIG/, '').toLowerCase();
  const status = p.state === 'timed_out' ? 'signal: killed' : p.state === 'lost' ? 'lost' : `signal: ${sig === 'kill' ? 'killed' : sig}`;
  const error =
    p.state === 'timed_out' ? 'context deadline exceeded' : p.state === 'lost' ? `process lost (${p.end_reason ?? 'unknown'})` : status;
  return { exitCode: -1, exited: false, status, error };
}

/** The E2B config of an exec from its logged command (the argv as JSON; the bash shim shown as bash). */
function configOf(command: string): Json {
  let argv: string[];
  try {
    argv = JSON.parse(command) as string[];
    if (!Array.isArray(argv)) argv = ['/bin/sh', '-c', command];
  } catch {
    argv = ['/bin/sh', '-c', command];
  }
  if (argv[0] === '/bin/sh' && argv[2] === BASH_SHIM) return { cmd: '/bin/bash', args: argv.slice(4), envs: {} };
  return { cmd: argv[0] ?? '', args: argv.slice(1), envs: {} };
}

/** A watch event as envd's FilesystemEvent (`name` relative to the watched directory). */
function watchEvent(root: string, e: WatchEvent): Json | undefined {
  const type = WATCH_TYPES[e.type];
  if (!type) return undefined;
  const name = e.path.startsWith(`${root}/`) ? e.path.slice(root.length + 1) : posix.relative(root, e.path);
  return { name, type };
}

function writeJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function asObject(v: unknown): Json {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConnectError('invalid_argument', 'expected a JSON object');
  return v as Json;
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function num(v: unknown): number | undefined {
  const n = typeof v === 'string' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}
