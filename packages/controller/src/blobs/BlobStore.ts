import type { Readable } from 'node:stream';

/** Bytes by key. Local directory when embedded; S3 behind the storage proxy at scale. */
export interface BlobStore {
  /**
   * Streams `data` to `key`; the object appears whole or not at all. `sha256` is kept with the
   * object (what the writer declared; callers that verify it do so on the way in).
   */
  put(key: string, data: Readable | Buffer, opts?: { sha256?: string }): Promise<{ bytes: number }>;
  /** A stream of the object, or undefined when absent. */
  get(key: string): Promise<Readable | undefined>;
  /** Size and stored sha256 of an object, or undefined when absent. */
  stat(key: string): Promise<BlobInfo | undefined>;
  /** The object's bytes `start`..`end` (inclusive; to the end when absent), or undefined when absent. */
  open(key: string, range?: { start: number; end?: number }): Promise<{ body: Readable; info: BlobInfo } | undefined>;
  delete(key: string): Promise<void>;
  /** Objects directly under `prefix` (which ends with `/`), by key ascending, after `startAfter`. */
  list(
    prefix: string,
    opts: { startAfter?: string; limit: number },
  ): Promise<{ items: Array<{ key: string; bytes: number }>; more: boolean }>;
}

export interface BlobInfo {
  /** The whole object's size, whatever range was opened. */
  size: number;
  sha256?: string;
}

/**
 * Throws unless `key` is a valid blob key, the same rule for every backend: `[A-Za-z0-9._/-]`
 * only, `/`-separated segments, none empty or starting with `.` (which also rules out `.` and
 * `..`, and leaves dot-names to a backend's own bookkeeping).
 */
export function checkBlobKey(key: string): string {
  if (!/^[A-Za-z0-9._/-]+$/.test(key) || key.split('/').some((p) => p === '' || p.startsWith('.'))) {
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
  image: (sha256: string) => `scaibunker/images/${sha256}`,
  snapshot: (snapshotId: string) => `scaibunker/snapshots/${snapshotId}`,
};
