import { Readable } from 'node:stream';
import { ApiError, newId, type ProcessInfo, type ProcessOutput, type schemas, type WorkerApi, WorkerError } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import { execEvent, shellEvent } from '../audit/events.js';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';
import type { ExecLogRow } from '../store/schema.js';
import type { AuditEntry } from '../tenants/audit.js';
import type { BunkerService } from './BunkerService.js';
import type { ExecLogWriter } from './ExecLogWriter.js';
import type { ProcessFollower } from './ProcessFollower.js';
import { startedExecLogRow } from './startedExecLogRow.js';
import { processToApi } from './toApi.js';

/** A running exec, looked up once: what a terminal or an attached client steers. */
export interface ProcessHandle {
  row: ExecLogRow;
  write(data: Buffer): Promise<{ bytes: number }>;
  resize(cols: number, rows: number): Promise<void>;
  signal(sig: string): Promise<void>;
  closeStdin(): Promise<void>;
  /** Output from `from` on until the process ends; resolves with how it ended (undefined if aborted first). */
  events(from: number, onOutput: (e: ProcessOutput) => void | Promise<void>, signal: AbortSignal): Promise<ProcessInfo | undefined>;
}

/** A login shell: bash when the image has it (`-l`), else sh. */
const LOGIN_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'];

export interface StartOptions {
  argv: string[];
  /** What the exec log shows as the command. */
  command: string;
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  timeoutMs: number;
  tag?: string;
  stdin: boolean;
  pty?: { cols: number; rows: number };
}

/**
 * Background processes and shells: started once, steered and read by exec id for as long as
 * the worker journals them (the exec-log row and its stored output last beyond that). Every
 * call resolves the exec through the caller's tenant first, so another tenant's exec id is
 * simply not found.
 */
