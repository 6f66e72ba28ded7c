import { ApiError, type WorkerApi } from '@scaibunker/core';
import { MuxWorkerClient } from '@scaibunker/core/worker-mux-client';
import { isStoreUnavailable } from '../health/failures.js';
import { requestIdHeaders } from '../http/requestContext.js';
import type { Store } from '../store/Store.js';
import type { WorkerRow } from '../store/schema.js';

/** How long a remote worker's address and state are used before its row is read again. */
const ROW_TTL_MS = 2000;

interface Entry {
  /** Absent when the row has no URL (or this controller has no worker token). */
  url: string | undefined;
  client: MuxWorkerClient | undefined;
  state: WorkerRow['state'];
  lastHeartbeatAt: string | null;
  checkedAt: number;
}

/**
 * How the controller reaches a worker by id: the in-process worker of `serve`, or a client of
 * a remote `scaibunker worker` (MuxWorkerClient: calls on one multiplexed connection, streams
 * over HTTP), built from the URL in its row (so any controller reaches any worker, whichever
 * controller its heartbeats go to). The row is re-read at most every 2 s per worker rather than
 * on every exec; a worker that moved to a new URL gets a new client, and the old one's
 * connection ends once the calls in flight on it finish.
 *
 * The row's state comes along: a worker that is `offline` (it missed its heartbeats, and is not
 * yet lost) is unreachable, and every call for it fails at once with WORKER_UNAVAILABLE rather
 * than waiting on a connection to a host that does not answer. This controller's heartbeat route
 * and monitor update the entry as they move the row (`noteState`); other controllers see the
 * move within ROW_TTL_MS.
 */
export class WorkerDirectory {
  private readonly local = new Map<string, WorkerApi>();
  private readonly entries = new Map<string, Entry>();
  /** Row reads in flight: the execs that find an entry expired together share one read. */
  private readonly reading = new Map<string, Promise<Entry | undefined>>();

  constructor(
    private readonly store: Store,
    private readonly workerToken: string | undefined,
  ) {}

  registerLocal(workerId: string, api: WorkerApi): void {
    this.local.set(workerId, api);
  }

  async get(workerId: string): Promise<WorkerApi> {
    const local = this.local.get(workerId);
    if (local) return local;
    const entry = await this.entry(workerId);
    if (entry?.state === 'offline') throw unreachable(workerId, entry.lastHeartbeatAt);
    if (!entry?.client) throw new ApiError('WORKER_UNAVAILABLE', `worker ${workerId} is not reachable`, { worker_id: workerId });
    return entry.client;
  }

  /**
   * Whether each worker is reachable (not `offline`), from the same entries as `get`: at most
   * one row read per worker per ROW_TTL_MS. An id with no row counts as unreachable.
   */
  async reachable(workerIds: Iterable<string>): Promise<Map<string, boolean>> {
    const ids = [...new Set(workerIds)];
    const states = await Promise.all(
      ids.map(async (id) => {
        if (this.local.has(id)) return true;
        const entry = await this.entry(id);
        return entry !== undefined && entry.state !== 'offline';
      }),
    );
    return new Map(ids.map((id, i) => [id, states[i] as boolean]));
  }

  /** The heartbeat route or the monitor on this controller just moved the worker's row. */
  noteState(workerId: string, state: WorkerRow['state'], lastHeartbeatAt: string | null): void {
    const entry = this.entries.get(workerId);
    if (!entry) return;
    entry.state = state;
    entry.lastHeartbeatAt = lastHeartbeatAt;
  }

  private entry(workerId: string): Promise<Entry | undefined> {
    const cached = this.entries.get(workerId);
    if (cached && Date.now() - cached.checkedAt < ROW_TTL_MS) return Promise.resolve(cached);
    let read = this.reading.get(workerId);
    if (!read) {
      read = this.readEntry(workerId, cached).finally(() => this.reading.delete(workerId));
      this.reading.set(workerId, read);
    }
    return read;
  }

  private async readEntry(workerId: string, cached: Entry | undefined): Promise<Entry | undefined> {
    const now = Date.now();
    let row: WorkerRow | undefined;
    try {
      row = await this.store.workers.get(workerId);
    } catch (err) {
      // The database is down: what we had is still the best guess (the worker refuses what it
      // does not run).
      if (cached && isStoreUnavailable(err)) return cached;
      throw err;
    }
    if (!row) {
      cached?.client?.close();
      this.entries.delete(workerId);
      return undefined;
    }
    const url = row.url && this.workerToken ? row.url : undefined;
    const client =
      cached?.client && cached.url === url
        ? cached.client
        : url
          ? new MuxWorkerClient(url, this.workerToken as string, { headers: requestIdHeaders })
          : undefined;
    if (cached?.client && cached.client !== client) cached.client.close();
    const entry: Entry = { url, client, state: row.state, lastHeartbeatAt: row.last_heartbeat_at, checkedAt: now };
    this.entries.set(workerId, entry);
    return entry;
  }
}

/** The answer for any call to a bunker on an offline worker. */
function unreachable(workerId: string, since: string | null): ApiError {
  return new ApiError(
    'WORKER_UNAVAILABLE',
    `the bunker's worker ${workerId} is unreachable since ${since ?? 'an unknown time'} (no heartbeat since then); ` +
      'its bunkers keep their state and answer again when it is back',
    { worker_id: workerId, unreachable_since: since },
  );
}
