/**
 * What this host offers the scheduler (CPU and memory with their overcommit, the data disk)
 * and the free-space reserve that keeps running bunkers and images room to write.
 */
import { statfs } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { WorkerError } from '../WorkerApi.js';
import type { WorkerCapacity } from './WorkerOptions.js';

const DEFAULT_DISK_RESERVE_BYTES = 256 * 1024 * 1024;

export class HostCapacity {
  private readonly reserveBytes: number;

  constructor(
    /** The directory whose filesystem is measured (the worker's dataDir). */
    private readonly dataDir: string,
    private readonly opts: { cpuOvercommit?: number; memoryOvercommit?: number; diskReserveBytes?: number },
  ) {
    this.reserveBytes = opts.diskReserveBytes ?? DEFAULT_DISK_RESERVE_BYTES;
  }

  async measure(): Promise<WorkerCapacity> {
    const fs = await statfs(this.dataDir);
    return {
      cpu_millicores: Math.floor(cpus().length * 1000 * (this.opts.cpuOvercommit ?? 8)),
      memory_mb: Math.floor((totalmem() / (1024 * 1024)) * (this.opts.memoryOvercommit ?? 1)),
      disk_mb: Math.floor((fs.blocks * fs.bsize) / (1024 * 1024)),
    };
  }

  /** Whether `bytes` more can be written and still leave the reserve free. */
  async hasRoomFor(bytes: number): Promise<boolean> {
    const fs = await statfs(this.dataDir);
    return fs.bavail * fs.bsize - bytes >= this.reserveBytes;
  }

  /** HOST_DISK_FULL when the data disk has less free space than the reserve (plus `needBytes` about to be written). */
  async checkReserve(needBytes = 0): Promise<void> {
    const fs = await statfs(this.dataDir);
    const free = fs.bavail * fs.bsize;
    if (free - needBytes < this.reserveBytes) {
      const what = needBytes ? ` (${needBytes} more needed)` : '';
      throw new WorkerError(
        'HOST_DISK_FULL',
        `this worker's disk has ${free} bytes free${what}, under its reserve of ${this.reserveBytes}: no new bunkers`,
      );
    }
  }
}
