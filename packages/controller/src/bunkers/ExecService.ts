import { ApiError, newId, type schemas } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import { execEvent } from '../audit/events.js';
import type { Principal } from '../auth/Principal.js';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { ControllerConfig } from '../config.js';
import { requestTrace } from '../http/requestContext.js';
import type { ControllerMetrics } from '../metrics/ControllerMetrics.js';
import type { Store } from '../store/Store.js';
import type { BunkerService } from './BunkerService.js';
import type { ExecLogJournal } from './ExecLogJournal.js';
import { ExecLogWriter } from './ExecLogWriter.js';
import { combinedStoreState, OutputCapture } from './OutputCapture.js';
import type { OutputStorage } from './OutputStorage.js';
import { startedExecLogRow } from './startedExecLogRow.js';

export interface ExecSink {
  /** Told the exec's id before the command starts (the event stream's first event). */
  onStart?(execId: string): void | Promise<void>;
  onStdout?(chunk: Buffer): void | Promise<void>;
  onStderr?(chunk: Buffer): void | Promise<void>;
  signal?: AbortSignal;
}

/** Runs a command in a bunker: output capped inline, the rest to the blob store, one exec-log row each. */
export class ExecService {
  /** Exec-log rows, group-committed (shared with the background processes' rows). */
  readonly logs: ExecLogWriter;

  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly blobs: BlobStore,
    private readonly config: ControllerConfig,
    readonly outputs: OutputStorage,
    journal?: ExecLogJournal,
    private readonly audit?: AuditTrail,
    /** `scaibunker_exec_duration_seconds`. */
    private readonly metrics?: Pick<ControllerMetrics, 'time' | 'execDuration'>,
  ) {
    this.logs = new ExecLogWriter(store.execLogs, journal);
  }

  /** Stops replaying the exec-log journal (what it holds stays for the next start). */
  close(): Promise<void> {
    return this.logs.close();
  }

  /** Runs a blocking exec (timed into `scaibunker_exec_duration_seconds`). */
  exec(principal: Principal, bunkerId: string, body: schemas.ExecBody, sink: ExecSink = {}): Promise<schemas.ExecResult> {
    const m = this.metrics;
    const run = () => this.run(principal, bunkerId, body, sink);
    return m ? m.time(m.execDuration, run) : run();
  }

  private async run(principal: Principal, bunkerId: string, body: schemas.ExecBody, sink: ExecSink): Promise<schemas.ExecResult> {
    if (body.stdin === true) throw new ApiError('VALIDATION_FAILED', '`stdin: true` needs `background: true`', { field: 'body/stdin' });
    if (body.pty) throw new ApiError('VALIDATION_FAILED', '`pty` needs `background: true` (then attach to it)', { field: 'body/pty' });
    if (body.tag) throw new ApiError('VALIDATION_FAILED', '`tag` is for background execs', { field: 'body/tag' });
    const trace = requestTrace();
    const { row, worker } = await this.bunkers.requireRunning(principal, bunkerId);
    trace.subject = bunkerId;
    trace.mark('controller.bunker-lookup');
    const argv = typeof body.command === 'string' ? ['/bin/sh', '-c', body.command] : body.command;
    const execId = newId('ex');
    await sink.onStart?.(execId);
    const logRow = startedExecLogRow({
      id: execId,
      bunker: row,
      caller: principal.actor,
      command: typeof body.command === 'string' ? body.command : JSON.stringify(body.command),
    });
    this.audit?.record(principal, execEvent(row.id, execId, body));
    const cap = this.config.outputInlineCapBytes;
    const budget = this.outputs.budgetFor(row.tenant_id);
    const out = new OutputCapture(this.blobs, blobKeys.execOutput(row.id, execId, 'stdout'), cap, budget);
    const err = new OutputCapture(this.blobs, blobKeys.execOutput(row.id, execId, 'stderr'), cap, budget);
    const env = { ...(JSON.parse(row.env) as Record<string, string>), ...(body.env ?? {}) };
    // The command starts first; its start row is written only if it runs past
    // START_ROW_DELAY_MS, and its completed row (group-committed with other execs' rows) before
    // the result is returned: the row exists before the result does, without adding a database
    // round trip of its own to the exec.
    try {
      const running = worker.exec(
        row.id,
        {
          argv,
          env,
          ...(body.cwd ? { cwd: body.cwd } : {}),
          ...(body.user ? { user: body.user } : {}),
          ...(typeof body.stdin === 'string' ? { stdin: body.stdin } : {}),
          timeoutMs: Math.round((body.timeout_s ?? 60) * 1000),
          execId,
        },
        {
          onStdout: async (c) => {
            await out.write(c);
            await sink.onStdout?.(c);
          },
          onStderr: async (c) => {
            await err.write(c);
            await sink.onStderr?.(c);
          },
          ...(sink.signal ? { signal: sink.signal } : {}),
        },
      );
      this.logs.writeStartLater(logRow);
      const outcome = await running;
      trace.mark('controller.worker-exec');
      const truncated = out.truncated || err.truncated;
      await Promise.all([out.finish(truncated), err.finish(truncated)]);
      const store = combinedStoreState(out.storeState, err.storeState);
      const storedBytes = out.stored + err.stored;
      const ref = store === 'complete' || store === 'capped' ? `/v1/modules/scaibunker/bunkers/${row.id}/exec-logs/${execId}/output` : null;
      const result: schemas.ExecResult = {
        exec_id: execId,
        exit_code: outcome.exitCode,
        signal: outcome.signal,
        stdout: out.text(),
        stderr: err.text(),
        duration_ms: Math.round(outcome.durationMs),
        timed_out: outcome.timedOut,
        truncated,
        full_output_ref: ref,
        output_store: store,
        output_stored_bytes: storedBytes,
      };
      // Returned only once the completed row is committed (or journaled while the database is down).
      const written = this.logs.write({
        ...logRow,
        exit_code: result.exit_code,
        signal: result.signal,
        state: result.timed_out ? 'timed_out' : result.signal !== null ? 'killed' : 'exited',
        timed_out: result.timed_out ? 1 : 0,
        duration_ms: result.duration_ms,
        stdout_preview: out.preview(this.config.execPreviewBytes),
        stderr_preview: err.preview(this.config.execPreviewBytes),
        truncated: truncated ? 1 : 0,
        full_output_ref: ref,
        finished_at: new Date().toISOString(),
        output_store: store,
        output_bytes: storedBytes,
      });
      try {
        await written;
      } finally {
        this.outputs.settle(row.tenant_id, storedBytes);
      }
      trace.mark('controller.exec-log');
      this.bunkers.touch(row.id);
      return result;
    } catch (e) {
      await Promise.all([out.abort(), err.abort()]);
      this.outputs.settle(row.tenant_id, out.stored + err.stored);
      // Whatever failed, the exec keeps its log row (inserted now if its start was never written).
      // The one disconnect rule: a blocking exec whose caller went away was killed with its group.
      const clientGone = sink.signal?.aborted === true;
      await this.logs.write({
        ...logRow,
        stdout_preview: out.preview(this.config.execPreviewBytes),
        stderr_preview: clientGone
          ? err.preview(this.config.execPreviewBytes)
          : `${err.preview(this.config.execPreviewBytes)}[scaibunker: exec did not complete: ${(e as Error).message}]`,
        state: clientGone ? 'killed' : 'lost',
        signal: clientGone ? 'SIGKILL' : null,
        end_reason: clientGone ? 'client_gone' : null,
        finished_at: new Date().toISOString(),
      });
      throw this.bunkers.mapWorkerError(e);
    }
  }

  /** The stored full output of a truncated exec. */
  async output(principal: Principal, bunkerId: string, execId: string, stream: 'stdout' | 'stderr') {
    const log = await this.store.execLogs.get(principal.tenantId, bunkerId, execId);
    if (!log) throw new ApiError('OUTPUT_NOT_FOUND', `no exec ${execId} in bunker ${bunkerId}`);
    const blob = await this.blobs.get(blobKeys.execOutput(bunkerId, execId, stream));
    if (!blob) {
      // Not spilled, or no longer kept: the preview is not the whole output unless the stream was short.
      throw new ApiError(
        'OUTPUT_NOT_FOUND',
        log.output_store === 'expired'
          ? `exec ${execId}'s stored output was deleted after its retention`
          : `exec ${execId} has no stored ${stream} (output_store: ${log.output_store})`,
      );
    }
    return blob;
  }
}
