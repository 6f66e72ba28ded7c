import { constants, type Stats } from 'node:fs';
import { lstat, open, opendir, readlink } from 'node:fs/promises';
import { join, resolve as resolveHostPath } from 'node:path';
import {
  DEFAULT_READ_LIMITS,
  MAX_SYMLINK_HOPS,
  normalizeRootfsPath,
  type RootfsEntry,
  type RootfsReader,
  type RootfsReadLimits,
  resolveLinkTarget,
} from './RootfsReader.js';

/**
 * Reads an unpacked root filesystem in a host directory (bake time, tests). Paths resolve one
 * component at a time with lstat, and every symlink is re-interpreted inside `rootDir` as a chroot
 * would, so `/etc/os-release -> ../usr/lib/os-release` works while a link to `/etc/shadow` or
 * `../../../../..` still lands inside the root — the host's own files are never read. The final
 * open uses O_NOFOLLOW so a link swapped in after resolution is refused, not followed.
 * (A directory swapped for a symlink mid-lookup by a concurrent writer is not defended against:
 * the root is expected to be quiescent while it is scanned.)
 */
export class DirRootfsReader implements RootfsReader {
  private readonly root: string;
  private readonly limits: RootfsReadLimits;

  constructor(rootDir: string, limits: Partial<RootfsReadLimits> = {}) {
    this.root = resolveHostPath(rootDir);
    this.limits = {
      maxFileBytes: limits.maxFileBytes ?? DEFAULT_READ_LIMITS.maxFileBytes,
      maxEntries: limits.maxEntries ?? DEFAULT_READ_LIMITS.maxEntries,
    };
  }

  async list(dir: string, signal?: AbortSignal): Promise<{ entries: RootfsEntry[]; truncated: boolean } | undefined> {
    const found = await this.resolve(dir, signal);
    if (!found?.stat.isDirectory()) return undefined;
    const entries: RootfsEntry[] = [];
    let truncated = false;
    // opendir streams entries, so a huge directory is never read into memory whole.
    const handle = await opendir(found.hostPath).catch(() => undefined);
    if (!handle) return undefined;
    try {
      for await (const d of handle) {
        if (entries.length >= this.limits.maxEntries) {
          truncated = true;
          break;
        }
        entries.push({ name: d.name, type: d.isFile() ? 'file' : d.isDirectory() ? 'dir' : d.isSymbolicLink() ? 'symlink' : 'other' });
      }
    } finally {
      // Breaking out of `for await` closes the handle already; closing twice throws.
      await handle.close().catch(() => {});
    }
    return { entries, truncated };
  }

  async readFile(path: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const found = await this.resolve(path, signal);
    if (!found?.stat.isFile()) return undefined;
    // O_NONBLOCK: should a FIFO appear here after all, opening it must not hang the scan.
    const file = await open(found.hostPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
    if (!file) return undefined;
    try {
      const stat = await file.stat();
      if (!stat.isFile() || stat.size > this.limits.maxFileBytes) return undefined;
      // Read at most one byte past the limit: a file growing under us must not get past it.
      const buf = Buffer.alloc(Math.min(stat.size, this.limits.maxFileBytes) + 1);
      let n = 0;
      while (n < buf.length) {
        const { bytesRead } = await file.read(buf, n, buf.length - n);
        if (bytesRead === 0) break;
        n += bytesRead;
      }
      return n > this.limits.maxFileBytes ? undefined : buf.subarray(0, n);
    } finally {
      await file.close();
    }
  }

  /** The host path and lstat of image path `path` with every symlink followed inside the root. */
  private async resolve(path: string, signal?: AbortSignal): Promise<{ hostPath: string; stat: Stats } | undefined> {
    let pending = normalizeRootfsPath(path).split('/').filter(Boolean);
    let done: string[] = [];
    let stat = await lstat(this.root).catch(() => undefined);
    let hops = 0;
    while (pending.length > 0) {
      signal?.throwIfAborted();
      if (!stat?.isDirectory()) return undefined;
      const name = pending.shift()!;
      const hostPath = join(this.root, ...done, name);
      stat = await lstat(hostPath).catch(() => undefined);
      if (!stat) return undefined;
      if (stat.isSymbolicLink()) {
        if (++hops > MAX_SYMLINK_HOPS) return undefined;
        const target = await readlink(hostPath).catch(() => undefined);
        if (target === undefined || target === '' || target.includes('\0')) return undefined;
        const resolved = resolveLinkTarget(`/${[...done, name].join('/')}`, target);
        // Start again from the image root with the link's target followed by what was left.
        pending = [...resolved.split('/').filter(Boolean), ...pending];
        done = [];
        stat = await lstat(this.root).catch(() => undefined);
        continue;
      }
      done.push(name);
    }
    return stat && { hostPath: join(this.root, ...done), stat };
  }
}
