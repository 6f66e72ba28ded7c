import { existsSync, type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { withTimeout } from './withTimeout.js';

/** Resolves once `path` exists (inotify on its directory, plus a check after the watch starts). */
export async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const dir = dirname(path);
  const name = basename(path);
  let watcher: FSWatcher | undefined;
  const appeared = new Promise<void>((res) => {
    watcher = watch(dir, (_ev, f) => {
      if (f === name && existsSync(path)) res();
    });
    if (existsSync(path)) res();
  });
  try {
    await withTimeout(appeared, timeoutMs, `waiting for ${name}`);
  } finally {
    watcher?.close();
  }
}
