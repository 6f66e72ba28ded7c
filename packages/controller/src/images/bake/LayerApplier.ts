import { execFile } from 'node:child_process';
import { constants, createReadStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import * as tar from 'tar-stream';
import { BakeError, isAbortError } from './BakeError.js';
import { checkCounted, HashingCounter } from './digest.js';
import type { LayerFile } from './PreparedImage.js';
import { cleanEntryPath, lookupInRoot, type ResolvedPath, resolveInRoot } from './rootfsPaths.js';

const execFileAsync = promisify(execFile);

export const EXCLUSIVE_CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';

type Compression = 'none' | 'gzip';

/** One entry of tar-stream's extract: its header and its content as a byte stream. */
type TarEntry = AsyncIterable<Buffer> & { header: tar.Header };

/** Errors that say the host is in trouble (disk full, I/O), not that the layer is bad. */
const HOST_ERROR_CODES = new Set(['ENOSPC', 'EIO', 'EMFILE', 'ENFILE', 'ENOMEM', 'EDQUOT', 'EROFS']);

/** What one layer wrote, for whiteouts (never remove this layer's own entries) and opaque dirs. */
class LayerState {
  /** Root-relative paths this layer wrote, plus their ancestors (they hold this layer's entries). */
  readonly written = new Set<string>();
  /** Directories marked opaque; their lower contents are cleared once the layer is complete. */
  readonly opaqueDirs = new Set<string>();

  markWritten(rel: string): void {
    for (let p = rel; p !== '' && !this.written.has(p); p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') {
      this.written.add(p);
    }
  }
}

/**
 * Applies image layers, in order, into one rootfs directory: the overlay semantics of OCI layers
 * (whiteouts, opaque directories) on a plain directory, with ownership, modes (setuid included)
 * and mtimes as the tar says. Device nodes and fifos are created with the `mknod` command.
 * Extended attributes (file capabilities included) are not applied.
 *
 * Security: every path is resolved inside the root (see rootfsPaths.ts); entries with '..' are
 * refused; files are created with O_EXCL|O_NOFOLLOW after removing whatever was there, so no
 * write ever goes through a symlink the image planted. The rootfs's parent directory must be
 * private (0700): layers may carry setuid binaries and device nodes.
 */
export class LayerApplier {
  /** Directory mtimes from the tars; adding children changes them, so they are put back at the end. */
  readonly dirMtimes = new Map<string, Date>();

  constructor(private readonly root: string) {}

  async apply(layer: LayerFile, onBytes: (done: number) => void, signal?: AbortSignal): Promise<void> {
    const compression = await detectCompression(layer);
    const stored = new HashingCounter(onBytes, undefined, layer.label);
    const uncompressed = new HashingCounter(undefined, undefined, layer.label);
    const extract = tar.extract();
    const state = new LayerState();
    const feeding = pipeline(
      [
        createReadStream(layer.path, { highWaterMark: 1 << 20 }),
        stored,
        ...(compression === 'gzip' ? [createGunzip()] : []),
        uncompressed,
        extract,
      ],
      ...(signal ? [{ signal }] : []),
    );
    feeding.catch(() => {}); // awaited below; this only keeps an early failure from being "unhandled"
    try {
      for await (const entry of extract) {
        signal?.throwIfAborted();
        await this.applyEntry(entry as unknown as TarEntry, state, layer.label);
      }
      await feeding;
      if (layer.digest) checkCounted(stored, layer.digest, layer.label);
      if (layer.diffId) checkCounted(uncompressed, layer.diffId, `${layer.label} uncompressed (diff_id)`);
      for (const dir of state.opaqueDirs) await this.clearLowerEntries(dir, state);
    } catch (err) {
      extract.destroy();
      await feeding.catch(() => {});
      throw asLayerError(err, layer.label);
    }
  }

  private async applyEntry(entry: TarEntry, state: LayerState, label: string): Promise<void> {
    const h = entry.header;
    const what = `${label} entry "${h.name}"`;
    const parts = cleanEntryPath(h.name, what);
    const base = parts.at(-1);
    if (base?.startsWith(WHITEOUT_PREFIX)) {
      await drain(entry);
      await this.applyWhiteout(parts, base, state, what);
      return;
    }
    if (parts.length === 0) {
      // The image root itself ("./"): only its mode and mtime matter; mkfs makes it root-owned.
      await drain(entry);
      if (h.type === 'directory') {
        await chmod(this.root, modeOf(h));
        this.dirMtimes.set('', mtimeOf(h));
      }
      return;
    }
    const target = await resolveInRoot(this.root, parts, { followFinal: false, what });
    state.markWritten(target.rel);
    switch (h.type) {
      case 'directory':
        await drain(entry);
        await this.makeDirectory(target, h);
        return;
      case 'file':
      case 'contiguous-file':
        await this.writeFile(target, entry, h);
        return;
      case 'symlink':
        await drain(entry);
        if (!h.linkname) throw new BakeError('LAYER_INVALID', `${what}: symlink without a target`);
        await removeExisting(target.abs);
        await symlink(h.linkname, target.abs);
        await lchown(target.abs, uidOf(h), gidOf(h));
        await lutimes(target.abs, mtimeOf(h), mtimeOf(h));
        return;
      case 'link':
        await drain(entry);
        await this.makeHardlink(target, h, what);
        return;
      case 'character-device':
      case 'block-device':
      case 'fifo':
        await drain(entry);
        await this.makeSpecial(target, h);
        return;
      default:
        throw new BakeError('LAYER_INVALID', `${what}: unsupported tar entry type ${h.type ?? 'unknown'}`);
    }
  }

  /** `.wh.NAME` removes NAME from the layers below; `.wh..wh..opq` marks its directory opaque. */
  private async applyWhiteout(parts: string[], base: string, state: LayerState, what: string): Promise<void> {
    const parentParts = parts.slice(0, -1);
    if (base === OPAQUE_MARKER) {
      const dir = await resolveInRoot(this.root, parentParts, { followFinal: true, what });
      state.markWritten(dir.rel);
      state.opaqueDirs.add(dir.rel);
      return;
    }
    if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return; // aufs bookkeeping (.wh..wh.plnk etc.), not a whiteout
    const victim = await lookupInRoot(this.root, [...parentParts, base.slice(WHITEOUT_PREFIX.length)], { followFinal: false, what });
    if (victim && victim.rel !== '' && !state.written.has(victim.rel)) await rm(victim.abs, { recursive: true, force: true });
  }

  /** Removes everything below `dirRel` that this layer did not write (the directory was opaque). */
  private async clearLowerEntries(dirRel: string, state: LayerState): Promise<void> {
    const abs = join(this.root, dirRel);
    const st = await lstat(abs).catch(() => undefined);
    if (!st?.isDirectory()) return;
    for (const e of await readdir(abs, { withFileTypes: true })) {
      const rel = dirRel ? `${dirRel}/${e.name}` : e.name;
      if (!state.written.has(rel)) await rm(join(abs, e.name), { recursive: true, force: true });
      else if (e.isDirectory()) await this.clearLowerEntries(rel, state);
    }
  }

  private async makeDirectory(target: ResolvedPath, h: tar.Header): Promise<void> {
    const st = await lstat(target.abs).catch(() => undefined);
    if (!st?.isDirectory()) {
      if (st) await unlink(target.abs);
      await mkdir(target.abs);
    }
    // chown before chmod: chown clears setuid/setgid bits.
    await lchown(target.abs, uidOf(h), gidOf(h));
    await chmod(target.abs, modeOf(h));
    this.dirMtimes.set(target.rel, mtimeOf(h));
  }

  private async writeFile(target: ResolvedPath, entry: TarEntry, h: tar.Header): Promise<void> {
    await removeExisting(target.abs);
    // O_EXCL|O_NOFOLLOW: a fresh file at exactly this path, even if something raced a symlink in.
    const fh = await open(target.abs, EXCLUSIVE_CREATE, 0o600);
    await pipeline(chunksOf(entry), fh.createWriteStream({ highWaterMark: 1 << 20 })); // the stream closes fh when done
    // chown before chmod: chown clears setuid/setgid bits. The path is the regular file just made.
    await lchown(target.abs, uidOf(h), gidOf(h));
    await chmod(target.abs, modeOf(h));
    await utimes(target.abs, mtimeOf(h), mtimeOf(h));
  }

  private async makeHardlink(target: ResolvedPath, h: tar.Header, what: string): Promise<void> {
    if (!h.linkname) throw new BakeError('LAYER_INVALID', `${what}: hard link without a target`);
    // The link target is a path in the image (earlier in this layer or below), resolved inside the root like any entry.
    const source = await lookupInRoot(this.root, cleanEntryPath(h.linkname, what), { followFinal: false, what });
    const st = source && (await lstat(source.abs).catch(() => undefined));
    if (!source || !st) throw new BakeError('LAYER_INVALID', `${what}: hard link to "${h.linkname}", which does not exist`);
    if (st.isDirectory()) throw new BakeError('LAYER_INVALID', `${what}: hard link to directory "${h.linkname}"`);
    if (source.abs === target.abs) return;
    await removeExisting(target.abs);
    await link(source.abs, target.abs); // link(2) does not follow a symlink source: the link is to the symlink itself
  }

  private async makeSpecial(target: ResolvedPath, h: tar.Header): Promise<void> {
    await removeExisting(target.abs);
    const args =
      h.type === 'fifo'
        ? [target.abs, 'p']
        : [target.abs, h.type === 'block-device' ? 'b' : 'c', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
    await execFileAsync('mknod', ['-m', '0600', '--', ...args]);
    await lchown(target.abs, uidOf(h), gidOf(h));
    await chmod(target.abs, modeOf(h)); // a fresh node at a path we just created: nothing to follow
    await utimes(target.abs, mtimeOf(h), mtimeOf(h));
  }
}

async function detectCompression(layer: LayerFile): Promise<Compression> {
  const fh = await open(layer.path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(6), 0, 6, 0);
    const b = buffer.subarray(0, bytesRead);
    if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
    if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) {
      throw new BakeError('LAYER_INVALID', `${layer.label}: zstd layers are not supported`);
    }
    if (b.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) || b.subarray(0, 3).toString('latin1') === 'BZh') {
      throw new BakeError('LAYER_INVALID', `${layer.label}: xz/bzip2 compressed layers are not supported (tar or tar+gzip only)`);
    }
    return 'none';
  } finally {
    await fh.close();
  }
}

