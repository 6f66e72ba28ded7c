import type { Readable } from 'node:stream';

/** Bytes by key. Local directory when embedded; S3 behind the storage proxy at scale. */
export interface BlobStore {
  /** Streams `data` to `key`; the object appears whole or not at all. */
  put(key: string, data: Readable | Buffer): Promise<{ bytes: number }>;
  /** A stream of the object, or undefined when absent. */
  get(key: string): Promise<Readable | undefined>;
  delete(key: string): Promise<void>;
  /** Objects directly under `prefix` (which ends with `/`), by key ascending, after `startAfter`. */
  list(
    prefix: string,
    opts: { startAfter?: string; limit: number },
  ): Promise<{ items: Array<{ key: string; bytes: number }>; more: boolean }>;
}

/**
 * Throws unless `key` is a valid blob key, the same rule for every backend: `[A-Za-z0-9._/-]`
 * only, `/`-separated segments, none empty, `.` or `..`.
 */
export function checkBlobKey(key: string): string {
  if (!/^[A-Za-z0-9._/-]+$/.test(key) || key.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new Error(`invalid blob key: ${key}`);
  }
  return key;
}

/** Throws unless `prefix` is a valid key followed by `/` (what `list` takes). */
export function checkBlobPrefix(prefix: string): string {
  if (!prefix.endsWith('/')) throw new Error(`invalid blob prefix: ${prefix}`);
  checkBlobKey(prefix.slice(0, -1));
  return prefix;
}

/** Blob keys, in one place (DESIGN.md "Images and storage"). */
export const blobKeys = {
  execOutput: (bunkerId: string, execId: string, stream: 'stdout' | 'stderr') => `scaibunker/exec-output/${bunkerId}/${execId}/${stream}`,
  auditBatches: (bunkerId: string) => `scaibunker/audit/${bunkerId}/`,
  auditBatch: (bunkerId: string, name: string) => `scaibunker/audit/${bunkerId}/${name}`,
};