export class ProcessService {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly logs: ExecLogWriter,
    private readonly follower: ProcessFollower,
    private readonly audit?: AuditTrail,
  ) {}

  /** `POST /exec` with `background: true`: answers once the process runs. */
  startFromBody(principal: Principal, bunkerId: string, body: schemas.ExecBody): Promise<schemas.Process> {
    if (body.stream)
      throw new ApiError('VALIDATION_FAILED', '`stream` and `background` do not go together: read `…/execs/{exec_id}/events`', {
        field: 'body/stream',
      });
    if (typeof body.stdin === 'string') {
      throw new ApiError('VALIDATION_FAILED', 'a background exec takes `stdin: true` and its input through `…/stdin`', {
        field: 'body/stdin',
      });
    }
    const argv = typeof body.command === 'string' ? ['/bin/sh', '-c', body.command] : body.command;
    return this.start(principal, bunkerId, (execId) => execEvent(bunkerId, execId, body), {
      argv,
      command: typeof body.command === 'string' ? body.command : JSON.stringify(body.command),
      ...(body.env ? { env: body.env } : {}),
      ...(body.cwd ? { cwd: body.cwd } : {}),
      ...(body.user ? { user: body.user } : {}),
      timeoutMs: body.timeout_s ? Math.round(body.timeout_s * 1000) : 0,
      ...(body.tag ? { tag: body.tag } : {}),
      stdin: body.stdin === true,
      ...(body.pty ? { pty: body.pty } : {}),
    });
  }

  /** A login shell (or `command`) in a terminal of the given size. */
  startShell(principal: Principal, bunkerId: string, size: { cols: number; rows: number }, command?: string): Promise<schemas.Process> {
    return this.start(principal, bunkerId, (execId) => shellEvent(bunkerId, execId, 'shell.open', { command: command ?? null }), {
      argv: command ? ['/bin/sh', '-c', command] : LOGIN_SHELL,
      command: command ?? 'shell',
      timeoutMs: 0,
      tag: 'shell',
      stdin: true,
      pty: size,
    });
  }

  /**
   * A background process the platform starts for the caller (a code context's kernel): audited
   * as `exec.run` with its command label, steered like any other exec.
   */
  startProcess(principal: Principal, bunkerId: string, opts: StartOptions): Promise<schemas.Process> {
    const body = { command: opts.command, background: true, ...(opts.tag ? { tag: opts.tag } : {}) };
    return this.start(principal, bunkerId, (execId) => execEvent(bunkerId, execId, body), opts);
  }

  private async start(
    principal: Principal,
    bunkerId: string,
    event: (execId: string) => AuditEntry,
    opts: StartOptions,
  ): Promise<schemas.Process> {
    const { row: bunker, worker } = await this.bunkers.requireRunning(principal, bunkerId);
    const execId = newId('ex');
    this.audit?.record(principal, event(execId));
    const row = startedExecLogRow({
      id: execId,
      bunker,
      caller: principal.actor,
      command: opts.command,
      background: { tag: opts.tag ?? null, pty: opts.pty !== undefined },
    });
    // The row is committed before the process starts: a process the database never heard of
    // could not be found again.
    await this.logs.write(row);
    const env = { ...(JSON.parse(bunker.env) as Record<string, string>), ...(opts.env ?? {}) };
    let info: ProcessInfo;
    try {
      info = await worker.startProcess(bunker.id, {
        execId,
        argv: opts.argv,
        env,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.user ? { user: opts.user } : {}),
        timeoutMs: opts.timeoutMs,
        ...(opts.tag ? { tag: opts.tag } : {}),
        stdin: opts.stdin,
        ...(opts.pty ? { pty: opts.pty } : {}),
      });
    } catch (err) {
      await this.logs.write({
        ...row,
        state: 'lost',
        stderr_preview: `[scaibunker: the process did not start: ${(err as Error).message}]`,
        finished_at: new Date().toISOString(),
      });
      throw this.bunkers.mapWorkerError(err);
    }
    const started = { ...row, pid: info.pid };
    // Not awaited: the pid is on the row the follower finishes; a crash before then leaves the
    // running row, which the reconciler completes from the worker.
    this.logs.write(started).catch(() => undefined);
    this.follower.follow(started, worker);
    return processToApi(started, info);
  }

  async list(
    principal: Principal,
    bunkerId: string,
    query: { state?: string; tag?: string; limit?: number; cursor?: string },
  ): Promise<{ items: schemas.Process[]; next_cursor: string | null }> {
    await this.bunkers.get(principal, bunkerId);
    const filter = { ...(query.state ? { state: query.state } : {}), ...(query.tag ? { tag: query.tag } : {}) };
    const page = await this.store.execLogs.list(principal.tenantId, bunkerId, query.limit ?? 50, query.cursor, filter);
    const live = page.items.some((r) => r.finished_at === null) ? await this.liveInfos(principal, bunkerId) : new Map();
    return { items: page.items.map((r) => processToApi(r, live.get(r.id))), next_cursor: page.nextCursor };
  }

  async get(principal: Principal, bunkerId: string, execId: string): Promise<schemas.Process> {
    const row = await this.row(principal, bunkerId, execId);
    if (row.finished_at !== null) return processToApi(row);
    const live = await this.liveInfos(principal, bunkerId);
    return processToApi(row, live.get(execId));
  }

  /**
   * The exec's output from `fromSeq` on, live until it ends, each chunk to `onOutput`. From the
   * worker's journal while it has one; after that from the stored output (no sequence numbers).
   */
  async events(
    principal: Principal,
    bunkerId: string,
    execId: string,
    fromSeq: number,
    onOutput: (e: ProcessOutput | { stream: 'stdout' | 'stderr'; seq: null; data: Buffer }) => void | Promise<void>,
    signal: AbortSignal,
  ): Promise<schemas.Process> {
    const row = await this.row(principal, bunkerId, execId);
    const worker = await this.workerOf(principal, bunkerId);
    if (worker) {
      try {
        const info = await worker.processEvents(bunkerId, execId, fromSeq, { onEvent: onOutput, signal });
        const ended = await this.row(principal, bunkerId, execId).catch(() => row);
        return processToApi(ended, info ?? undefined);
      } catch (err) {
        if (!(err instanceof WorkerError && (err.code === 'PROCESS_NOT_FOUND' || err.code === 'BUNKER_NOT_FOUND'))) {
          throw this.bunkers.mapWorkerError(err);
        }
      }
    }
    // No journal any more: what the exec log kept.
    if (fromSeq <= 1) {
      if (row.stdout_preview) await onOutput({ stream: 'stdout', seq: null, data: Buffer.from(row.stdout_preview) });
      if (row.stderr_preview) await onOutput({ stream: 'stderr', seq: null, data: Buffer.from(row.stderr_preview) });
    }
    return processToApi(row);
  }

  async writeStdin(principal: Principal, bunkerId: string, execId: string, data: Readable): Promise<{ bytes: number }> {
    return this.steer(principal, bunkerId, execId, (w) => w.writeStdin(bunkerId, execId, data));
  }

  closeStdin(principal: Principal, bunkerId: string, execId: string): Promise<void> {
    return this.steer(principal, bunkerId, execId, (w) => w.closeStdin(bunkerId, execId));
  }

  signal(principal: Principal, bunkerId: string, execId: string, signal: string): Promise<void> {
    return this.steer(principal, bunkerId, execId, (w) => w.signalProcess(bunkerId, execId, signal));
  }

  resize(principal: Principal, bunkerId: string, execId: string, cols: number, rows: number): Promise<void> {
    return this.steer(principal, bunkerId, execId, (w) => w.resizeProcess(bunkerId, execId, cols, rows));
  }

  /**
   * A running exec resolved once (tenant, row, worker) for a long-lived attachment: a terminal
   * writes every keystroke through it without looking anything up again.
   */
  async open(principal: Principal, bunkerId: string, execId: string): Promise<ProcessHandle> {
    const row = await this.row(principal, bunkerId, execId);
    if (row.finished_at !== null) throw new ApiError('EXEC_CONFLICT', `exec ${execId} has ended (${row.state ?? 'finished'})`);
    const { worker } = await this.bunkers.requireRunning(principal, bunkerId);
    const call = async <T>(fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        throw this.bunkers.mapWorkerError(err);
      }
    };
    return {
      row,
      write: (data) => {
        this.bunkers.touch(bunkerId);
        return call(() => worker.writeStdin(bunkerId, execId, Readable.from([data])));
      },
      resize: (cols, rows) => call(() => worker.resizeProcess(bunkerId, execId, cols, rows)),
      signal: (sig) => call(() => worker.signalProcess(bunkerId, execId, sig)),
      closeStdin: () => call(() => worker.closeStdin(bunkerId, execId)),
      events: (from, onOutput, signal) => call(() => worker.processEvents(bunkerId, execId, from, { onEvent: onOutput, signal })),
    };
  }

  /** A terminal session on a shell exec: opened (a new shell, or a reattach) or closed. */
  recordShell(principal: Principal, bunkerId: string, execId: string, action: 'shell.open' | 'shell.close', details: object = {}): void {
    this.audit?.record(principal, shellEvent(bunkerId, execId, action, details));
  }

  /** The exec's row, in the caller's tenant and this bunker; EXEC_NOT_FOUND otherwise. */
  async row(principal: Principal, bunkerId: string, execId: string): Promise<ExecLogRow> {
    const row = await this.store.execLogs.get(principal.tenantId, bunkerId, execId);
    if (!row) {
      await this.bunkers.get(principal, bunkerId); // an unknown bunker is BUNKER_NOT_FOUND
      throw new ApiError('EXEC_NOT_FOUND', `no exec ${execId} in bunker ${bunkerId}`, { exec_id: execId });
    }
    return row;
  }

  private async steer<T>(principal: Principal, bunkerId: string, execId: string, fn: (w: WorkerApi) => Promise<T>): Promise<T> {
    const row = await this.row(principal, bunkerId, execId);
    if (row.finished_at !== null) throw new ApiError('EXEC_CONFLICT', `exec ${execId} has ended (${row.state ?? 'finished'})`);
    const { worker } = await this.bunkers.requireRunning(principal, bunkerId);
    try {
      return await fn(worker);
    } catch (err) {
      throw this.bunkers.mapWorkerError(err);
    }
  }

  /** The bunker's worker when it runs; null when it does not (a finished exec is still readable). */
  private async workerOf(principal: Principal, bunkerId: string): Promise<WorkerApi | null> {
    try {
      return (await this.bunkers.requireRunning(principal, bunkerId)).worker;
    } catch (err) {
      if (err instanceof ApiError && err.code === 'BUNKER_NOT_RUNNING') return null;
      throw err;
    }
  }

  /** The worker's view of the bunker's processes (empty when it cannot say). */
  private async liveInfos(principal: Principal, bunkerId: string): Promise<Map<string, ProcessInfo>> {
    const worker = await this.workerOf(principal, bunkerId).catch(() => null);
    if (!worker) return new Map();
    try {
      return new Map((await worker.listProcesses(bunkerId)).map((p) => [p.execId, p]));
    } catch {
      return new Map();
    }
  }
}
