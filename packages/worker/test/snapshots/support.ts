/** A ControllerLink's snapshot storage for tests: a temp dir, atomic like the real blob store. */
import { createReadStream, createWriteStream, existsSync, readdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { WorkerError } from '../../src/WorkerApi.js';

export class DirSnapshotStore {
  /** When set, the next put fails after this many bytes (the stored object must not appear). */
  failPutAfterBytes: number | undefined;
  puts = 0;

  constructor(readonly dir: string) {}

  path(snapshotId: string): string {
    return join(this.dir, snapshotId);
  }

  async putSnapshot(snapshotId: string, archive: Readable): Promise<void> {
    this.puts++;
    const tmp = `${this.path(snapshotId)}.tmp-${process.pid}-${this.puts}`;
    const failAfter = this.failPutAfterBytes;
    this.failPutAfterBytes = undefined;
    let seen = 0;
    const gate = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        if (failAfter !== undefined && seen > failAfter) cb(new Error(`storage went away after ${failAfter} bytes`));
        else cb(null, chunk);
      },
    });
    try {
      await pipeline(archive, gate, createWriteStream(tmp));
      await rename(tmp, this.path(snapshotId));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async openSnapshot(snapshotId: string): Promise<Readable> {
    const p = this.path(snapshotId);
    if (!existsSync(p)) throw new WorkerError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshotId} is not in storage`);
    return createReadStream(p);
  }

  /** Every name in the store (temp files included). */
  list(): string[] {
    return readdirSync(this.dir).sort();
  }
}
