/**
 * Spawning from a snapshot, worker side: the stored archive is streamed from the link, its
 * compressed bytes hashed and counted, decompressed into a file under the worker's data dir
 * (never inside a bunker), and the path handed to the provider. The caller removes the file.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createZstdDecompress } from 'node:zlib';
import type { LayerFormat } from '../providers/Provider.js';
import { type ControllerLink, type SnapshotRef, WorkerError } from '../WorkerApi.js';
import { ZSTD_CHUNK } from './Compressor.js';
import { Meter } from './SnapshotArchiver.js';

const EXTENSION: Record<LayerFormat, string> = { 'container-tar': 'tar', 'microvm-qcow2': 'qcow2' };

export interface FetchArchiveOptions {
  link: ControllerLink;
  ref: SnapshotRef;
  bunkerId: string;
  /** Where the decompressed archive is written (`<data-dir>/restores`). */
  dir: string;
  /** The most decompressed bytes accepted: more is SNAPSHOT_CORRUPT (a layer cannot be that big). */
  maxBytes: number;
}

/**
 * Fetches, verifies and decompresses a snapshot archive into `<dir>/<bunkerId>.<ext>` and
 * returns its path. SNAPSHOT_NOT_FOUND when storage has none; SNAPSHOT_CORRUPT when its bytes
 * do not hash to the ref's sha256 or size, or do not decompress; HOST_DISK_FULL on ENOSPC;
 * SPAWN_FAILED when the download itself fails. Leaves no file behind when it throws.
 */
export async function fetchArchive(o: FetchArchiveOptions): Promise<string> {
  const path = join(o.dir, `${o.bunkerId}.${EXTENSION[o.ref.format as LayerFormat]}`);
  await mkdir(o.dir, { recursive: true, mode: 0o700 });
  await rm(path, { force: true });
  let source: Readable;
  try {
    source = await o.link.openSnapshot(o.ref.snapshotId);
  } catch (err) {
    if (err instanceof WorkerError && err.code === 'SNAPSHOT_NOT_FOUND') throw err;
    throw new WorkerError('SPAWN_FAILED', `fetching snapshot ${o.ref.snapshotId}: ${(err as Error).message ?? String(err)}`);
  }
  const meter = new Meter();
  const overCompressed = cap(() => meter.bytes > o.ref.sizeBytes, `more than the ${o.ref.sizeBytes} bytes recorded`);
  const decompress = createZstdDecompress({ chunkSize: ZSTD_CHUNK });
  let unpacked = 0;
  const overUnpacked = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      unpacked += chunk.length;
      if (unpacked > o.maxBytes) cb(new CorruptArchive(`it decompresses to more than ${o.maxBytes} bytes`));
      else cb(null, chunk);
    },
  });
  const out = createWriteStream(path, { mode: 0o600 });
  let stage: 'source' | 'decompress' | 'write' | undefined;
  source.once('error', () => {
    stage ??= 'source';
  });
  decompress.once('error', () => {
    stage ??= 'decompress';
  });
  out.once('error', () => {
    stage ??= 'write';
  });
  try {
    await pipeline(source, meter, overCompressed, decompress, overUnpacked, out);
    const sha256 = meter.digest();
    if (meter.bytes !== o.ref.sizeBytes) throw new CorruptArchive(`it is ${meter.bytes} bytes, not the ${o.ref.sizeBytes} recorded`);
    if (sha256 !== o.ref.sha256) throw new CorruptArchive(`its sha256 is ${sha256}, not the ${o.ref.sha256} recorded`);
    return path;
  } catch (err) {
    await rm(path, { force: true }).catch(() => {});
    const what = `snapshot ${o.ref.snapshotId}`;
    if (err instanceof CorruptArchive) throw new WorkerError('SNAPSHOT_CORRUPT', `${what} is corrupt: ${err.message}`);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT')
      throw new WorkerError('HOST_DISK_FULL', `${what}: no space left on this worker to unpack it`);
    if (stage === 'decompress')
      throw new WorkerError('SNAPSHOT_CORRUPT', `${what} is corrupt: it does not decompress (${(err as Error).message})`);
    if (stage === 'write') throw new WorkerError('SPAWN_FAILED', `${what}: writing ${path}: ${(err as Error).message}`);
    throw new WorkerError('SPAWN_FAILED', `${what}: download failed: ${(err as Error).message}`);
  }
}

class CorruptArchive extends Error {}

/** Passes bytes through until `over()` says too many came. */
function cap(over: () => boolean, what: string): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (over()) cb(new CorruptArchive(`it holds ${what}`));
      else cb(null, chunk);
    },
  });
}
