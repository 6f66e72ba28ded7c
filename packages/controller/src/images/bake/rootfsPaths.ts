import { chmod, lstat, mkdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BakeError } from './BakeError.js';

/** Linux's own limit on symlinks followed while resolving one path. */
const MAX_SYMLINKS = 40;

/**
 * Turns a tar entry name into path components relative to the rootfs: leading '/' and './' are
 * dropped (absolute names are taken as rooted at the image root, as docker does), '.' and empty
 * components vanish, and any '..' is refused — no entry may name a path outside the root.
 */
export function cleanEntryPath(name: string, what: string): string[] {
  if (name.includes('\0')) throw new BakeError('LAYER_INVALID', `${what}: entry name contains a NUL byte`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw new BakeError('LAYER_INVALID', `${what}: entry "${name}" contains "..", refusing to write outside the image root`);
  return parts;
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export interface ResolvedPath {
  /** Host path, always `root` or below it. Every directory above it is a real directory (no symlink). */
  abs: string;
  /** The same path relative to the root, '' for the root itself. */
  rel: string;
}

/**
 * Resolves `parts` inside `root` the way the image's own kernel would see it, as if `root` were
 * `/`: symlinks met on the way are followed but their targets are interpreted relative to the
 * root (an absolute target restarts at the root, '..' stops at the root). So a layer that plants
 * `a -> /etc` and then writes `a/passwd` writes `<root>/etc/passwd`, never the host's /etc.
 *
 * The last component is followed only with `followFinal`; creating entries never follows it.
 * Missing directories on the way are made (0755, root-owned, like a tar extractor does for
 * entries whose parent directory entry is absent).
 *
 * Safe because nothing but the bake writes in the rootfs while it runs: the lstat-then-use
 * window cannot be raced by the image content itself.
 */
export async function resolveInRoot(root: string, parts: string[], opts: { followFinal: boolean; what: string }): Promise<ResolvedPath> {
  return (await walk(root, parts, { ...opts, createParents: true }))!;
}

/** Like resolveInRoot but creates nothing: undefined when a directory on the way does not exist. */
export function lookupInRoot(
  root: string,
  parts: string[],
  opts: { followFinal: boolean; what: string },
): Promise<ResolvedPath | undefined> {
  return walk(root, parts, { ...opts, createParents: false });
}

async function walk(
  root: string,
  parts: string[],
  opts: { followFinal: boolean; createParents: boolean; what: string },
): Promise<ResolvedPath | undefined> {
  const queue = [...parts];
  const current: string[] = [];
  let followed = 0;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      current.pop();
      continue;
    }
    const isLast = queue.length === 0;
    const abs = join(root, ...current, part);
    const st = await lstatOrUndefined(abs);
    if (st?.isSymbolicLink() && (!isLast || opts.followFinal)) {
      if (++followed > MAX_SYMLINKS) throw new BakeError('LAYER_INVALID', `${opts.what}: too many levels of symbolic links`);
      const target = await readlink(abs);
      if (target.startsWith('/')) current.length = 0;
      queue.unshift(...target.split('/'));
      continue;
    }
    if (!isLast) {
      if (!st) {
        if (!opts.createParents) return undefined;
        await mkdir(abs);
        await chmod(abs, 0o755); // explicit: the process umask must not decide image modes
      } else if (!st.isDirectory()) {
        throw new BakeError('LAYER_INVALID', `${opts.what}: "${[...current, part].join('/')}" is not a directory`);
      }
    }
    current.push(part);
  }
  return { abs: join(root, ...current), rel: current.join('/') };
}
