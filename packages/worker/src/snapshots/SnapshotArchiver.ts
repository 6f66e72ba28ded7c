/**
 * Bunker snapshots, worker side: the provider's writable layer → zstd → sha256 + byte count on
 * the way → `ControllerLink.putSnapshot`, streamed end to end (never whole in memory). Any
 * failure errors the stream the link reads, so the link's atomic put stores nothing.
 */
import { createHash } from 'node:crypto';
import { pipeline, Transform } from 'node:stream';
import type { AgentClient } from '../agent/AgentClient.js';
import type { Provider } from '../providers/Provider.js';
import { type ControllerLink, type SnapshotResult, WorkerError } from '../WorkerApi.js';
import { zstdCompressor } from './Compressor.js';

export interface ArchiveOptions {
  provider: Provider;
  bunkerId: string;
  snapshotId: string;
  link: ControllerLink;
  /** Aborting (the bunker is being destroyed) errors the archive stream: nothing is stored. */
  signal: AbortSignal;
}

/** sha256 and length of the bytes that pass through. */
export class Meter extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

/**
 * Archives the bunker's writable layer and stores it; resolves once the link stored it whole.
 * Throws WorkerError SNAPSHOT_FAILED (or HOST_DISK_FULL when the host ran out of space on the
 * way) and then nothing was stored.
 */
export async function archiveLayer(o: ArchiveOptions): Promise<SnapshotResult> {
  const zstd = zstdCompressor();
  const meter = new Meter();
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    const e = err instanceof Error ? err : new Error(String(err));
    zstd.destroy(e);
    meter.destroy(e);
  };
  pipeline(zstd.output, meter, () => {});
  const onAbort = () => fail(o.signal.reason ?? new Error('snapshot aborted'));
  if (o.signal.aborted) onAbort();
  else o.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const put = o.link.putSnapshot(o.snapshotId, meter).catch((err: unknown) => {
      fail(err);
      throw err;
    });
    const write = o.provider.writeLayer(o.bunkerId, zstd.input).then(
      (format) => {
        zstd.end();
        return format;
      },
      (err: unknown) => {
        fail(err);
        throw err;
      },
    );
    const [written, stored] = await Promise.allSettled([write, put]);
    if (written.status === 'rejected' || stored.status === 'rejected') throw failure ?? (written as PromiseRejectedResult).reason;
    // A link that resolved without reading to the end stored a short object: refuse to call it one.
    if (!meter.readableEnded) throw new Error('the store returned before it read the whole archive');
    return { snapshotId: o.snapshotId, sha256: meter.digest(), sizeBytes: meter.bytes, format: written.value };
  } catch (err) {
    throw snapshotError(o, err);
  } finally {
    o.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Asks a VM's guest to write its page cache to its disk before the provider reads the disk
 * (the provider only stops the VM, which flushes the block layer, not the guest's cache).
 * A guest without `sync` still gets a crash-consistent disk: warned, not failed.
 */
export async function syncGuest(agent: AgentClient, warn: (m: string) => void): Promise<void> {
  try {
    const r = await agent.exec({ argv: ['sync'], timeoutMs: 60_000 });
    if (r.exitCode !== 0) warn(`guest sync exited ${r.exitCode ?? r.signal}: the snapshot is crash-consistent only`);
  } catch (err) {
    warn(`guest sync failed (${(err as Error).message}): the snapshot is crash-consistent only`);
  }
}

function snapshotError(o: ArchiveOptions, err: unknown): WorkerError {
  if (err instanceof WorkerError && (err.code === 'SNAPSHOT_FAILED' || err.code === 'HOST_DISK_FULL')) return err;
  const message = messageOf(err);
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || /No space left on device/i.test(message))
    return new WorkerError('HOST_DISK_FULL', `snapshot ${o.snapshotId} of ${o.bunkerId}: no space left on this worker: ${message}`);
  return new WorkerError('SNAPSHOT_FAILED', `snapshot ${o.snapshotId} of ${o.bunkerId} failed: ${message}`);
}

function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const details = (err as { details?: unknown }).details;
    return typeof details === 'string' && details ? `${err.message}: ${details.trim()}` : err.message;
  }
  return String(err);
}
