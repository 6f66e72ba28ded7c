import type { Readable } from 'node:stream';
import { ApiError } from '@scaibunker/core';
import { DependencyState } from '../health/DependencyState.js';
import { isBlobStoreOutage, isOutOfSpace } from '../health/failures.js';
import type { BlobInfo, BlobStore } from './BlobStore.js';

/**
 * A blob store whose failures have codes: a full disk is `INSUFFICIENT_STORAGE`, a store that
 * cannot be reached (S3 down, refusing, answering 5xx) `BLOB_STORE_UNAVAILABLE`, both reported
 * to `state`. Backends already leave nothing partial behind a failed put (a temp file removed,
 * a multipart upload never completed). Errors of a stream already handed out (a read cut
 * short) are the reader's: they end that response, never the process.
 */
export class GuardedBlobStore implements BlobStore {
  constructor(
    readonly inner: BlobStore,
    readonly state: DependencyState,
  ) {}

  put(key: string, data: Readable | Buffer, opts?: { sha256?: string }): Promise<{ bytes: number }> {
    return this.guard(() => this.inner.put(key, data, opts));
  }

  get(key: string): Promise<Readable | undefined> {
    return this.guard(() => this.inner.get(key));
  }

  stat(key: string): Promise<BlobInfo | undefined> {
    return this.guard(() => this.inner.stat(key));
  }

  open(key: string, range?: { start: number; end?: number }): Promise<{ body: Readable; info: BlobInfo } | undefined> {
    return this.guard(() => this.inner.open(key, range));
  }

  delete(key: string): Promise<void> {
    return this.guard(() => this.inner.delete(key));
  }

  list(
    prefix: string,
    opts: { startAfter?: string; limit: number },
  ): Promise<{ items: Array<{ key: string; bytes: number }>; more: boolean }> {
    return this.guard(() => this.inner.list(prefix, opts));
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (isOutOfSpace(err)) {
        throw new ApiError('INSUFFICIENT_STORAGE', 'the blob store has no space left; nothing was stored', { dependency: 'blob_store' });
      }
      if (isBlobStoreOutage(err)) {
        this.state.down(err);
        throw new ApiError('BLOB_STORE_UNAVAILABLE', 'the blob store cannot be reached right now; retry shortly', {
          dependency: 'blob_store',
        });
      }
      throw err;
    }
    this.state.up();
    return result;
  }
}

/** The store itself when already guarded (a composition root may pass one in), else a guarded one. */
export function guardBlobStore(store: BlobStore, state?: DependencyState): GuardedBlobStore {
  if (store instanceof GuardedBlobStore) return store;
  return new GuardedBlobStore(store, state ?? new DependencyState('blob_store'));
}
