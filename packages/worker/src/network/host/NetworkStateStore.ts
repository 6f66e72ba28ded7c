import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './JsonStateDir.js';
import type { BunkerNetwork } from './types.js';

const STATE_VERSION = 1;

interface StateFile extends BunkerNetwork {
  version: number;
}

/**
 * One JSON file per bunker (`<key>.json`) holding its allocation and plan. Writes go to a
 * temporary file that is renamed over the target, so a crash leaves either the old or the new
 * file, never a torn one; leftover temporaries are removed by sweepTemporaries().
 */
export class NetworkStateStore {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Every readable state file; unreadable ones are reported by key so their objects can be removed. */
  loadAll(): { networks: Map<string, BunkerNetwork>; unreadable: string[] } {
    const networks = new Map<string, BunkerNetwork>();
    const unreadable: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = /^([0-9a-f]+)\.json$/.exec(name);
      if (!m) continue;
      try {
        const parsed = JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as Partial<StateFile>;
        if (parsed.version !== STATE_VERSION || typeof parsed.bunkerId !== 'string') throw new Error('unknown state layout');
        const { version: _v, ...net } = parsed as StateFile;
        networks.set(m[1]!, net);
      } catch {
        unreadable.push(m[1]!);
      }
    }
    return { networks, unreadable };
  }

  save(key: string, net: BunkerNetwork): void {
    const body: StateFile = { version: STATE_VERSION, ...net };
    writeFileAtomic(join(this.dir, `${key}.json`), `${JSON.stringify(body, null, 2)}\n`);
  }

  remove(key: string): void {
    rmSync(join(this.dir, `${key}.json`), { force: true });
  }

  /** Removes temporaries a crash left between write and rename. */
  sweepTemporaries(): void {
    for (const name of readdirSync(this.dir)) if (name.endsWith('.tmp')) rmSync(join(this.dir, name), { force: true });
  }
}
