import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { Store } from '../store/Store.js';
import type { ImageRow } from '../store/schema.js';
import type { Scanner } from './scan/Scanner.js';

/** A scan stuck in `scanning` this long lost its controller and is taken over. */
const STALE_SCAN_MS = 30 * 60_000;

/** The daily rescan boundary: 03:17 UTC. */
const RESCAN_HOUR_UTC = 3;
const RESCAN_MINUTE_UTC = 17;

/**
 * Scans images for known vulnerabilities: right after a bake (from the baked file), from the
 * queue (every 2 min: fetches the image from the blob store), and again after 03:17 UTC daily.
 */
export class ImageScanning {
  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly scanner: Scanner,
    private readonly workDir: string,
  ) {}

  /** Scans a file already on this host and records the result on the image row. */
  async scanFile(image: Pick<ImageRow, 'id' | 'sha256'>, ext4Path: string): Promise<'done' | 'failed'> {
    const now = () => new Date().toISOString();
    try {
      const result = await this.scanner.scan({ ext4Path, sha256: image.sha256 as string });
      await this.store.images.finishScan(image.id, 'done', JSON.stringify(result), now());
      return 'done';
    } catch (err) {
      const error = (err as Error).message ?? String(err);
      await this.store.images.finishScan(image.id, 'failed', JSON.stringify({ scanner: this.scanner.name, error }), now());
      return 'failed';
    }
  }

  /** The scan queue: every image whose scan is pending, one after another. */
  async drain(): Promise<{ scanned: string[]; failed: string[] }> {
    const out = { scanned: [] as string[], failed: [] as string[] };
    for (;;) {
      const now = Date.now();
      const image = await this.store.images.claimScan(new Date(now).toISOString(), new Date(now - STALE_SCAN_MS).toISOString());
      if (!image?.sha256) return out;
      const outcome = await this.scanFromStore(image);
      (outcome === 'done' ? out.scanned : out.failed).push(image.id);
    }
  }

  /** Marks for rescanning every image last scanned before the most recent 03:17 UTC. */
  async requestDailyRescans(now = new Date()): Promise<number> {
    return this.store.images.requestRescans(lastRescanBoundary(now).toISOString(), now.toISOString());
  }

  private async scanFromStore(image: ImageRow): Promise<'done' | 'failed'> {
    const dir = join(this.workDir, 'scan');
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${image.sha256}.${process.pid}.ext4`);
    try {
      const blob = await this.blobs.get(blobKeys.image(image.sha256 as string));
      if (!blob) {
        await this.store.images.finishScan(
          image.id,
          'failed',
          JSON.stringify({ scanner: this.scanner.name, error: 'the image is not in the blob store' }),
          new Date().toISOString(),
        );
        return 'failed';
      }
      await pipeline(blob, createWriteStream(file));
      return await this.scanFile(image, file);
    } catch (err) {
      const error = `fetching the image to scan it failed: ${(err as Error).message}`;
      await this.store.images.finishScan(
        image.id,
        'failed',
        JSON.stringify({ scanner: this.scanner.name, error }),
        new Date().toISOString(),
      );
      return 'failed';
    } finally {
      await rm(file, { force: true });
    }
  }
}

/** The latest 03:17 UTC at or before `now`. */
export function lastRescanBoundary(now: Date): Date {
  const b = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), RESCAN_HOUR_UTC, RESCAN_MINUTE_UTC));
  if (b.getTime() > now.getTime()) b.setUTCDate(b.getUTCDate() - 1);
  return b;
}
