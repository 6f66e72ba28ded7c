/**
 * Memory snapshots to start bunkers from: one per VM shape (image, kernel, QEMU, accel,
 * vCPUs, memory, disk size — everything the migration stream and the guest's page cache
 * depend on). A template is made by booting the shape once, detaching the host from the
 * agent port, and migrating the stopped VM to a file; its disk overlay is then frozen and
 * becomes the backing file of every bunker restored from it.
 *
 *   <dir>/<key>/disk.qcow2      the template VM's disk (read-only from now on)
 *   <dir>/<key>/state.bin       QEMU migration stream (RAM + devices)
 *   <dir>/<key>/snapshot.json   { key, shape, created_at, size_bytes, build_ms }
 *
 * A template is built under `.build-<key>-<random>` and renamed into place, so a crash
 * mid-build leaves only a directory that init() removes.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RootOverlay } from './RootOverlay.js';

export interface VmShape {
  imageSha256: string;
  imagePath: string;
  cpus: number;
  memoryMb: number;
  diskMb: number;
}

export interface SnapshotFiles {
  key: string;
  disk: string;
  ram: string;
  state: string;
  overlay: string;
}

/** Boots a throwaway VM in `dir` with the given disk and RAM files, snapshots it, stops it. */
export type SnapshotMaker = (shape: VmShape, dir: string, files: Pick<SnapshotFiles, 'disk' | 'ram' | 'state'>) => Promise<void>;

const KEPT = ['disk.qcow2', 'ram', 'state.bin', 'overlay.qcow2'];

export interface SnapshotLogger {
  info(m: string): void;
  warn(m: string): void;
}

export class SnapshotTemplates {
  private building = new Map<string, Promise<SnapshotFiles | undefined>>();
  /** One build at a time: each is a whole VM boot competing with tenants for CPU. */
  private chain: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly make: SnapshotMaker,
    private readonly logger: SnapshotLogger,
  ) {}

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      if (name.startsWith('.build-')) await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }

  /** The ready template of `key`, if there is one. */
  ready(key: string): SnapshotFiles | undefined {
    const d = join(this.dir, key);
    const files = { key, disk: join(d, 'disk.qcow2'), ram: join(d, 'ram'), state: join(d, 'state.bin'), overlay: join(d, 'overlay.qcow2') };
    return existsSync(join(d, 'snapshot.json')) && KEPT.every((f) => existsSync(join(d, f))) ? files : undefined;
  }

  /** Builds the template of `key` unless it exists or is being built; resolves when done. */
  ensure(key: string, shape: VmShape): Promise<SnapshotFiles | undefined> {
    const ready = this.ready(key);
    if (ready) return Promise.resolve(ready);
    const inFlight = this.building.get(key);
    if (inFlight) return inFlight;
    const run = this.chain
      .then(() => this.build(key, shape))
      .catch((err) => {
        this.logger.warn(`snapshot ${key.slice(0, 12)} not built: ${(err as Error).message}`);
        return undefined;
      })
      .finally(() => this.building.delete(key));
    this.chain = run;
    this.building.set(key, run);
    return run;
  }

  /**
   * Removes a snapshot that failed to restore. VMs already restored from it keep their open
   * files; the next create of its shape boots cold and (in auto mode) builds a new one.
   */
  async discard(key: string): Promise<void> {
    const d = join(this.dir, key);
    const aside = join(this.dir, `.build-discarded-${key.slice(0, 16)}-${randomBytes(4).toString('hex')}`);
    try {
      await rename(d, aside);
    } catch {
      return; // already gone (another spawn discarded it first)
    }
    await rm(aside, { recursive: true, force: true });
  }

  /** Waits for builds in flight and refuses new ones (worker shutdown). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.building.values());
  }

  async list(): Promise<Array<{ key: string; shape: VmShape; size_bytes: number; created_at: string }>> {
    const out = [];
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.startsWith('.')) continue;
      try {
        out.push(JSON.parse(await readFile(join(this.dir, name, 'snapshot.json'), 'utf8')));
      } catch {
        // not a complete template
      }
    }
    return out;
  }

  private async build(key: string, shape: VmShape): Promise<SnapshotFiles | undefined> {
    if (this.stopped) return undefined;
    const ready = this.ready(key);
    if (ready) return ready;
    const t0 = performance.now();
    const tmp = join(this.dir, `.build-${key.slice(0, 16)}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp, { mode: 0o700 });
    try {
      await this.make(shape, tmp, { disk: join(tmp, 'disk.qcow2'), ram: join(tmp, 'ram'), state: join(tmp, 'state.bin') });
      await RootOverlay.createSnapshotTemplate(join(tmp, 'overlay.qcow2'), join(this.dir, key, 'disk.qcow2'), shape.diskMb);
      // only the three files survive, and none is written again
      let size = 0;
      for (const name of await readdir(tmp)) {
        if (!KEPT.includes(name)) await rm(join(tmp, name), { force: true });
        else {
          await chmod(join(tmp, name), 0o444);
          size += (await stat(join(tmp, name))).blocks * 512;
        }
      }
      const buildMs = Math.round(performance.now() - t0);
      await writeFile(
        join(tmp, 'snapshot.json'),
        JSON.stringify({ key, shape, created_at: new Date().toISOString(), size_bytes: size, build_ms: buildMs }),
      );
      await rename(tmp, join(this.dir, key));
      this.logger.info(`snapshot ${key.slice(0, 12)} ready (${(size / 1048576).toFixed(1)} MiB, built in ${buildMs} ms)`);
      return this.ready(key);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
}
