/**
 * The root disks of cold-booted bunkers: an empty qcow2 overlay (RootOverlay.create) is the
 * same bytes for every bunker of one image and disk size, so it is made with `qemu-img` once
 * per (image, disk_mb) and copied (~200 KiB) for each bunker instead of running `qemu-img`
 * per boot (a fork+exec, 10–80 ms on a loaded host, on the path before QEMU starts).
 *
 * Bunkers own their copies (nothing is backed by a template), so the directory can go at any
 * time: init() empties it, which also drops the templates of images gone since the last start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { RootOverlay } from './RootOverlay.js';

export class EmptyOverlays {
  constructor(private readonly dir: string) {}

  async init(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Writes a bunker's empty overlay of `diskMb` over `image` to `path`. */
  async create(path: string, image: string, diskMb: number): Promise<void> {
    // the image's size is checked per bunker, as RootOverlay.create does
    const minMb = Math.ceil((await stat(image)).size / 1048576);
    if (diskMb < minMb) throw new Error(`disk_mb ${diskMb} is smaller than the image (${minMb} MiB)`);
    // An empty overlay holds its backing file's path and format and its own size, nothing of
    // the backing file's contents: the path and size are the whole key.
    const template = join(this.dir, `${createHash('sha256').update(image).digest('hex').slice(0, 32)}-${diskMb}.qcow2`);
    try {
      if (!(await exists(template))) await make(template, image, diskMb);
      await copyFile(template, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      // the directory was emptied under us (another provider's init() on this data dir)
      await RootOverlay.create(path, image, diskMb);
      return;
    }
    await chmod(path, 0o644);
  }
}

/** Made aside and renamed into place: concurrent first boots of a shape race harmlessly. */
async function make(template: string, image: string, diskMb: number): Promise<void> {
  await mkdir(dirname(template), { recursive: true, mode: 0o700 });
  const tmp = `${template}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await RootOverlay.create(tmp, image, diskMb);
    await chmod(tmp, 0o444);
    await rename(tmp, template);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
