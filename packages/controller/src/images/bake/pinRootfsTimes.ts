import { lstat, readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';

export interface RootfsSummary {
  /** Every path in the rootfs, '/'-rooted ('/' itself first), for pinning inode times after mkfs. */
  paths: string[];
  /** Apparent bytes (like `du --apparent-size`) and entry count, for sizing the filesystem. */
  bytes: number;
  entries: number;
}

/**
 * Gives every directory its mtime back — the one its tar entry carried, else `epoch` — after the
 * bake added and removed children (which set directory mtimes to "now"), and summarises the
 * tree. Files, symlinks and devices keep the mtimes the layers gave them. Children first, so
 * setting a directory's time is the last thing that touches it.
 */
export async function pinRootfsTimes(root: string, dirMtimes: ReadonlyMap<string, Date>, epoch: Date): Promise<RootfsSummary> {
  const summary: RootfsSummary = { paths: [], bytes: 0, entries: 0 };
  async function visit(rel: string): Promise<void> {
    const abs = rel ? join(root, rel) : root;
    const st = await lstat(abs);
    summary.paths.push(`/${rel}`);
    summary.entries++;
    summary.bytes += st.size;
    if (!st.isDirectory()) return;
    const names = (await readdir(abs)).sort();
    for (const name of names) await visit(rel ? `${rel}/${name}` : name);
    const t = dirMtimes.get(rel) ?? epoch;
    await utimes(abs, t, t);
  }
  await visit('');
  return summary;
}
