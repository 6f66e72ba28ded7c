import { errorFromApi, type ScaiBunkerError } from './errors.js';
import type { HttpTransport } from './HttpTransport.js';
import { type Page, Paginator } from './Paginator.js';
import type { Snapshot } from './types.js';

const BASE = '/v1/modules/scaibunker/snapshots';

export interface ListSnapshotsOptions {
  /** Only this bunker's snapshots. */
  bunkerId?: string;
  /** Snapshots per page (1–200, default 50). */
  limit?: number;
  /** Start at this page (a `nextCursor` from an earlier page). */
  cursor?: string;
}

/** The tenant's snapshots (`scaibunker:read`; delete needs `scaibunker:create`). */
export class SnapshotsApi {
  constructor(private readonly transport: HttpTransport) {}

  /** Newest first, fetched a page at a time as they are iterated (`for await`), or `.page()`. */
  list(opts: ListSnapshotsOptions = {}): Paginator<Snapshot> {
    return new Paginator(async (cursor): Promise<Page<Snapshot>> => {
      const page = await this.transport.json('get', BASE, {
        query: {
          ...(opts.bunkerId ? { bunker_id: opts.bunkerId } : {}),
          ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
          ...(cursor !== undefined ? { cursor } : {}),
        },
      });
      return { items: page.items, nextCursor: page.next_cursor };
    }, opts.cursor);
  }

  get(snapshotId: string): Promise<Snapshot> {
    return this.transport.json('get', `${BASE}/{id}`, { path: { id: snapshotId } });
  }

  /** Deletes it and its archive; ConflictError (SNAPSHOT_IN_USE) while it is written or a bunker needs it. */
  async delete(snapshotId: string): Promise<void> {
    await this.transport.json('delete', `${BASE}/{id}`, { path: { id: snapshotId } });
  }

  /**
   * Resolves with the snapshot once it is `ready`; a `failed` one rejects with the error it
   * failed with (SNAPSHOT_FAILED, QUOTA_EXCEEDED, …). The API has no completion event, so this
   * polls, 50 ms at first and backing off to 1 s, calling `onProgress` with every state read.
   */
  async waitReady(snapshotId: string, opts: { signal?: AbortSignal; onProgress?: (snapshot: Snapshot) => void } = {}): Promise<Snapshot> {
    for (let delay = 50; ; delay = Math.min(1000, delay * 2)) {
      const s = await this.get(snapshotId);
      opts.onProgress?.(s);
      if (s.state === 'ready') return s;
      if (s.state === 'failed') throw snapshotError(s);
      opts.signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** A failed snapshot as the error it failed with (`CODE: message` in its `error`). */
function snapshotError(s: Snapshot): ScaiBunkerError {
  const text = s.error ?? 'the snapshot failed';
  const m = /^([A-Z_]+): (.*)$/s.exec(text);
  return errorFromApi(undefined, { code: m?.[1] ?? 'SNAPSHOT_FAILED', message: m?.[2] ?? text, details: { snapshot_id: s.id } });
}
