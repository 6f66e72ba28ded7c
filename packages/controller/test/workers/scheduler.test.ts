/**
 * Placement under concurrency: a worker with room for exactly four bunkers and sixteen creates
 * racing for it. On PostgreSQL the creates come from two schedulers with their own connection
 * pools — two controllers — and the placement lock must hold across them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiError, newId } from '@scaibunker/core';
import { Store } from '../../src/store/Store.js';
import type { BunkerRow } from '../../src/store/schema.js';
import { Scheduler } from '../../src/workers/Scheduler.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { bunkerRow } from '../helpers/rows.js';

const SHA = 'e'.repeat(64);

function pending(tenantId: string): BunkerRow {
  return bunkerRow(tenantId, { image_sha256: SHA });
}

for (const dialect of DIALECTS) {
  describe(`scheduler on ${dialect.name}`, () => {
    let db: TestDatabase;
    const stores: Store[] = [];
    const tenant = newId('tn');

    before(async () => {
      db = await dialect.create();
      // SQLite serves one controller; PostgreSQL is shared by two here.
      for (let i = 0; i < (dialect.name === 'postgres' ? 2 : 1); i++) stores.push(await Store.open(db.url));
      const store = stores[0] as Store;
      const now = new Date().toISOString();
      await store.tenants.insert({ id: tenant, name: 't', created_at: now });
      await store.workers.upsertFromHeartbeat({
        id: newId('wk'),
        name: 'w1',
        url: '',
        state: 'online',
        isolations: '["container"]',
        network_profiles: '["isolated"]',
        capacity_cpu_millicores: 64_000,
        capacity_memory_mb: 4 * 256,
        capacity_disk_mb: 64_000,
        cached_images: JSON.stringify([SHA]),
        bridges: '[]',
        last_heartbeat_at: now,
        created_at: now,
      });
    });
    after(async () => {
      for (const s of stores) await s.close();
      await db?.cleanup();
    });

    test('sixteen concurrent placements onto room for four: exactly four placed, the rest NO_SUITABLE_WORKER', async () => {
      const schedulers = stores.map((s) => new Scheduler(s));
      const rows = Array.from({ length: 16 }, () => pending(tenant));
      for (const r of rows) await (stores[0] as Store).bunkers.insert(r, {});
      const results = await Promise.allSettled(
        rows.map((r, i) => {
          const store = stores[i % stores.length] as Store;
          return (schedulers[i % schedulers.length] as Scheduler).place(
            {
              isolation: 'container',
              networkProfile: 'isolated',
              imageSha256: SHA,
              cpuMillicores: r.cpu_millicores,
              memoryMb: r.memory_mb,
              diskMb: r.disk_mb,
              gpuCount: 0,
            },
            async (worker) => {
              // A commit that takes a moment, as a real one does: the lock must cover it.
              await new Promise((res) => setTimeout(res, 2));
              return store.bunkers.transition(r.id, ['pending'], 'provisioning', { worker_id: worker.id });
            },
          );
        }),
      );
      const placed = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter(
        (r) => r.status === 'rejected' && r.reason instanceof ApiError && r.reason.code === 'NO_SUITABLE_WORKER',
      );
      assert.equal(placed.length, 4, 'exactly the room there was');
      assert.equal(refused.length, 12);
      const alloc = [...(await (stores[0] as Store).bunkers.allocationsByWorker()).values()];
      assert.deepEqual(
        alloc.map((a) => a.memory),
        [4 * 256],
        'never more allocated than the capacity',
      );
    });
  });
}
