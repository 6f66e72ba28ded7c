import { setTimeout as delay } from 'node:timers/promises';
import { connectionFailed, errorFromApi, errorFromResponseBody, type ScaiBunkerError, UnavailableError } from './errors.js';
import type { HttpTransport } from './HttpTransport.js';
import { readSseEvents, type SseEvent } from './SseParser.js';
import type { ProcessInfo } from './types.js';

/** A piece of a process's output. `seq` is its journal sequence number (null: an exec-log preview, see docs/API.md). */
export interface ProcessOutputEvent {
  type: 'stdout' | 'stderr';
  data: string;
  seq: number | null;
}

/** The last event: the process as it ended. */
export interface ProcessExitEvent {
  type: 'exit';
  process: ProcessInfo;
}

export type ProcessEvent = ProcessOutputEvent | ProcessExitEvent;

export interface ProcessEventsOptions {
  /** First sequence number to read (default 1: all the worker still journals). */
  from?: number;
  signal?: AbortSignal;
  /** Reconnections in a row that deliver nothing before the dropped connection is thrown (default 5). */
  maxReconnects?: number;
}

/** Waits between reconnections that delivered nothing: 0, 200, 400, 800 ms …, at most 3 s. */
function backoffMs(attemptsWithoutProgress: number): number {
  return attemptsWithoutProgress <= 1 ? 0 : Math.min(3000, 200 * 2 ** (attemptsWithoutProgress - 2));
}

function isDroppedConnection(err: unknown): err is ScaiBunkerError {
  return err instanceof UnavailableError && err.code === 'CONNECTION_FAILED';
}

function eventData<T>(event: SseEvent): T {
  try {
    return JSON.parse(event.data) as T;
  } catch {
    throw errorFromResponseBody(502, `malformed data in process event '${event.event}': ${event.data.slice(0, 200)}`);
  }
}

/**
 * A process's output events and then its exit, from `GET …/execs/{exec_id}/events`. The worker
 * journals output by sequence number, so a dropped connection loses nothing: the stream is
 * reopened with `from` = the last sequence number seen + 1. Output without a sequence number
 * (the exec-log previews of an exec the worker no longer journals) cannot be resumed past, so
 * a drop after it is thrown rather than risking duplicated output.
 */
export async function* followProcessEvents(
  transport: HttpTransport,
  bunkerId: string,
  execId: string,
  opts: ProcessEventsOptions = {},
): AsyncGenerator<ProcessEvent> {
  let from = opts.from ?? 1;
  const maxReconnects = opts.maxReconnects ?? 5;
  let deliveredUnsequenced = false;
  let attemptsWithoutProgress = 0;
  for (;;) {
    let progressed = false;
    let dropped: ScaiBunkerError;
    try {
      const res = await transport.request('get', '/v1/modules/scaibunker/bunkers/{id}/execs/{exec_id}/events', {
        path: { id: bunkerId, exec_id: execId },
        query: { from },
        headers: { accept: 'text/event-stream' },
        signal: opts.signal,
      });
      for await (const event of readSseEvents(transport.bodyChunks(res))) {
        if (event.event === 'stdout' || event.event === 'stderr') {
          const seq = event.id === undefined || event.id === '' ? null : Number(event.id);
          // A server that replays from earlier than asked must not make the caller see output twice.
          if (seq !== null && seq < from) continue;
          const data = eventData<{ data: string }>(event).data;
          progressed = true;
          if (seq === null) deliveredUnsequenced = true;
          else from = seq + 1;
          yield { type: event.event, data, seq };
        } else if (event.event === 'exit') {
          yield { type: 'exit', process: eventData<ProcessInfo>(event) };
          return;
        } else if (event.event === 'error') {
          throw errorFromApi(undefined, eventData<{ code: string; message?: string; details?: Record<string, unknown> }>(event));
        }
        // Other events (future additions) are ignored.
      }
      dropped = connectionFailed(`the event stream of exec ${execId} ended before its exit event`);
    } catch (err) {
      if (!isDroppedConnection(err)) throw err;
      dropped = err;
    }
    if (deliveredUnsequenced) throw dropped;
    attemptsWithoutProgress = progressed ? 1 : attemptsWithoutProgress + 1;
    if (attemptsWithoutProgress > maxReconnects) throw dropped;
    const wait = backoffMs(attemptsWithoutProgress);
    if (wait > 0) await delay(wait, undefined, opts.signal ? { signal: opts.signal } : {});
  }
}
