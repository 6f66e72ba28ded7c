import { resolve as resolveHostPath } from 'node:path';
import {
  DEFAULT_READ_LIMITS,
  MAX_SYMLINK_HOPS,
  normalizeRootfsPath,
  type RootfsEntry,
  type RootfsReader,
  type RootfsReadLimits,
  resolveLinkTarget,
  UnsafeRootfsPathError,
} from './RootfsReader.js';
import { runBounded } from './runBounded.js';

export interface Ext4RootfsReaderOptions extends Partial<RootfsReadLimits> {
  /** debugfs binary; from PATH by default (it lives in /usr/sbin on Debian). */
  debugfsPath?: string;
  /** Per debugfs invocation. */
  timeoutMs?: number;
}

type InodeType = 'file' | 'dir' | 'symlink' | 'other';

interface InodeStat {
  type: InodeType;
  size: number;
  /** The target of a "fast" symlink (stored in the inode); slow ones are read with `cat`. */
  fastLinkTarget?: string;
}

/**
 * Reads files out of an ext4 image file without mounting it: mounting needs privileges and hands
 * a possibly hostile filesystem to the kernel's ext4 driver, while debugfs (e2fsprogs) parses it
 * in an ordinary read-only user process. Every lookup is one `debugfs -c -R '<request>' IMAGE`.
 *
 * debugfs resolves symlinks in the middle of a path itself, against the image's own root; a
 * symlink as the last component is followed here (up to MAX_SYMLINK_HOPS), the same way.
 */
export class Ext4RootfsReader implements RootfsReader {
  private readonly imagePath: string;
  private readonly limits: RootfsReadLimits;
  private readonly debugfsPath: string;
  private readonly timeoutMs: number;
  private opened: Promise<void> | undefined;

