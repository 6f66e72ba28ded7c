import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type BlobStore, checkBlobKey, checkBlobPrefix } from './BlobStore.js';

export class LocalDirBlobStore implements BlobStore {
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private pathOf(key: string): string {
    return join(this.root, checkBlobKey(key));
  }

  async put(key: string, data: Readable | Buffer): Promise<{ bytes: number }> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}-${Date.now()}`;
    try {
      await pipeline(Buffer.isBuffer(data) ? Readable.from([data]) : data, createWriteStream(tmp));
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { bytes: (await stat(target)).size };
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
