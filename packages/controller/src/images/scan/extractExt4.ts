import { constants } from 'node:fs';
import { chown, open, readdir } from 'node:fs/promises';
import { resolve as resolveHostPath } from 'node:path';
import { runBounded } from './runBounded.js';

export interface ExtractExt4Options {
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  debugfsPath?: string | undefined;
  /** Who writes the files when we are root; `nobody` by default. */
  unprivileged?: { uid: number; gid: number };
}

const NOBODY = { uid: 65534, gid: 65534 };

/**
 * Copies an ext4 image's whole tree into the empty directory `destDir` without mounting it
 * (`debugfs -R 'rdump / DIR'`), for tools that want a plain directory (trivy rootfs).
 *
 * A crafted image can make rdump write through a symlink it has just created (two directory
 * entries with one name), so when we are root the copy runs as an unprivileged user that owns
 * only `destDir`: it can then only write where nobody may write anyway. That user cannot reach
 * our private temp directories, so the image goes to it as an open file descriptor (`/dev/fd/3`)
 * and it starts inside `destDir`. Setuid bits and ownership from the image are not reproduced (no privilege to).
 * Not bounded: the unpacked size (sparse files in the image can be far larger than the image);
 * put `destDir` on a filesystem where running out of space is harmless.
 */
export async function extractExt4(ext4Path: string, destDir: string, opts: ExtractExt4Options = {}): Promise<void> {
  const dest = resolveHostPath(destDir);
  if ((await readdir(dest)).length > 0) throw new Error(`${dest} is not empty`);
  const asRoot = process.getuid?.() === 0;
  const user = opts.unprivileged ?? NOBODY;
  const image = await open(resolveHostPath(ext4Path), constants.O_RDONLY);
  try {
    if (asRoot) await chown(dest, user.uid, user.gid);
    // The child starts in `dest` (chdir happens before it drops privileges), so it needs no access
    // to the private directories above it, and rdump writes to ".".
    const out = await runBounded(opts.debugfsPath ?? 'debugfs', ['-c', '-R', 'rdump "/" "."', '/dev/fd/3'], {
      cwd: dest,
      maxStdoutBytes: 1024 * 1024,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? 10 * 60_000,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', DEBUGFS_PAGER: '__none__', PAGER: '__none__', LANG: 'C' },
      extraFds: [image.fd],
      ...(asRoot ? user : {}),
    });
    // debugfs exits 0 even when it could not open the image; an empty result is the tell.
    if ((await readdir(dest)).length === 0) throw new Error(`debugfs extracted nothing from ${ext4Path}: ${out.stderr.trim().slice(-500)}`);
  } finally {
    await image.close();
  }
}
