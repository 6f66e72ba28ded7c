import { statSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { KeyedLock } from '../host/KeyedLock.js';
import { HostMounts } from './HostMounts.js';

/**
 * Read-only loop mounts of image files, one per image sha256 at `<imagesDir>/<sha>`, shared
 * by every bunker of that image (it is the overlay's lowerdir).
 *
 * Reference counted: acquire() on spawn, release() on destroy. Policy: an image whose last
 * bunker is gone stays mounted (`keepIdle`, the default) so the next spawn of the same image
 * pays no loop mount; `unmountIdle()` unmounts every image no bunker uses (call it before
 * evicting an image file from the cache, and at worker shutdown). With `keepIdle: false` the
 * mount goes with its last bunker.
 *
 * After a worker restart the counts are rebuilt with `adopt()` from the bunkers found on disk.
 */
export class ImageMounts {
  private readonly refs = new Map<string, number>();
  private readonly mounted = new Set<string>();
  private readonly lock = new KeyedLock();

  constructor(
    readonly imagesDir: string,
    private readonly mounts: HostMounts,
    readonly keepIdle = true,
    /** Extra check before unmounting (e.g. bunkers on disk created by another provider instance). */
    private readonly inUseElsewhere: (sha: string) => boolean = () => false,
  ) {}

  mountPoint(sha: string): string {
    return join(this.imagesDir, sha);
  }

  /** Count a bunker found on disk after a restart (no mount is attempted). */
  adopt(sha: string): void {
    this.refs.set(sha, (this.refs.get(sha) ?? 0) + 1);
  }

  refCount(sha: string): number {
    return this.refs.get(sha) ?? 0;
  }

  /** Ensures the image is mounted and counts one more user; returns the mount point. */
  async acquire(sha: string, file: string): Promise<string> {
    this.refs.set(sha, (this.refs.get(sha) ?? 0) + 1);
    try {
      await this.lock.run(sha, async () => {
        const mp = this.mountPoint(sha);
        if (this.mounted.has(sha)) {
          // cheap check (two stats) that nobody unmounted it behind our back
          if (isMountedHere(mp, this.imagesDir)) return;
          this.mounted.delete(sha);
        }
        // first use in this process: the image may still be mounted from before a restart
        if (await HostMounts.isMountpoint(mp)) {
          this.mounted.add(sha);
          return;
        }
        await mkdir(mp, { recursive: true });
        await this.mounts.mountImage(file, mp);
        this.mounted.add(sha);
      });
    } catch (e) {
      this.refs.set(sha, Math.max(0, (this.refs.get(sha) ?? 1) - 1));
      throw e;
    }
    return this.mountPoint(sha);
  }

  async release(sha: string): Promise<void> {
    const n = Math.max(0, (this.refs.get(sha) ?? 0) - 1);
    this.refs.set(sha, n);
    if (n === 0 && !this.keepIdle) await this.unmountIfUnused(sha);
  }

  /** Unmounts every image no bunker uses. Returns the shas unmounted. */
  async unmountIdle(): Promise<string[]> {
    const table = await HostMounts.table();
    const prefix = `${this.imagesDir}/`;
    const shas = new Set<string>(this.mounted);
    for (const m of table) if (m.mountPoint.startsWith(prefix)) shas.add(m.mountPoint.slice(prefix.length));
    const done: string[] = [];
    for (const sha of shas) if (await this.unmountIfUnused(sha)) done.push(sha);
    return done;
  }

  private async unmountIfUnused(sha: string): Promise<boolean> {
    return this.lock.run(sha, async () => {
      if ((this.refs.get(sha) ?? 0) > 0 || this.inUseElsewhere(sha)) return false;
      const mp = this.mountPoint(sha);
      const mounts = await HostMounts.mountsUnder(mp);
      await this.mounts.unmount(mounts, { loop: true });
      this.mounted.delete(sha);
      this.refs.delete(sha);
      await rmdir(mp).catch(() => {});
      return mounts.length > 0;
    });
  }
}

/** A mount point sits on another device than its parent dir. */
function isMountedHere(mp: string, parent: string): boolean {
  try {
    return statSync(mp).dev !== statSync(parent).dev;
  } catch {
    return false;
  }
}
