import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type BlobInfo, type BlobStore, checkBlobKey, checkBlobPrefix } from './BlobStore.js';

const READ_CHUNK = 1024 * 1024;

/**
 * Objects as files under a root directory. A stored sha256 lives in `<root>/.meta/<key>`, a
 * name no key can have (key segments never start with `.`).
 */
export class LocalDirBlobStore implements BlobStore {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private pathOf(key: string): string {
    return join(this.root, checkBlobKey(key));
  }

  private metaPathOf(key: string): string {
    return join(this.root, '.meta', checkBlobKey(key));
  }

  async put(key: string, data: Readable | Buffer, opts: { sha256?: string } = {}): Promise<{ bytes: number }> {
    const target = this.pathOf(key);
    const meta = this.metaPathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
    try {
      await pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, createWriteStream(tmp));
      // The old checksum goes first: a crash between the two renames leaves an object with no
      // checksum, never one with another object's.
      await rm(meta, { force: true });
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    if (opts.sha256) {
      await mkdir(dirname(meta), { recursive: true });
      await writeFile(`${meta}.tmp-${process.pid}`, JSON.stringify({ sha256: opts.sha256 }));
      await rename(`${meta}.tmp-${process.pid}`, meta);
    }
    return { bytes: (await stat(target)).size };
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    const path = this.pathOf(key);
    let size: number;
    try {
      const st = await stat(path);
      if (!st.isFile()) return undefined;
      size = st.size;
    } catch {
      return undefined;
    }
    try {
      const { sha256 } = JSON.parse(await readFile(this.metaPathOf(key), 'utf8')) as { sha256?: unknown };
      if (typeof sha256 === 'string') return { size, sha256 };
    } catch {
      /* no stored checksum */
    }
    return { size };
  }

  async open(key: string, range?: { start: number; end?: number }): Promise<{ body: Readable; info: BlobInfo } | undefined> {
    const info = await this.stat(key);
    if (!info) return undefined;
    // 1 MiB reads rather than 64 KiB: an open object is usually streamed whole (images), and
    // fewer, larger chunks are what lets the proxy keep up with the network on few cores.
    const body = createReadStream(this.pathOf(key), {
      highWaterMark: READ_CHUNK,
      ...(range ? { start: range.start, ...(range.end !== undefined ? { end: range.end } : {}) } : {}),
    });
    return { body, info };
  }

  async get(key: string): Promise<Readable | undefined> {
    const path = this.pathOf(key);
    try {
      // A directory (a prefix of other keys) is not an object.
      if (!(await stat(path)).isFile()) return undefined;
    } catch {
      return undefined;
    }
    return createReadStream(path);
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
    await rm(this.metaPathOf(key), { force: true });
  }

  async list(
    prefix: string,
    opts: { startAfter?: string; limit: number },
  ): Promise<{ items: Array<{ key: string; bytes: number }>; more: boolean }> {
    const dir = this.pathOf(checkBlobPrefix(prefix).slice(0, -1));
    let names: string[];
    try {
      names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.includes('.tmp-')).map((e) => e.name);
    } catch {
      return { items: [], more: false };
    }
    const keys = names
      .map((n) => prefix + n)
      .filter((k) => opts.startAfter === undefined || k > opts.startAfter)
      .sort();
    const page = keys.slice(0, opts.limit);
    const items = await Promise.all(page.map(async (key) => ({ key, bytes: (await stat(this.pathOf(key))).size })));
    return { items, more: keys.length > page.length };
  }
}
