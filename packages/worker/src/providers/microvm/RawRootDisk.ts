/**
 * A bunker's root disk for a VMM that reads raw files only (Firecracker): the image's ext4
 * copied copy-on-write where the filesystem can (`cp --reflink=auto`, else sparse), then grown
 * to the bunker's disk_mb (the guest's /init grows the ext4 to fill it). The image itself is
 * never handed to the VMM.
 */
import { execFile } from 'node:child_process';
import { stat, truncate } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export class RawRootDisk {
  static async create(path: string, image: string, diskMb: number): Promise<void> {
    const { size } = await stat(image);
    const minMb = Math.ceil(size / 1048576);
    if (diskMb < minMb) throw new Error(`disk_mb ${diskMb} is smaller than the image (${minMb} MiB)`);
    await execFileP('cp', ['--reflink=auto', '--sparse=always', image, path]);
    await truncate(path, diskMb * 1048576);
  }
}
