/**
 * Every exec a worker runs, per bunker, with its journaled output: blocking execs (so their
 * output can be read again by exec id) and background processes (which outlive the request
 * that started them). Finished ones stay until the bunker goes or more than `keepFinished`
 * newer ones ended; the controller keeps the exec's row (and stored output) beyond that.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ExecHandlers, type ExecOutcome, type ProcessInfo, WorkerError } from '@scaibunker/core';
import { OutputJournal } from './OutputJournal.js';
import { type ProcessMeta, type RunningProcess, TrackedProcess } from './TrackedProcess.js';

export interface ProcessTableOptions {
  /** Spill files go to `<spillDir>/<bunkerId>/<execId>.out`. */
  spillDir: string;
  /** Per background exec: output kept in memory before older chunks move to disk. Default 8 MiB. */
  memoryBytes?: number;
  /** Per background exec: output kept on disk; past it output is no longer journaled. Default 1 GiB. */
  diskBytes?: number;
  /**
   * Per blocking exec: output kept, in memory only (its caller has the output, and the
   * controller stores it); past it the journal is truncated. Default 1 MiB.
   */
  blockingMemoryBytes?: number;
  /** Finished execs kept per bunker. Default 200. */
  keepFinished?: number;
  /** Memory all finished execs' journals may hold together; past it the oldest are dropped. Default 256 MiB. */
  finishedMemoryBytes?: number;
  /** Asked before spilling: false when the worker's disk is under its reserve. */
  canSpill?: (bytes: number) => Promise<boolean>;
}

/** Starts the process in the agent; the table hands it the journaling output handlers. */
export type Launch = (handlers: ExecHandlers) => RunningProcess;

export class ProcessTable {
  private readonly bunkers = new Map<string, Map<string, TrackedProcess>>();
  /** Finished execs still kept, in the order they ended (across bunkers), and the memory they hold. */
  private readonly finished = new Map<TrackedProcess, { bunkerId: string; bytes: number }>();
  /** The same per bunker, in the order they ended: evicting its oldest is O(1) per exec, not a sort of all. */
  private readonly finishedOf = new Map<string, Set<TrackedProcess>>();
  private finishedBytes = 0;
  private readonly memoryBytes: number;
  private readonly diskBytes: number;
  private readonly blockingMemoryBytes: number;
  private readonly keepFinished: number;
  private readonly finishedMemoryBytes: number;

  constructor(private readonly opts: ProcessTableOptions) {
    this.memoryBytes = opts.memoryBytes ?? 8 * 1024 * 1024;
    this.diskBytes = opts.diskBytes ?? 1024 * 1024 * 1024;
    this.blockingMemoryBytes = opts.blockingMemoryBytes ?? 1024 * 1024;
    this.keepFinished = opts.keepFinished ?? 200;
    this.finishedMemoryBytes = opts.finishedMemoryBytes ?? 256 * 1024 * 1024;
  }

