/** The stored-output rules on a real store and blob directory: tenant cap, disk reserve, retention sweep. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { newId } from '@scaibunker/core';
import { blobKeys } from '../../src/blobs/BlobStore.js';
import { LocalDirBlobStore } from '../../src/blobs/LocalDirBlobStore.js';
import { OutputStorage, type OutputStorageLimits } from '../../src/bunkers/OutputStorage.js';
import { Store } from '../../src/store/Store.js';
import type { ExecLogRow } from '../../src/store/schema.js';
import { bunkerRow } from '../helpers/rows.js';

let dir = '';
let store: Store;
let blobs: LocalDirBlobStore;
const tenant = newId('tn');
let bunkerId = '';
const DAY = 86_400_000;

const limits = (patch: Partial<OutputStorageLimits> = {}): OutputStorageLimits => ({
  perExecBytes: 1000,
  perTenantBytes: 5000,
  retentionMs: 7 * DAY,
  diskReserveBytes: 0,
  localDir: dir,
  ...patch,
});

function execLog(startedAt: string, bytes: number): ExecLogRow {
  const id = newId('ex');
  return {
    id,
    bunker_id: bunkerId,
    tenant_id: tenant,
    caller: 'key:x',
    command: 'yes',
    exit_code: 0,
    signal: null,
    timed_out: 0,
    duration_ms: 1,
    stdout_preview: '',
    stderr_preview: '',
    truncated: 1,
    full_output_ref: `/v1/modules/scaibunker/bunkers/${bunkerId}/exec-logs/${id}/output`,
    started_at: startedAt,
    finished_at: startedAt,
    output_store: 'complete',
    output_bytes: bytes,
    state: 'exited',
    tag: null,
    background: 0,
    pid: null,
    end_reason: null,
    pty: 0,
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-outputs-'));
  store = await Store.open(`sqlite:${join(dir, 'db.sqlite')}`);
  blobs = new LocalDirBlobStore(join(dir, 'blobs'));
  await store.tenants.insert({ id: tenant, name: 't', created_at: new Date().toISOString() });
  const row = bunkerRow(tenant, { state: 'running' });
  bunkerId = row.id;
  await store.bunkers.insert(row, {});
});
after(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a tenant near its cap gets only what is left; at it, nothing (capped); spills in flight count too', async () => {
  await store.execLogs.upsertMany([execLog(new Date().toISOString(), 4500)]);
  const outputs = new OutputStorage(store, blobs, limits());
  const first = outputs.budgetFor(tenant);
  assert.equal(await first.open(), undefined);
  assert.equal(first.take(800), 500, 'the tenant has 500 bytes left of 5000');
  const second = outputs.budgetFor(tenant);
  assert.equal(await second.open(), 'capped', 'the first spill holds the rest while it runs');
  outputs.settle(tenant, 500);
  assert.deepEqual(await outputs.usage(tenant), { current: 4500, cap: 5000 });
});

test('the per-exec cap bounds one exec whatever the tenant has left', async () => {
  const outputs = new OutputStorage(store, blobs, limits({ perTenantBytes: 1_000_000 }));
  const b = outputs.budgetFor(tenant);
  assert.equal(await b.open(), undefined);
  assert.equal(b.take(700), 700);
  assert.equal(b.take(700), 300, 'both streams share the 1000 bytes of one exec');
  assert.equal(b.take(1), 0);
});

test('under the disk reserve no spill starts', async () => {
  const outputs = new OutputStorage(store, blobs, limits({ perTenantBytes: 1_000_000, diskReserveBytes: Number.MAX_SAFE_INTEGER }));
  assert.equal(await outputs.budgetFor(tenant).open(), 'capped');
});

test('the retention sweep deletes old stored output, marks its rows expired, and the tenant no longer holds those bytes', async () => {
  const old = execLog(new Date(Date.now() - 8 * DAY).toISOString(), 10);
  const recent = execLog(new Date().toISOString(), 20);
  await store.execLogs.upsertMany([old, recent]);
  for (const r of [old, recent]) {
    await blobs.put(blobKeys.execOutput(bunkerId, r.id, 'stdout'), Buffer.from('x'.repeat(10)));
    await blobs.put(blobKeys.execOutput(bunkerId, r.id, 'stderr'), Buffer.from(''));
  }
  const outputs = new OutputStorage(store, blobs, limits());
  const held = (await outputs.usage(tenant)).current;
  assert.equal(await outputs.sweep(), 1);
  assert.equal(await blobs.stat(blobKeys.execOutput(bunkerId, old.id, 'stdout')), undefined);
  assert.equal(await blobs.stat(blobKeys.execOutput(bunkerId, old.id, 'stderr')), undefined);
  assert.ok(await blobs.stat(blobKeys.execOutput(bunkerId, recent.id, 'stdout')));
  const swept = await store.execLogs.get(tenant, bunkerId, old.id);
  assert.equal(swept?.output_store, 'expired');
  assert.equal(Number(swept?.output_bytes), 0);
  assert.equal(swept?.full_output_ref, null);
  assert.equal((await outputs.usage(tenant)).current, held - 10);
  assert.equal(await outputs.sweep(), 0, 'nothing left to sweep');
});
