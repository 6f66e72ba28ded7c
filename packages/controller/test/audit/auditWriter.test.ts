/** The audit writer: never waits, batches, keeps rows through an outage (bounded), drains on close. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, newId } from '@scaibunker/core';
import { type AuditSink, AuditWriter } from '../../src/audit/AuditWriter.js';
import type { AuditEventRow } from '../../src/store/schema.js';

function row(action = 'exec.run'): AuditEventRow {
  return {
    id: newId('ev'),
    tenant_id: 'tn_a',
    actor: 'key:a',
    action,
    target_type: 'exec',
    target_id: newId('ex'),
    bunker_id: null,
    details: '{}',
    created_at: new Date().toISOString(),
  };
}

/** A sink that records statements; `down` makes it answer STORE_UNAVAILABLE, `refuse` refuses those actions. */
function sink() {
  const statements: AuditEventRow[][] = [];
  const state = { down: false, refuse: new Set<string>(), calls: 0 };
  const s: AuditSink = {
    insertMany: async (rows) => {
      state.calls++;
      if (state.down) throw new ApiError('STORE_UNAVAILABLE', 'the database is down');
      if (rows.some((r) => state.refuse.has(r.action))) throw new Error('refused');
      statements.push([...rows]);
    },
  };
  return { s, statements, state, stored: () => statements.flat().map((r) => r.id) };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('write returns at once; rows written together go out as one statement after the interval', async () => {
  const { s, statements, stored } = sink();
  const w = new AuditWriter(s, { flushIntervalMs: 20 });
  const rows = [row(), row(), row()];
  for (const r of rows) assert.equal(w.write(r), undefined);
  assert.equal(statements.length, 0, 'nothing is written synchronously');
  await sleep(60);
  assert.equal(statements.length, 1);
  assert.deepEqual(
    stored(),
    rows.map((r) => r.id),
  );
  await w.close();
});

test('a full batch goes at once, in statements of batchSize, oldest first', async () => {
  const { s, statements, stored } = sink();
  const w = new AuditWriter(s, { flushIntervalMs: 60_000, batchSize: 4 });
  const rows = Array.from({ length: 10 }, () => row());
  for (const r of rows) w.write(r);
  await sleep(20);
  assert.deepEqual(
    statements.map((st) => st.length),
    [4, 4, 2],
    'the size trigger flushed without waiting a minute; the flush takes what queued with it',
  );
  assert.deepEqual(
    stored(),
    rows.map((r) => r.id),
  );
  await w.close();
});

test('through an outage rows are kept and retried, beyond maxPending dropped (counted, logged once), then written in order', async () => {
  const { s, state, stored } = sink();
  const logs: string[] = [];
  const w = new AuditWriter(s, { flushIntervalMs: 5, retryMs: 30, maxPending: 5, batchSize: 3, log: (m) => logs.push(m) });
  state.down = true;
  const rows = Array.from({ length: 8 }, () => row());
  for (const r of rows) w.write(r);
  await sleep(80);
  assert.ok(state.calls >= 2, `retried while down (${state.calls} attempts)`);
  assert.equal(w.pending, 5);
  assert.equal(w.droppedCount, 3);
  assert.equal(logs.filter((l) => l.includes('dropping')).length, 1, 'the drops are logged once');
  assert.equal(stored().length, 0);
  state.down = false;
  await sleep(80);
  assert.deepEqual(
    stored(),
    rows.slice(0, 5).map((r) => r.id),
  );
  assert.equal(w.pending, 0);
  assert.ok(
    logs.some((l) => /again; 3 were dropped/.test(l)),
    logs.join('\n'),
  );
  await w.close();
});

test('a row the database refuses (not an outage) is dropped alone; the rest of its batch is written', async () => {
  const { s, state, stored } = sink();
  const logs: string[] = [];
  const w = new AuditWriter(s, { flushIntervalMs: 5, log: (m) => logs.push(m) });
  state.refuse.add('bad');
  const rows = [row(), row('bad'), row()];
  for (const r of rows) w.write(r);
  await sleep(40);
  assert.deepEqual(stored(), [rows[0]?.id, rows[2]?.id]);
  assert.equal(w.pending, 0);
  assert.ok(logs.some((l) => l.includes(rows[1]?.id as string)));
  await w.close();
});

test('close drains what is queued without waiting for the timer, and leaves no timer running', async () => {
  const { s, stored } = sink();
  const w = new AuditWriter(s, { flushIntervalMs: 60_000 });
  const rows = [row(), row()];
  for (const r of rows) w.write(r);
  const started = Date.now();
  await w.close();
  assert.deepEqual(
    stored(),
    rows.map((r) => r.id),
  );
  assert.ok(Date.now() - started < 1000);
  // A pending 60 s timer would keep this test file alive past its last test.
  w.write(row());
  assert.equal(w.pending, 0, 'a closed writer queues nothing');
});

test('close while the database is down gives up after one attempt, logs the loss, and stops retrying', async () => {
  const { s, state } = sink();
  const logs: string[] = [];
  const w = new AuditWriter(s, { flushIntervalMs: 5, retryMs: 10, log: (m) => logs.push(m) });
  state.down = true;
  w.write(row());
  await sleep(30);
  await w.close();
  const calls = state.calls;
  assert.ok(logs.some((l) => /1 audit events could not be written/.test(l)));
  await sleep(40);
  assert.equal(state.calls, calls, 'no retry after close');
});