  /**
   * Registers an exec and launches it. Output is journaled first, then handed to `live`
   * (awaited: a slow live reader slows the process, as a blocking exec always did). Resolves
   * once the process runs (its pid known); `whenEnded()` tells the rest.
   */
  async start(bunkerId: string, meta: ProcessMeta, launch: Launch, live: ExecHandlers = {}): Promise<TrackedProcess> {
    const table = this.tableOf(bunkerId);
    const existing = table.get(meta.execId);
    if (existing) {
      if (!meta.background || !existing.meta.background) {
        throw new WorkerError('PROCESS_CONFLICT', `exec ${meta.execId} already exists in bunker ${bunkerId}`);
      }
      return existing; // a retried start
    }
    const journal = new OutputJournal({
      spillPath: join(this.opts.spillDir, bunkerId, `${meta.execId}.out`),
      ...(meta.background
        ? { memoryBytes: this.memoryBytes, diskBytes: this.diskBytes, ...(this.opts.canSpill ? { canSpill: this.opts.canSpill } : {}) }
        : { memoryBytes: this.blockingMemoryBytes, diskBytes: 0 }),
    });
    const tracked = new TrackedProcess(meta, journal);
    table.set(meta.execId, tracked);
    let handle: RunningProcess;
    try {
      handle = launch({
        onStdout: async (c) => {
          await journal.append('stdout', c);
          await live.onStdout?.(c);
        },
        onStderr: async (c) => {
          await journal.append('stderr', c);
          await live.onStderr?.(c);
        },
        ...(live.signal ? { signal: live.signal } : {}),
      });
    } catch (err) {
      table.delete(meta.execId);
      await journal.discard();
      throw err;
    }
    tracked.attach(handle);
    const t0 = performance.now();
    handle.result.then(
      (outcome: ExecOutcome) => tracked.finish(outcome),
      (err: { code?: string }) =>
        // The caller went away (a blocking exec's client): the agent killed the group.
        err?.code === 'ABORTED'
          ? tracked.finish({ exitCode: null, signal: 'SIGKILL', timedOut: false, durationMs: performance.now() - t0 })
          : tracked.lose(),
    );
    void tracked.whenEnded().then(() => {
      if (this.bunkers.get(bunkerId)?.get(meta.execId) !== tracked) return; // dropped with its bunker
      const bytes = journal.memoryBytes;
      this.finished.set(tracked, { bunkerId, bytes });
      this.finishedBytes += bytes;
      let ofBunker = this.finishedOf.get(bunkerId);
      if (!ofBunker) {
        ofBunker = new Set();
        this.finishedOf.set(bunkerId, ofBunker);
      }
      ofBunker.add(tracked);
      this.evictFinished(bunkerId, ofBunker);
      this.enforceFinishedMemory();
    });
    try {
      tracked.pid = (await handle.started).pid;
    } catch (err) {
      table.delete(meta.execId);
      await journal.discard();
      throw err;
    }
    return tracked;
  }

  get(bunkerId: string, execId: string): TrackedProcess {
    const p = this.bunkers.get(bunkerId)?.get(execId);
    if (!p) throw new WorkerError('PROCESS_NOT_FOUND', `no exec ${execId} in bunker ${bunkerId} on this worker`);
    return p;
  }

  /** Newest first. */
  list(bunkerId: string): ProcessInfo[] {
    const table = this.bunkers.get(bunkerId);
    if (!table) return [];
    return [...table.values()].map((p) => p.info()).reverse();
  }

  /** The bunker is gone: its processes are lost (if still running) and their journals deleted. */
  async dropBunker(bunkerId: string): Promise<void> {
    const table = this.bunkers.get(bunkerId);
    this.bunkers.delete(bunkerId);
    if (table) {
      for (const p of table.values()) {
        p.lose();
        this.forget(p);
      }
      await Promise.all([...table.values()].map((p) => p.journal.discard()));
    }
    await rm(join(this.opts.spillDir, bunkerId), { recursive: true, force: true });
  }

  /** The bunker's agent channel closed: every process still running there is lost, journals stay readable. */
  loseRunning(bunkerId: string): void {
    for (const p of this.bunkers.get(bunkerId)?.values() ?? []) p.lose();
  }

  private tableOf(bunkerId: string): Map<string, TrackedProcess> {
    let table = this.bunkers.get(bunkerId);
    if (!table) {
      table = new Map();
      this.bunkers.set(bunkerId, table);
    }
    return table;
  }

  /** Drops the oldest finished execs (any bunker) while their journals hold more than the budget. */
  private enforceFinishedMemory(): void {
    for (const [p, f] of this.finished) {
      if (this.finishedBytes <= this.finishedMemoryBytes) return;
      this.drop(f.bunkerId, p);
    }
  }

  /** Drops the oldest finished execs of a bunker past `keepFinished` (running ones always stay). */
  private evictFinished(bunkerId: string, finished: Set<TrackedProcess>): void {
    for (const p of finished) {
      if (finished.size <= this.keepFinished) return;
      this.drop(bunkerId, p);
    }
  }

  private drop(bunkerId: string, p: TrackedProcess): void {
    const table = this.bunkers.get(bunkerId);
    if (table?.get(p.execId) === p) table.delete(p.execId);
    this.forget(p);
    void p.journal.discard();
  }

  private forget(p: TrackedProcess): void {
    const f = this.finished.get(p);
    if (!f) return;
    this.finished.delete(p);
    this.finishedBytes -= f.bytes;
    const ofBunker = this.finishedOf.get(f.bunkerId);
    ofBunker?.delete(p);
    if (ofBunker?.size === 0) this.finishedOf.delete(f.bunkerId);
  }
}