  constructor(ext4Path: string, opts: Ext4RootfsReaderOptions = {}) {
    // Absolute, so an image named `-w...` can never be read as a debugfs option.
    this.imagePath = resolveHostPath(ext4Path);
    this.limits = {
      maxFileBytes: opts.maxFileBytes ?? DEFAULT_READ_LIMITS.maxFileBytes,
      maxEntries: opts.maxEntries ?? DEFAULT_READ_LIMITS.maxEntries,
    };
    this.debugfsPath = opts.debugfsPath ?? 'debugfs';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  async list(dir: string, signal?: AbortSignal): Promise<{ entries: RootfsEntry[]; truncated: boolean } | undefined> {
    await this.checkOpens(signal);
    const found = await this.resolve(quoteForDebugfs(dir).path, signal);
    if (found?.stat.type !== 'dir') return undefined;
    // `ls -p` prints one `/inode/mode/uid/gid/name/size/` line per entry; ~300 bytes each at most.
    const out = await this.debugfs(`ls -p ${quoteForDebugfs(found.path).quoted}`, this.limits.maxEntries * 300 + 4096, signal);
    const entries: RootfsEntry[] = [];
    let truncated = out.overflowed;
    for (const line of out.stdout.toString('utf8').split('\n')) {
      // Names cannot contain `/`, so a name with a newline in it breaks its line and matches nothing
      // (such a file is then simply not listed); it can never forge another entry.
      const m = /^\/\d+\/([0-7]+)\/\d+\/\d+\/([^/]*)\/\d*\/$/.exec(line);
      if (!m) continue;
      const name = m[2]!;
      if (name === '.' || name === '..' || name === '' || !isAddressableName(name)) continue;
      if (entries.length >= this.limits.maxEntries) {
        truncated = true;
        break;
      }
      entries.push({ name, type: typeFromMode(Number.parseInt(m[1]!, 8)) });
    }
    return { entries, truncated };
  }

  async readFile(path: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    await this.checkOpens(signal);
    const found = await this.resolve(quoteForDebugfs(path).path, signal);
    if (found?.stat.type !== 'file' || found.stat.size > this.limits.maxFileBytes) return undefined;
    const out = await this.debugfs(`cat ${quoteForDebugfs(found.path).quoted}`, found.stat.size + 1, signal);
    // A short or long read means debugfs hit an error (its exit status is 0 regardless).
    return out.stdout.length === found.stat.size ? out.stdout : undefined;
  }

  /**
   * debugfs reports a missing path and an unreadable image the same way (exit 0, message on
   * stderr); without this check a file that is not ext4 at all would scan as an empty, clean image.
   */
  private checkOpens(signal?: AbortSignal): Promise<void> {
    if (!this.opened) {
      const opening = this.debugfs('stat "/"', 256 * 1024, signal).then((out) => {
        if (parseDebugfsStat(out.stdout.toString('utf8'))?.type !== 'dir') {
          throw new Error(`cannot read ext4 image ${this.imagePath}: ${out.stderr.trim().split('\n').slice(-3).join(' ')}`);
        }
      });
      // Not cached on failure: an abort or a timeout says nothing about the image.
      opening.catch(() => {
        if (this.opened === opening) this.opened = undefined;
      });
      this.opened = opening;
    }
    return this.opened;
  }

  /** Follows a symlink in the last component until a non-link; undefined if missing, looping, or unaddressable. */
  private async resolve(path: string, signal?: AbortSignal): Promise<{ path: string; stat: InodeStat } | undefined> {
    let current = path;
    for (let hop = 0; hop <= MAX_SYMLINK_HOPS; hop++) {
      const stat = await this.stat(current, signal);
      if (stat?.type !== 'symlink') return stat && { path: current, stat };
      const target = stat.fastLinkTarget ?? (await this.readSlowLink(current, stat.size, signal));
      if (target === undefined || target === '') return undefined;
      current = resolveLinkTarget(current, target);
      // A target from the image that debugfs cannot be asked about safely is treated as dangling.
      if (!isAddressablePath(current)) return undefined;
    }
    return undefined;
  }

  private async stat(path: string, signal?: AbortSignal): Promise<InodeStat | undefined> {
    // The extent list of a fragmented file can be long; the fields we need are in the first lines.
    const out = await this.debugfs(`stat ${quoteForDebugfs(path).quoted}`, 256 * 1024, signal);
    return parseDebugfsStat(out.stdout.toString('utf8'));
  }

  private async readSlowLink(path: string, size: number, signal?: AbortSignal): Promise<string | undefined> {
    if (size > 4096) return undefined;
    const out = await this.debugfs(`cat ${quoteForDebugfs(path).quoted}`, size + 1, signal);
    return out.stdout.length === size ? out.stdout.toString('utf8') : undefined;
  }

  private debugfs(request: string, maxStdoutBytes: number, signal?: AbortSignal) {
    // -c: catastrophic mode, i.e. do not read the allocation bitmaps, which lookups never need.
    // No -w, so the image is opened read-only. No pager: debugfs would otherwise consult $PAGER.
    return runBounded(this.debugfsPath, ['-c', '-R', request, this.imagePath], {
      maxStdoutBytes,
      signal,
      timeoutMs: this.timeoutMs,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', DEBUGFS_PAGER: '__none__', PAGER: '__none__', LANG: 'C' },
    });
  }
}

/**
 * debugfs splits its request line on whitespace and groups on double quotes (with no escape
 * character), so a path is passed as `"..."` and any path containing `"` or a line break is refused.
 */
export function quoteForDebugfs(path: string): { path: string; quoted: string } {
  if (path.includes('"')) throw new UnsafeRootfsPathError(path, 'contains a double quote');
  if (/[\r\n]/.test(path)) throw new UnsafeRootfsPathError(path, 'contains a line break');
  const normalized = normalizeRootfsPath(path);
  return { path: normalized, quoted: `"${normalized}"` };
}

function isAddressableName(name: string): boolean {
  return !/["\r\n\0]/.test(name);
}

function isAddressablePath(path: string): boolean {
  return isAddressableName(path);
}

function typeFromMode(mode: number): InodeType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}

/** The header of `debugfs stat`; undefined when the output is an error (debugfs prints those on stderr). */
export function parseDebugfsStat(text: string): InodeStat | undefined {
  const lines = text.split('\n');
  const head = /^Inode: \d+\s+Type: (\w+(?: special)?)\s/.exec(lines[0] ?? '');
  const size = /\bSize: (\d+)/.exec(lines.slice(1, 4).join('\n'));
  if (!head || !size) return undefined;
  const kind = head[1];
  const type: InodeType = kind === 'regular' ? 'file' : kind === 'directory' ? 'dir' : kind === 'symlink' ? 'symlink' : 'other';
  const stat: InodeStat = { type, size: Number(size[1]) };
  if (type === 'symlink') {
    const link = lines.find((l) => l.startsWith('Fast link dest: "'));
    if (link?.endsWith('"') && link.length >= 'Fast link dest: ""'.length) stat.fastLinkTarget = link.slice('Fast link dest: "'.length, -1);
  }
  return stat;
}
