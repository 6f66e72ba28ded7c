/**
 * Pause, resume and cgroup figures of a bunker that is one cgroup on this host (the crun/runc
 * and proot providers): a bunker whose id, directory or cgroup is missing is NOT_FOUND.
 */
import { existsSync } from 'node:fs';
import { type BunkerStats, ProviderError } from '../Provider.js';
import type { Cgroups } from './Cgroups.js';

export interface CgroupBunkerOptions {
  /** The provider's init (it detects the host's cgroups). */
  init(): Promise<void>;
  /** The host's cgroups, once init detected them. */
  cgroups(): Cgroups | undefined;
  cgroupPath(id: string): string;
  /** The bunker's directory: a bunker without one is not this provider's. */
  bunkerDir(id: string): string;
  isBunkerId(id: string): boolean;
}

export class CgroupBunkerControl {
  constructor(private readonly o: CgroupBunkerOptions) {}

  /** The bunker's cgroup, or NOT_FOUND. */
  async require(id: string): Promise<{ cg: Cgroups; rel: string }> {
    await this.o.init();
    const cg = this.o.cgroups() as Cgroups;
    const rel = this.o.cgroupPath(id);
    if (!this.o.isBunkerId(id) || !existsSync(this.o.bunkerDir(id)) || !cg.exists(rel))
      throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    return { cg, rel };
  }

  async pause(id: string): Promise<void> {
    const { cg, rel } = await this.require(id);
    await cg.freeze(rel);
  }

  async resume(id: string): Promise<void> {
    const { cg, rel } = await this.require(id);
    await cg.thaw(rel);
  }

  async isPaused(id: string): Promise<boolean> {
    const { cg, rel } = await this.require(id);
    return cg.isFrozen(rel);
  }

  /** CPU, memory and pids from the cgroup; the provider adds its disk's figure. */
  async stats(id: string): Promise<BunkerStats> {
    const { cg, rel } = await this.require(id);
    try {
      return await cg.stats(rel);
    } catch (e) {
      throw new ProviderError('NOT_FOUND', `bunker ${id} not found`, (e as Error).message);
    }
  }
}
