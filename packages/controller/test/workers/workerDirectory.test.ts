import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Store } from '../../src/store/Store.js';
import type { WorkerRow } from '../../src/store/schema.js';
import { WorkerDirectory } from '../../src/workers/WorkerDirectory.js';

const row: WorkerRow = {
  id: 'wk_1',
  name: 'w',
  url: 'http://127.0.0.1:9',
  state: 'online',
  isolations: '["container"]',
  network_profiles: '["isolated"]',
  capacity_cpu_millicores: 1000,
  capacity_memory_mb: 1000,
  capacity_disk_mb: 1000,
  cached_images: '[]',
  bridges: '[]',
  last_heartbeat_at: null,
  created_at: new Date().toISOString(),
};

/** A store whose worker-row reads wait until released, counting them. */
function slowStore(fail = false) {
  const reads: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const store = {
    workers: {
      get: async (id: string) => {
        reads.push(id);
        await gate;
        if (fail) throw new Error('boom');
        return row;
      },
    },
  } as unknown as Store;
  return { store, reads, release };
}

test('calls that find no fresh entry together share one row read', async () => {
  const { store, reads, release } = slowStore();
  const directory = new WorkerDirectory(store, 'token');
  const calls = Array.from({ length: 16 }, () => directory.get('wk_1'));
  release();
  const clients = await Promise.all(calls);
  assert.equal(reads.length, 1);
  assert.ok(
    clients.every((c) => c === clients[0]),
    'one client for the worker',
  );
  await directory.get('wk_1');
  assert.equal(reads.length, 1, 'fresh: no read');
  for (const c of clients) (c as unknown as { close(): void }).close();
});

test('a failed shared read fails every caller, and the next call reads again', async () => {
  const { store, reads, release } = slowStore(true);
  const directory = new WorkerDirectory(store, 'token');
  const calls = Array.from({ length: 4 }, () => directory.get('wk_1'));
  release();
  for (const c of calls) await assert.rejects(c, /boom/);
  assert.equal(reads.length, 1);
  await assert.rejects(directory.get('wk_1'), /boom/);
  assert.equal(reads.length, 2);
});
