/**
 * A bunker's root disk: a qcow2 overlay backed by the image's ext4 (never a copy, and the
 * image is never written). Its virtual size is the bunker's disk_mb; the guest's /init grows
 * the ext4 to fill it on first boot.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, rm, stat } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export class RootOverlay {
  private constructor(
    readonly path: string,
    readonly backingPath: string,
    readonly diskMb: number,
  ) {}

  static async create(path: string, backingImage: string, diskMb: number): Promise<RootOverlay> {
    const { size } = await stat(backingImage);
    const minMb = Math.ceil(size / 1048576);
    if (diskMb < minMb) throw new Error(`disk_mb ${diskMb} is smaller than the image (${minMb} MiB)`);
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', backingImage, path, `${diskMb}M`]);
    return new RootOverlay(path, backingImage, diskMb);
  }

  /**
   * The overlay every bunker restored from a snapshot starts with, made once per snapshot:
   * empty, `diskMb` big, backed by the snapshot's disk (itself an overlay over the image), so
   * the restored guest's page cache matches it exactly. `-u`: the backing file is named by the
   * path it will have once the snapshot is in place, which need not exist yet.
   */
  static async createSnapshotTemplate(path: string, futureSnapshotDisk: string, diskMb: number): Promise<void> {
    await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-u', '-b', futureSnapshotDisk, path, `${diskMb}M`]);
  }

  /** A bunker's overlay on a snapshot: a copy of its (empty, ~200 KiB) template overlay. */
  static async createOnSnapshot(path: string, template: string, snapshotDisk: string, diskMb: number): Promise<RootOverlay> {
    await copyFile(template, path);
    await chmod(path, 0o644); // the template is read-only
    return new RootOverlay(path, snapshotDisk, diskMb);
  }

  /** Bytes the overlay occupies on the host (allocated blocks, not the virtual size). */
  async allocatedBytes(): Promise<number> {
    const st = await stat(this.path);
    return st.blocks * 512;
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
