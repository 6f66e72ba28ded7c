import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A directory of small JSON state files (`<key>.json`), written through a temporary file that is
 * renamed over the target so a crash leaves the old or the new file, never a torn one.
 */
export class JsonStateDir<T> {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Readable files by key; unreadable ones (and leftover temporaries) are removed. */
  loadAll(valid: (v: unknown) => v is T): Map<string, T> {
    const out = new Map<string, T>();
    for (const name of readdirSync(this.dir)) {
      if (name.endsWith('.tmp')) {
        rmSync(join(this.dir, name), { force: true });
        continue;
      }
      const m = /^([0-9a-z_-]+)\.json$/.exec(name);
      if (!m) continue;
      try {
        const parsed: unknown = JSON.parse(readFileSync(join(this.dir, name), 'utf8'));
        if (!valid(parsed)) throw new Error('unknown layout');
        out.set(m[1]!, parsed);
      } catch {
        rmSync(join(this.dir, name), { force: true });
      }
    }
    return out;
  }

  save(key: string, value: T): void {
    writeFileAtomic(join(this.dir, `${key}.json`), `${JSON.stringify(value, null, 2)}\n`);
  }

  remove(key: string): void {
    rmSync(join(this.dir, `${key}.json`), { force: true });
  }
}

/** Writes through `<target>.<random>.tmp` renamed over the target: the old or the new file, never a torn one. */
export function writeFileAtomic(target: string, text: string, mode = 0o600): void {
  const tmp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, text, { mode, flush: true });
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