/**
 * tar-stream entries are streamx streams: Node's pipeline() mistakes them for Node streams and
 * never sees them end, so hand it a plain async iterable instead.
 */
export async function* chunksOf(entry: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  for await (const chunk of entry) yield chunk;
}

async function drain(entry: TarEntry): Promise<void> {
  for await (const _ of entry);
}

/** Clears the way for a new entry: a symlink or file is unlinked (never followed), a directory removed whole. */
async function removeExisting(abs: string): Promise<void> {
  const st = await lstat(abs).catch(() => undefined);
  if (!st) return;
  if (st.isDirectory()) await rm(abs, { recursive: true, force: true });
  else await unlink(abs);
}

function asLayerError(err: unknown, label: string): unknown {
  if (err instanceof BakeError || isAbortError(err)) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code && HOST_ERROR_CODES.has(code)) return err;
  return new BakeError('LAYER_INVALID', `${label}: ${(err as Error).message}`, { cause: err });
}

function paxNumber(h: tar.Header, key: string): number | undefined {
  const v = (h.pax as Record<string, string> | null | undefined)?.[key];
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

function uidOf(h: tar.Header): number {
  return paxNumber(h, 'uid') ?? h.uid ?? 0;
}

function gidOf(h: tar.Header): number {
  return paxNumber(h, 'gid') ?? h.gid ?? 0;
}

function modeOf(h: tar.Header): number {
  return (h.mode ?? 0o644) & 0o7777;
}

function mtimeOf(h: tar.Header): Date {
  const pax = paxNumber(h, 'mtime');
  if (pax !== undefined) return new Date(pax * 1000);
  return h.mtime instanceof Date && !Number.isNaN(h.mtime.getTime()) ? h.mtime : new Date(0);
}
