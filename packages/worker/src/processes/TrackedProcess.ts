import type { Readable } from 'node:stream';
import { type ExecOutcome, type ProcessInfo, type ProcessOutput, type ProcessState, WorkerError } from '@scaibunker/core';
import type { OutputJournal } from './OutputJournal.js';

/** What the table needs of a process the agent runs (AgentClient.spawn's answer). */
export interface RunningProcess {
  readonly started: Promise<{ pid: number }>;
  readonly result: Promise<ExecOutcome>;
  write(data: Buffer): Promise<void>;
  closeStdin(): void;
  signal(sig: string): void;
  resize(cols: number, rows: number): void;
  kill(): void;
}

export interface ProcessMeta {
  execId: string;
  background: boolean;
  tag: string | null;
  pty: boolean;
  stdinOpen: boolean;
}

/** One exec the worker journals: its state, its output journal and the handle to steer it. */
export class TrackedProcess {
  pid: number | null = null;
  private state: ProcessState = 'running';
  private outcome: ExecOutcome | null = null;
  private readonly startedAt = new Date();
  private endedAt: Date | null = null;
  private stdinOpen: boolean;
  private readonly ended: Promise<ProcessInfo>;
  private resolveEnded!: (info: ProcessInfo) => void;

  constructor(
    readonly meta: ProcessMeta,
    readonly journal: OutputJournal,
    private handle: RunningProcess | null = null,
  ) {
    this.stdinOpen = meta.stdinOpen;
    this.ended = new Promise((resolve) => {
      this.resolveEnded = resolve;
    });
  }

  get execId(): string {
    return this.meta.execId;
  }
  get running(): boolean {
    return this.state === 'running';
  }

  attach(handle: RunningProcess): void {
    this.handle = handle;
  }

  /** The agent's answer for this exec (rejects as the agent client does). */
  get result(): Promise<ExecOutcome> {
    if (!this.handle) return Promise.reject(new WorkerError('PROCESS_CONFLICT', `exec ${this.execId} was not started`));
    return this.handle.result;
  }

  /** Resolves with the process's final state once it ended. */
  whenEnded(): Promise<ProcessInfo> {
    return this.ended;
  }

  /** The agent reported the outcome: exited, killed by a signal or timed out. */
  finish(outcome: ExecOutcome): void {
    if (!this.running) return;
    this.outcome = outcome;
    this.state = outcome.timedOut ? 'timed_out' : outcome.signal !== null ? 'killed' : 'exited';
    this.close();
  }

  /** The agent's channel went away with the process's fate unknown (the bunker died, the agent was restarted). */
  lose(): void {
    if (!this.running) return;
    this.state = 'lost';
    this.close();
  }

  private close(): void {
    this.endedAt = new Date();
    this.stdinOpen = false;
    this.journal.end();
    this.resolveEnded(this.info());
  }

  info(): ProcessInfo {
    const o = this.outcome;
    return {
      execId: this.meta.execId,
      pid: this.pid,
      state: this.state,
      exitCode: o?.exitCode ?? null,
      signal: o?.signal ?? null,
      timedOut: o?.timedOut ?? false,
      startedAt: this.startedAt.toISOString(),
      endedAt: this.endedAt?.toISOString() ?? null,
      durationMs: o ? o.durationMs : this.endedAt ? this.endedAt.getTime() - this.startedAt.getTime() : null,
      background: this.meta.background,
      tag: this.meta.tag,
      pty: this.meta.pty,
      stdinOpen: this.stdinOpen,
      nextSeq: this.journal.nextSeq,
      firstSeq: this.journal.firstSeq,
      outputBytes: this.journal.bytes,
      outputTruncated: this.journal.truncated,
    };
  }

  /** Replays from `fromSeq`, follows until the end (or the reader aborts), answers the state then. */
  async events(fromSeq: number, onEvent: (e: ProcessOutput) => void | Promise<void>, signal?: AbortSignal): Promise<ProcessInfo> {
    for await (const chunk of this.journal.read(fromSeq, signal)) {
      await onEvent({ stream: chunk.stream, seq: chunk.seq, data: chunk.data });
    }
    return this.info();
  }

  async writeStdin(data: Readable): Promise<{ bytes: number }> {
    const handle = this.steerable('write to its stdin');
    if (!this.stdinOpen) throw new WorkerError('PROCESS_CONFLICT', `exec ${this.execId}'s stdin is closed`);
    let bytes = 0;
    for await (const piece of data) {
      const buf = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
      if (!this.running || !this.stdinOpen)
        throw new WorkerError('PROCESS_CONFLICT', `exec ${this.execId} ended while its stdin was written`);
      await handle.write(buf);
      bytes += buf.length;
    }
    return { bytes };
  }

  closeStdin(): void {
    const handle = this.steerable('close its stdin');
    if (!this.stdinOpen) return; // idempotent
    this.stdinOpen = false;
    handle.closeStdin();
  }

  signal(sig: string): void {
    const handle = this.steerable('signal it');
    // SIGKILL ends the exec: its whole process group, even in a terminal (where other signals
    // go to the terminal's foreground job, as a typed ^C would).
    if (sig === 'SIGKILL' || sig === 'KILL' || sig === '9') handle.kill();
    else handle.signal(sig);
  }

  resize(cols: number, rows: number): void {
    const handle = this.steerable('resize it');
    if (!this.meta.pty) throw new WorkerError('PROCESS_CONFLICT', `exec ${this.execId} has no terminal to resize`);
    handle.resize(cols, rows);
  }

  kill(): void {
    if (this.running) this.handle?.kill();
  }

  private steerable(what: string): RunningProcess {
    if (!this.running || !this.handle) throw new WorkerError('PROCESS_CONFLICT', `exec ${this.execId} is ${this.state}: cannot ${what}`);
    return this.handle;
  }
}
