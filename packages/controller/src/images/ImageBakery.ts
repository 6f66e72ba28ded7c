import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { Store } from '../store/Store.js';
import type { ImageRow } from '../store/schema.js';
import { BakeError } from './bake/BakeError.js';
import { bakeImage } from './bake/bakeImage.js';
import type { BakeProgress, ImageSource } from './bake/types.js';
import type { ImageScanning } from './ImageScanning.js';

export interface ImageBakeryOptions {
  /** This controller process: the claim it writes on an image it bakes. */
  holder: string;
  /** Scratch space for bakes (layers, rootfs, the ext4 before upload). */
  workDir: string;
  /** Injected into every image as /.scaibunker/agent. */
  agentBinary: string;
  /** `host:port` of registries reached over plain http (a local test or mirror registry). */
  insecureRegistries?: string[];
  /** A bake that has not reported for this long lost its controller and is taken over (default 2 min). */
  staleMs?: number;
  log?: (message: string) => void;
}

/** How often a bake's progress reaches its row, at most (every report also renews the claim). */
const PROGRESS_EVERY_MS = 1000;
/** A bake renews its claim this often even when a phase reports nothing (mkfs of a big image). */
const KEEPALIVE_MS = 20_000;

/**
 * Bakes registered images: claims one (compare-and-set on the row), bakes it to an ext4 named
 * by its sha256, uploads that to the blob store with its checksum, scans it, and marks the
 * image ready — or failed with the reason. Progress lands on the row while it works. A
 * controller that dies mid-bake stops renewing its claim, and another takes the image over.
 */
export class ImageBakery {
  private draining: Promise<{ baked: string[]; failed: string[] }> | undefined;
  private again = false;
  private readonly aborts = new Set<AbortController>();

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly scanning: ImageScanning,
    private readonly opts: ImageBakeryOptions,
  ) {}

  /** Starts draining in the background (after a registration), unless already draining. */
  kick(): void {
    void this.drain().catch((err) => this.log(`image bake failed: ${(err as Error).message}`));
  }

  /** Bakes every claimable image, one after another. Concurrent calls share one drain. */
  async drain(): Promise<{ baked: string[]; failed: string[] }> {
    if (this.draining) {
      this.again = true;
      return this.draining;
    }
    this.draining = (async () => {
      const out = { baked: [] as string[], failed: [] as string[] };
      try {
        do {
          this.again = false;
          for (;;) {
            const now = Date.now();
            const image = await this.store.images.claimBake(
              this.opts.holder,
              new Date(now).toISOString(),
              new Date(now - (this.opts.staleMs ?? 120_000)).toISOString(),
            );
            if (!image) break;
            (await this.bakeOne(image)) ? out.baked.push(image.id) : out.failed.push(image.id);
          }
        } while (this.again);
      } finally {
        this.draining = undefined;
      }
      return out;
    })();
    return this.draining;
  }

  /** Stops bakes in progress (controller shutdown); their claims lapse and another controller resumes them. */
  async close(): Promise<void> {
    for (const a of this.aborts) a.abort();
    await this.draining?.catch(() => undefined);
  }

  private async bakeOne(image: ImageRow): Promise<boolean> {
    const abort = new AbortController();
    this.aborts.add(abort);
    const holder = this.opts.holder;
    let last: BakeProgress = { phase: 'resolving' };
    let lastWrite = 0;
    let writing: Promise<unknown> = Promise.resolve();
    const report = (p: BakeProgress, force = false) => {
      last = p;
      const now = Date.now();
      if (!force && now - lastWrite < PROGRESS_EVERY_MS) return;
      lastWrite = now;
      writing = writing
        .then(() => this.store.images.reportProgress(image.id, holder, JSON.stringify(p), new Date().toISOString()))
        .then((kept) => {
          // Taken over or deleted: stop, the other side owns the image now.
          if (kept === false) abort.abort();
        })
        .catch((err) => this.log(`image ${image.id}: progress not recorded: ${(err as Error).message}`));
    };
    const keepalive = setInterval(() => report(last, true), KEEPALIVE_MS);
    keepalive.unref();
    const outputDir = join(this.opts.workDir, 'out');
    let ext4Path: string | undefined;
    try {
      await mkdir(outputDir, { recursive: true });
      report({ phase: 'resolving' }, true);
      const source = JSON.parse(image.source ?? 'null') as ImageSource | null;
      if (!source) throw new BakeError('INVALID_SOURCE', 'the image has no source to bake from');
      const result = await bakeImage({
        source,
        workDir: join(this.opts.workDir, 'work'),
        outputDir,
        agentBinary: this.opts.agentBinary,
        label: image.name,
        insecureRegistries: this.opts.insecureRegistries ?? [],
        onProgress: (p) => report(p),
        signal: abort.signal,
      });
      ext4Path = result.ext4Path;
      report({ phase: 'uploading', done: 0, total: result.sizeBytes } as unknown as BakeProgress, true);
      await this.blobs.put(blobKeys.image(result.sha256), createReadStream(result.ext4Path), { sha256: result.sha256 });
      await writing;
      const finished = await this.store.images.finishBake(
        image.id,
        holder,
        { sha256: result.sha256, size_bytes: result.sizeBytes },
        new Date().toISOString(),
      );
      if (!finished) return false;
      // The scan queue may have claimed it first; either way it is scanned once.
      const claimed = await this.store.images.claimScan(new Date().toISOString(), new Date(0).toISOString(), image.id);
      if (claimed) await this.scanning.scanFile({ id: image.id, sha256: result.sha256 }, result.ext4Path);
      this.log(`image ${image.name} (${image.id}) ready: sha256 ${result.sha256}, ${result.sizeBytes} bytes`);
      return true;
    } catch (err) {
      await writing;
      if (abort.signal.aborted) return false;
      const failure = err instanceof BakeError ? `${err.reason}: ${err.message}` : `INTERNAL: ${(err as Error).message ?? String(err)}`;
      await this.store.images.failBake(image.id, holder, failure, new Date().toISOString());
      this.log(`image ${image.name} (${image.id}) failed: ${failure}`);
      return false;
    } finally {
      clearInterval(keepalive);
      this.aborts.delete(abort);
      if (ext4Path) await rm(ext4Path, { force: true });
    }
  }

  private log(message: string): void {
    (this.opts.log ?? ((m) => console.error(`[images] ${m}`)))(message);
  }
}
