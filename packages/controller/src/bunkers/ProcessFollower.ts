import { type ProcessInfo, type WorkerApi, WorkerError } from '@scaibunker/core';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { ControllerConfig } from '../config.js';
import type { Store } from '../store/Store.js';
import type { ExecLogRow } from '../store/schema.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';
import type { ExecLogWriter } from './ExecLogWriter.js';
import { combinedStoreState, OutputCapture } from './OutputCapture.js';
import type { OutputStorage } from './OutputStorage.js';

/**
 * Keeps a background exec's row and stored output: reads its output from the worker's
 * journal (from the first chunk), stores it as a blocking exec's is (preview inline, the rest
 * to the blob store within the caps), and completes the row when the process ends. A follower
 * lives in the controller that started the process; after a controller restart `reconcile()`
 * adopts the rows still open — the journal still has every chunk, so nothing is missed — and
 * closes those whose worker or bunker no longer has them (`lost`).
 */
export class ProcessFollower {
  private readonly following = new Map<string, AbortController>();
  private closed = false;

  constructor(
    private readonly store: Store,
    private readonly directory: WorkerDirectory,
    private readonly blobs: BlobStore,
    private readonly logs: ExecLogWriter,
    private readonly config: ControllerConfig,
    private readonly outputs: OutputStorage,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {}

  /** Follows the exec until it ends (idempotent per exec id). */
  follow(row: ExecLogRow, worker: WorkerApi): void {
    if (this.closed || this.following.has(row.id)) return;
    const abort = new AbortController();
    this.following.set(row.id, abort);
    this.run(row, worker, abort.signal)
      .catch((err) => {
        if (!abort.signal.aborted) this.log(`[processes] following ${row.id} stopped: ${(err as Error).message}`);
      })
      .finally(() => this.following.delete(row.id));
  }

  /** Stops following (the processes run on; the next controller adopts them). */
  close(): void {
    this.closed = true;
    for (const a of this.following.values()) a.abort();
    this.following.clear();
  }

  /** Adopts or closes every open background row this controller does not follow. */
  async reconcile(): Promise<{ adopted: number; lost: number }> {
    let adopted = 0;
    let lost = 0;
    for (const row of await this.store.execLogs.unfinishedBackground(1000)) {
      if (this.following.has(row.id)) continue;
      const bunker = await this.store.bunkers.get(row.tenant_id, row.bunker_id);
      if (!bunker || bunker.state !== 'running' || !bunker.worker_id) {
        if (bunker && ['pending', 'starting', 'paused'].includes(bunker.state)) continue;
        await this.finish(row, null, 'bunker_ended');
        lost++;
        continue;
      }
      let worker: WorkerApi;
      try {
        worker = await this.directory.get(bunker.worker_id);
        await worker.getProcess(row.bunker_id, row.id);
      } catch (err) {
        if (err instanceof WorkerError && (err.code === 'PROCESS_NOT_FOUND' || err.code === 'BUNKER_NOT_FOUND')) {
          await this.finish(row, null, 'worker_lost');
          lost++;
        }
        continue; // the worker cannot be asked now: next time
      }
      this.follow(row, worker);
      adopted++;
    }
    return { adopted, lost };
  }

  private async run(row: ExecLogRow, worker: WorkerApi, signal: AbortSignal): Promise<void> {
    const cap = this.config.outputInlineCapBytes;
    const budget = this.outputs.budgetFor(row.tenant_id);
    const out = new OutputCapture(this.blobs, blobKeys.execOutput(row.bunker_id, row.id, 'stdout'), cap, budget);
    const err = new OutputCapture(this.blobs, blobKeys.execOutput(row.bunker_id, row.id, 'stderr'), cap, budget);
    let info: ProcessInfo | undefined;
    try {
      info = await worker.processEvents(row.bunker_id, row.id, 1, {
        onEvent: (e) => (e.stream === 'stdout' ? out.write(e.data) : err.write(e.data)),
        signal,
      });
    } catch (e) {
      await Promise.all([out.abort(), err.abort()]);
      this.outputs.settle(row.tenant_id, out.stored + err.stored);
      if (e instanceof WorkerError && (e.code === 'PROCESS_NOT_FOUND' || e.code === 'BUNKER_NOT_FOUND')) {
        await this.finish(row, null, 'worker_lost');
        return;
      }
      throw e;
    }
    if (signal.aborted || !info || info.state === 'running') {
      await Promise.all([out.abort(), err.abort()]);
      this.outputs.settle(row.tenant_id, out.stored + err.stored);
      return;
    }
    const truncated = out.truncated || err.truncated || info.outputTruncated;
    await Promise.all([out.finish(truncated), err.finish(truncated)]);
    const store = combinedStoreState(out.storeState, err.storeState);
    const stored = out.stored + err.stored;
    try {
      await this.finish(
        {
          ...row,
          stdout_preview: out.preview(this.config.execPreviewBytes),
          stderr_preview: err.preview(this.config.execPreviewBytes),
          truncated: truncated ? 1 : 0,
          full_output_ref:
            store === 'complete' || store === 'capped'
              ? `/v1/modules/scaibunker/bunkers/${row.bunker_id}/exec-logs/${row.id}/output`
              : null,
          output_store: store,
          output_bytes: stored,
        },
        info,
        info.state === 'lost' ? 'worker_lost' : null,
      );
    } finally {
      this.outputs.settle(row.tenant_id, stored);
    }
  }

  /** Completes the row from the process's end (or as lost when there is none). */
  private finish(row: ExecLogRow, info: ProcessInfo | null, reason: string | null): Promise<void> {
    return this.logs.write({
      ...row,
      state: info?.state ?? 'lost',
      pid: info?.pid ?? row.pid,
      exit_code: info?.exitCode ?? null,
      signal: info?.signal ?? null,
      timed_out: info?.timedOut ? 1 : 0,
      duration_ms: info?.durationMs !== null && info?.durationMs !== undefined ? Math.round(info.durationMs) : null,
      end_reason: reason,
      finished_at: info?.endedAt ?? new Date().toISOString(),
    });
  }
}
