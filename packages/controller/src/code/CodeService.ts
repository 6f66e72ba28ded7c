import { readFileSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { ApiError, newId, type ProcessOutput, type schemas } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import type { ProcessService } from '../bunkers/ProcessService.js';

/** The kernel's source (kernel.py next to this file's source), run as `python3 -u -c`. */
const KERNEL_SOURCE = readFileSync(new URL('../../src/code/kernel.py', import.meta.url), 'utf8');
/** A context is a kernel process tagged with its id. */
const TAG_PREFIX = 'code:';
export const DEFAULT_CONTEXT = 'default';
/** How long a new kernel may take to say it is ready (python3 starting in a cold bunker). */
const KERNEL_READY_MS = 30_000;
/** After an interrupt (timeout), how long the execution may take to end before the kernel is killed. */
const INTERRUPT_GRACE_MS = 5_000;

export type CodeEvent =
  | { type: 'stdout' | 'stderr'; text: string }
  | { type: 'result'; text: string; html?: string; markdown?: string; svg?: string; png?: string; json?: unknown }
  | { type: 'error'; name: string; value: string; traceback: string }
  | { type: 'end_of_execution'; execution_count: number | null };

export interface CodeContext {
  id: string;
  language: 'python';
  /** The kernel process (a background exec of the bunker). */
  exec_id: string;
  cwd: string | null;
}

/**
 * Stateful code execution: each context is one Python kernel (kernel.py) running as a
 * background process of the bunker, fed one JSON request per line on stdin and answering JSON
 * lines on stdout (read from the process's journal from the sequence number it had before the
 * request). Executions of a context run one at a time on this controller. The kernel is the
 * bunker's process like any other: quotas, audit and exec logs see it.
 */
export class CodeService {
  /** Per kernel exec: the tail of the queue of executions. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly processes: ProcessService,
    private readonly audit?: AuditTrail,
  ) {}

  async createContext(principal: Principal, bunkerId: string, body: schemas.CreateCodeContextBody): Promise<CodeContext> {
    return this.startKernel(principal, bunkerId, newId('cx'), body.cwd, body.env);
  }

  async listContexts(principal: Principal, bunkerId: string): Promise<CodeContext[]> {
    const page = await this.processes.list(principal, bunkerId, { state: 'running', limit: 200 });
    // `state` is the worker's live view: a kernel just stopped is not running, even while its
    // row waits for the follower to store its end.
    return page.items.filter((p) => p.tag?.startsWith(TAG_PREFIX) && p.state === 'running').map((p) => toContext(p));
  }

  async restartContext(principal: Principal, bunkerId: string, contextId: string): Promise<CodeContext> {
    const current = await this.mustFind(principal, bunkerId, contextId);
    await this.stopKernel(principal, bunkerId, current.exec_id);
    return this.startKernel(principal, bunkerId, contextId, current.cwd ?? undefined, undefined);
  }

  async deleteContext(principal: Principal, bunkerId: string, contextId: string): Promise<void> {
    const current = await this.mustFind(principal, bunkerId, contextId);
    await this.stopKernel(principal, bunkerId, current.exec_id);
  }

  /** Kills a kernel and waits until it has ended, 10 s at most. */
  private async stopKernel(principal: Principal, bunkerId: string, execId: string): Promise<void> {
    const handle = await this.processes.open(principal, bunkerId, execId);
    const from = (await this.processes.get(principal, bunkerId, execId)).next_seq ?? 1;
    const gaveUp = new AbortController();
    const timer = setTimeout(() => gaveUp.abort(), 10_000);
    try {
      const ended = handle.events(from, () => undefined, gaveUp.signal);
      await handle.signal('KILL');
      await ended;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The context a run goes to: the one named, or the bunker's default context (started on
   * first use). Resolved before a caller commits to a stream, so a missing one is a plain 404.
   */
  async contextFor(principal: Principal, bunkerId: string, contextId: string | undefined): Promise<CodeContext> {
    const id = contextId ?? DEFAULT_CONTEXT;
    const found = await this.find(principal, bunkerId, id);
    if (found) return found;
    if (id !== DEFAULT_CONTEXT) throw notFound(id);
    return this.startKernel(principal, bunkerId, DEFAULT_CONTEXT, undefined, undefined);
  }

  /**
   * Runs `code` in the context; every event goes to `onEvent`, the last one
   * `end_of_execution`. `timeout_s` interrupts the execution (KeyboardInterrupt; the context's
   * state is kept).
   */
  async run(
    principal: Principal,
    bunkerId: string,
    ctx: CodeContext,
    body: schemas.RunCodeBody,
    onEvent: (e: CodeEvent) => void | Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    this.audit?.record(principal, {
      action: 'code.run',
      target: { type: 'code_context', id: ctx.id },
      bunkerId,
      details: { exec_id: ctx.exec_id, code_bytes: Buffer.byteLength(body.code) },
    });
    // One execution at a time per kernel: the next waits for the previous to end.
    const previous = this.queues.get(ctx.exec_id) ?? Promise.resolve();
    const turn = previous.then(
      () => this.execute(principal, bunkerId, ctx, body, onEvent, signal),
      () => this.execute(principal, bunkerId, ctx, body, onEvent, signal),
    );
    this.queues.set(ctx.exec_id, turn);
    try {
      await turn;
    } finally {
      if (this.queues.get(ctx.exec_id) === turn) this.queues.delete(ctx.exec_id);
    }
  }

  private async execute(
    principal: Principal,
    bunkerId: string,
    ctx: CodeContext,
    body: schemas.RunCodeBody,
    onEvent: (e: CodeEvent) => void | Promise<void>,
    signal?: AbortSignal,
  ): Promise<void> {
    const handle = await this.processes.open(principal, bunkerId, ctx.exec_id);
    const from = (await this.processes.get(principal, bunkerId, ctx.exec_id)).next_seq ?? 1;
    const requestId = newId('rq');
    const reading = new AbortController();
    const stop = () => reading.abort();
    signal?.addEventListener('abort', stop, { once: true });
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const lines = new LineSplitter();
    const onOutput = async (o: ProcessOutput) => {
      if (o.stream === 'stderr') {
        // The kernel's own stderr (the interpreter's warnings, C-level writes): the code's stderr too.
        await onEvent({ type: 'stderr', text: o.data.toString('utf8') });
        return;
      }
      for (const line of lines.push(o.data)) {
        const msg = parseLine(line);
        if (msg?.id !== requestId) continue;
        const { id: _id, ...event } = msg;
        await onEvent(event as CodeEvent);
        if (event.type === 'end_of_execution') {
          ended = true;
          reading.abort();
        }
      }
    };
    try {
      const events = handle.events(from, onOutput, reading.signal);
      await handle.write(Buffer.from(`${JSON.stringify({ id: requestId, code: body.code, ...(body.env ? { env: body.env } : {}) })}\n`));
      if (body.timeout_s) {
        timer = setTimeout(() => {
          void handle.signal('INT').catch(() => undefined);
          // A kernel that does not come back from the interrupt is killed: the context restarts on its next use.
          timer = setTimeout(() => void handle.signal('KILL').catch(() => undefined), INTERRUPT_GRACE_MS);
        }, body.timeout_s * 1000);
      }
      const info = await events;
      if (!ended && !signal?.aborted) {
        await onEvent({
          type: 'error',
          name: 'KernelDied',
          value: `the kernel exited (${info?.signal ? `signal ${info.signal}` : `exit ${info?.exitCode ?? '?'}`}); the context's state is gone`,
          traceback: '',
        });
        await onEvent({ type: 'end_of_execution', execution_count: null });
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', stop);
    }
  }

  /** Starts a kernel tagged `code:<contextId>` and waits for its `ready` line. */
  private async startKernel(
    principal: Principal,
    bunkerId: string,
    contextId: string,
    cwd: string | undefined,
    env: Record<string, string> | undefined,
  ): Promise<CodeContext> {
    const started = await this.processes.startProcess(principal, bunkerId, {
      argv: ['python3', '-u', '-c', KERNEL_SOURCE],
      command: `code context ${contextId} (python kernel)`,
      ...(cwd ? { cwd } : {}),
      ...(env ? { env } : {}),
      timeoutMs: 0,
      tag: `${TAG_PREFIX}${contextId}`,
      stdin: true,
    });
    const handle = await this.processes.open(principal, bunkerId, started.exec_id);
    const ready = new AbortController();
    const lines = new LineSplitter();
    let isReady = false;
    let stderr = '';
    const timer = setTimeout(() => ready.abort(), KERNEL_READY_MS);
    try {
      const info = await handle.events(
        1,
        (o) => {
          if (o.stream === 'stderr') {
            stderr = (stderr + o.data.toString('utf8')).slice(-2000);
            return;
          }
          for (const line of lines.push(o.data)) {
            if (parseLine(line)?.type === 'ready') {
              isReady = true;
              ready.abort();
            }
          }
        },
        ready.signal,
      );
      if (!isReady) {
        await handle.signal('KILL').catch(() => undefined);
        const why = info ? `it exited (${info.exitCode ?? info.signal})` : `it said nothing for ${KERNEL_READY_MS / 1000} s`;
        throw new ApiError(
          'KERNEL_UNAVAILABLE',
          `the Python kernel did not start: ${why}${stderr ? `: ${stderr.trim()}` : ''} (does the image have python3?)`,
          { exec_id: started.exec_id },
        );
      }
    } finally {
      clearTimeout(timer);
    }
    return { id: contextId, language: 'python', exec_id: started.exec_id, cwd: cwd ?? null };
  }

  private async find(principal: Principal, bunkerId: string, contextId: string): Promise<CodeContext | undefined> {
    return (await this.listContexts(principal, bunkerId)).find((c) => c.id === contextId);
  }

  private async mustFind(principal: Principal, bunkerId: string, contextId: string): Promise<CodeContext> {
    const ctx = await this.find(principal, bunkerId, contextId);
    if (!ctx) throw notFound(contextId);
    return ctx;
  }
}

function notFound(contextId: string): ApiError {
  return new ApiError('CODE_CONTEXT_NOT_FOUND', `no running code context ${contextId} in the bunker`, { context_id: contextId });
}

function toContext(p: schemas.Process): CodeContext {
  return { id: (p.tag as string).slice(TAG_PREFIX.length), language: 'python', exec_id: p.exec_id, cwd: null };
}

function parseLine(line: string): ({ id?: string; type?: string } & Record<string, unknown>) | undefined {
  try {
    const v = JSON.parse(line) as unknown;
    return v && typeof v === 'object' ? (v as { id?: string; type?: string }) : undefined;
  } catch {
    return undefined;
  }
}

/** Whole lines out of chunks (a line, or a character, may span chunks). */
class LineSplitter {
  private rest = '';
  private readonly decoder = new StringDecoder('utf8');
  push(chunk: Buffer): string[] {
    const text = this.rest + this.decoder.write(chunk);
    const parts = text.split('\n');
    this.rest = parts.pop() ?? '';
    return parts;
  }
}
