import { posix } from 'node:path';

/** One directory entry, by its own type (a symlink is reported as a symlink, not as what it points at). */
export interface RootfsEntry {
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
}

/**
 * Read-only access to the files of an image's root filesystem, by absolute path inside the image.
 * Symlinks resolve as they would inside the image after a chroot: absolute targets and `..` can
 * never leave the image's root. Both methods are bounded (see `RootfsReadLimits`) because the image
 * may be hostile: a tenant could bake a 1 GiB dpkg status or a directory of a million entries.
 */
export interface RootfsReader {
  /** Entries of the directory at `dir` (without `.`/`..`), at most `maxEntries`; undefined when it is not a directory. */
  list(dir: string, signal?: AbortSignal): Promise<{ entries: RootfsEntry[]; truncated: boolean } | undefined>;
  /** Contents of the regular file at `path`; undefined when missing, not a regular file, or larger than `maxFileBytes`. */
  readFile(path: string, signal?: AbortSignal): Promise<Buffer | undefined>;
}

export interface RootfsReadLimits {
  /** Files larger than this are treated as unreadable rather than loaded. */
  maxFileBytes: number;
  /** Directory listings stop after this many entries. */
  maxEntries: number;
}

export const DEFAULT_READ_LIMITS: RootfsReadLimits = { maxFileBytes: 16 * 1024 * 1024, maxEntries: 10_000 };

/** Symlinks followed for one lookup before giving up (ext2fs's own limit), so a loop ends quickly. */
export const MAX_SYMLINK_HOPS = 8;

/** A path the caller asked for that no reader will look up. */
export class UnsafeRootfsPathError extends Error {
  constructor(path: string, why: string) {
    super(`unsafe image path ${JSON.stringify(path)}: ${why}`);
    this.name = 'UnsafeRootfsPathError';
  }
}

/** `/a/./b//../c` → `/a/c`; `..` stops at the root, as it does inside a chroot. Throws unless absolute and NUL-free. */
export function normalizeRootfsPath(path: string): string {
  if (!path.startsWith('/')) throw new UnsafeRootfsPathError(path, 'not absolute');
  if (path.includes('\0')) throw new UnsafeRootfsPathError(path, 'contains NUL');
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}

/** Where a symlink at `linkPath` with `target` points, inside the image. */
export function resolveLinkTarget(linkPath: string, target: string): string {
  return normalizeRootfsPath(target.startsWith('/') ? target : `${posix.dirname(linkPath)}/${target}`);
}
