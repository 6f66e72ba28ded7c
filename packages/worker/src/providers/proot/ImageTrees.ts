import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { findExecutable } from '../container/OciRuntime.js';
import { KeyedLock } from '../host/KeyedLock.js';
import { runCommand } from '../host/runCommand.js';
import { ProviderError } from '../Provider.js';

/** Written last into an image's tree: its presence means the extraction completed. */
const COMPLETE_MARKER = '.scaibunker-tree.json';

/**
 * Images as plain directory trees, one per sha256 at `<imagesDir>/<sha>/root`, extracted from
 * the image's ext4 file with e2fsprogs' `debugfs rdump` — no loop device, no mount, so it also
 * works where the worker may not mount. Extracted once (per-sha lock, into a temporary dir
 * renamed into place) and kept: the trees are the copy source of every proot bunker of that
 * image. What an ext4 holds beyond files, dirs and symlinks (device nodes, xattrs, file
 * capabilities, hard links as such) does not survive the extraction.
 */
export class ImageTrees {
  private readonly lock = new KeyedLock();
  private readonly debugfs = findExecutable('debugfs');

  constructor(readonly imagesDir: string) {}

  /** Whether the extraction tool is installed (e2fsprogs). */
  get available(): boolean {
    return this.debugfs !== undefined;
  }

  treePath(sha: string): string {
    return join(this.imagesDir, sha, 'root');
  }

  /** The extracted tree of the image and the bytes it occupies (about what a bunker's tmpfs copy of it takes). */
  async ensure(sha: string, imageFile: string): Promise<{ root: string; bytes: number }> {
    return this.lock.run(sha, async () => {
      const dir = join(this.imagesDir, sha);
      const marker = join(dir, COMPLETE_MARKER);
      if (existsSync(marker)) return { root: this.treePath(sha), bytes: readBytes(marker) };
      if (!this.debugfs) throw new ProviderError('RUNTIME_UNAVAILABLE', 'debugfs (e2fsprogs) is not installed');
      const tmp = `${dir}.tmp-${process.pid}`;
      await rm(tmp, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
      await mkdir(join(tmp, 'root'), { recursive: true, mode: 0o755 });
      try {
        const r = await runCommand(this.debugfs, ['-R', `rdump / ${join(tmp, 'root')}`, imageFile], { timeoutMs: 600_000 });
        // debugfs exits 0 even when a request fails: its complaints on stderr are the signal
        const complaints = r.stderr
          .split('\n')
          .filter((l) => l.trim() && !/^debugfs \d/.test(l))
          .join('\n');
        if (r.code !== 0 || complaints)
          throw new ProviderError('SPAWN_FAILED', `extracting image ${sha} failed`, complaints || `debugfs exit ${r.code}`);
        // allocated bytes (whole blocks per file), closer to what a tmpfs copy takes than the apparent size
        const du = await runCommand('du', ['-s', '--block-size=1', join(tmp, 'root')], { timeoutMs: 120_000 });
        const bytes = Number.parseInt(du.stdout, 10);
        if (du.code !== 0 || !Number.isFinite(bytes))
          throw new ProviderError('SPAWN_FAILED', `measuring image ${sha}: ${du.stderr.trim()}`);
        writeFileSync(join(tmp, COMPLETE_MARKER), JSON.stringify({ bytes }));
        await rename(tmp, dir);
        return { root: this.treePath(sha), bytes };
      } catch (e) {
        await rm(tmp, { recursive: true, force: true });
        throw e;
      }
    });
  }
}

function readBytes(marker: string): number {
  return (JSON.parse(readFileSync(marker, 'utf8')) as { bytes: number }).bytes;
}
