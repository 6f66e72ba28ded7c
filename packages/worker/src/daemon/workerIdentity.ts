/** The worker's persisted identity: its id survives restarts so the controller knows it again. */
import { randomBytes } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { idPattern, newId } from '@scaibunker/core';

const WORKER_ID = new RegExp(idPattern('wk'));

/** The id saved in `<dataDir>/worker.json`, or a new one saved there; a corrupt file is an error, not a new identity. */
export async function loadOrCreateWorkerId(dataDir: string): Promise<string> {
  const file = join(dataDir, 'worker.json');
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as { worker_id?: unknown };
    if (typeof saved.worker_id === 'string' && WORKER_ID.test(saved.worker_id)) return saved.worker_id;
    throw new Error(`${file} holds no valid worker_id`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const id = newId('wk');
  // Write-then-rename so a crash never leaves a half-written identity behind.
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify({ worker_id: id }, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return id;
}
