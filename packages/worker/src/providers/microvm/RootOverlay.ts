/**
 * A bunker's root disk: a qcow2 overlay backed by the image's ext4 (never a copy, and the
 * image is never written). Its virtual size is the bunker's disk_mb; the guest's /init grows
 * the ext4 to fill it on first boot.
 */
import { execFile } from 'node:child_process';
import { chmod, copyFile, rename, rm, stat } from 'node:fs/promises';
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

  /**
   * A bunker's overlay made from a snapshot's disk delta (a qcow2 written by `exportDelta` on
   * any worker): moved (or copied) to `path`, re-pointed at this worker's image file whatever
   * backing name it carries (`rebase -u`: the delta is over the raw image by construction), and
   * grown to `diskMb`. Throws RestoreArchiveError when the file is not a plain qcow2 (an
   * external data file would make QEMU open a host path of the archive's choosing) or is
   * corrupt; a plain Error when it is bigger than `diskMb`.
   */
  static async fromDelta(path: string, delta: string, image: string, diskMb: number): Promise<RootOverlay> {
    try {
      await rename(delta, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
      await copyFile(delta, path);
    }
    let info: QemuImgInfo;
    try {
      info = await qemuImgInfo(path, 'qcow2');
    } catch (e) {
      throw new RestoreArchiveError(`not a qcow2 disk delta: ${errText(e)}`);
    }
    if (info.format !== 'qcow2') throw new RestoreArchiveError(`not a qcow2 disk delta (${info.format})`);
    if (info['format-specific']?.data?.['data-file'] !== undefined)
      throw new RestoreArchiveError('the disk delta names an external data file');
    const want = diskMb * 1048576;
    if (info['virtual-size'] > want)
      throw new Error(`the snapshot's disk (${Math.ceil(info['virtual-size'] / 1048576)} MiB) is bigger than disk_mb ${diskMb}`);
    try {
      // re-pointed first: check opens the backing file, and the archived name may not exist here
      await execFileP('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', image, '-F', 'raw', path]);
    } catch (e) {
      throw new RestoreArchiveError(`the disk delta cannot be re-pointed at the image: ${errText(e)}`);
    }
    try {
      await execFileP('qemu-img', ['check', '-q', '-f', 'qcow2', path]);
    } catch (e) {
      // 3: leaked clusters only (harmless); 2: corrupt; anything else: unreadable
      if ((e as { code?: number }).code !== 3) throw new RestoreArchiveError(`the disk delta does not check: ${errText(e)}`);
    }
    if (info['virtual-size'] < want) await execFileP('qemu-img', ['resize', '-q', '-f', 'qcow2', path, `${diskMb}M`]);
    return new RootOverlay(path, image, diskMb);
  }

  /**
   * Makes `copy` (a byte copy of a bunker's overlay, taken while its VM was stopped) a delta
   * over the raw `image` alone: an overlay started on a memory snapshot is backed by the
   * snapshot's disk, whose data the safe rebase folds in (it compares old and new backing
   * cluster by cluster; a plain `convert -B` would drop the snapshot disk's clusters).
   */
  static async exportDelta(copy: string, image: string): Promise<void> {
    const info = await qemuImgInfo(copy, 'qcow2');
    if (info['backing-filename'] === image && info['backing-filename-format'] === 'raw') return;
    await execFileP('qemu-img', ['rebase', '-q', '-f', 'qcow2', '-b', image, '-F', 'raw', copy]);
  }

  /** The file at the bottom of an overlay's backing chain (the image), read without taking QEMU's locks. */
  static async baseOf(path: string): Promise<string> {
    const { stdout } = await execFileP('qemu-img', ['info', '-U', '--backing-chain', '--output=json', path], { maxBuffer: 1 << 20 });
    const chain = JSON.parse(stdout) as QemuImgInfo[];
    const last = chain.at(-1);
    if (!last?.filename || chain.length < 2) throw new Error(`${path} has no backing file`);
    return last.filename;
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

/** A restore archive that is not a usable disk delta (the worker reports SNAPSHOT_CORRUPT). */
export class RestoreArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreArchiveError';
  }
}

interface QemuImgInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { type?: string; data?: { 'data-file'?: string } };
}

/** `qemu-img info` of one file (its backing is not opened). */
async function qemuImgInfo(path: string, format: string): Promise<QemuImgInfo> {
  const { stdout } = await execFileP('qemu-img', ['info', '-U', '-f', format, '--output=json', path], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout) as QemuImgInfo;
}

function errText(e: unknown): string {
  const err = e as { stderr?: string; message?: string };
  return (err.stderr?.trim() || err.message || String(e)).slice(0, 500);
}
