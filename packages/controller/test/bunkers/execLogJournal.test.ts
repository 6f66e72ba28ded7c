/** Exec-log rows through a database outage: journaled on disk, replayed in order, never lost, bounded. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { ApiError } from '@scaibunker/core';
import { ExecLogJournal } from '../../src/bunkers/ExecLogJournal.js';
import { ExecLogWriter } from '../../src/bunkers/ExecLogWriter.js';
import type { ExecLogStore } from '../../src/store/ExecLogStore.js';
import type { ExecLogRow } from '../../src/store/schema.js';
import { execLogRow } from '../helpers/rows.js';

const row = execLogRow;

/** A database that is down until `up()`; once up it records rows by id (last write wins, as the upsert). */
function flakyStore() {
  let down = true;
  const rows = new Map<string, ExecLogRow>();
  const order: string[] = [];
  let onWrite: (() => void) | undefined;
  const store = {
    upsertMany: async (batch: readonly ExecLogRow[]) => {
      if (down) throw new ApiError('STORE_UNAVAILABLE', 'down');
      for (const r of batch) {
        // The store's rule: a finished row is never replaced.
        if (rows.get(r.id)?.finished_at) continue;
        rows.set(r.id, r);
        order.push(r.id);
      }
      onWrite?.();
    },
  } as unknown as ExecLogStore;
  const written = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (rows.size >= n) resolve();
      };
      onWrite = check;
      check();
    });
  return { store, rows, order, written, up: () => (down = false), down: () => (down = true) };
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function journalPath(): string {
  const d = mkdtempSync(join(tmpdir(), 'sb-journal-'));
  dirs.push(d);
  return join(d, 'journal', 'exec-logs.ndjson');
}

test('while the database is down writes resolve once journaled on disk, and reach it, in order, when it is back', async () => {
  const db = flakyStore();
  const path = journalPath();
  const w = new ExecLogWriter(db.store, new ExecLogJournal(path), () => undefined);
  try {
    await w.write(row('a'));
    await w.write(row('b'));
    await w.write(row('a', { exit_code: 0, finished_at: '2030-01-01T00:00:01.000Z' }));
    const onDisk = readFileSync(path, 'utf8').trim().split('\n');
    assert.equal(onDisk.length, 3, 'each write synced to the journal before it resolved');
    assert.equal(db.rows.size, 0);
    db.up();
    await db.written(2);
    assert.equal(db.rows.get('a')?.exit_code, 0, 'the completion, not the start');
    assert.deepEqual(db.order, ['a', 'b']);
    // Written while the journal drains (it joins the journal) or after (straight in): it arrives either way.
    await w.write(row('c'));
    await db.written(3);
    assert.deepEqual(db.order, ['a', 'b', 'c']);
  } finally {
    await w.close();
  }
});

test('rows journaled before a restart are replayed by the next writer on the same file', async () => {
  const db = flakyStore();
  const path = journalPath();
  const first = new ExecLogWriter(db.store, new ExecLogJournal(path), () => undefined);
  await first.write(row('x', { exit_code: 3, finished_at: '2030-01-01T00:00:01.000Z' }));
  await first.close();
  db.up();
  const second = new ExecLogWriter(db.store, new ExecLogJournal(path), () => undefined);
  try {
    await db.written(1);
    assert.equal(db.rows.get('x')?.exit_code, 3);
  } finally {
    await second.close();
  }
  assert.equal(readFileSync(path, 'utf8'), '', 'the journal is empty once replayed');
});

test('a full journal refuses the write with STORE_UNAVAILABLE instead of growing without bound', async () => {
  const db = flakyStore();
  const w = new ExecLogWriter(db.store, new ExecLogJournal(journalPath(), 2), () => undefined);
  try {
    await w.write(row('a'));
    await w.write(row('b'));
    await assert.rejects(w.write(row('c')), (e: unknown) => e instanceof ApiError && e.code === 'STORE_UNAVAILABLE');
    // A later write of a journaled exec still fits: it replaces its row.
    await w.write(row('a', { exit_code: 1, finished_at: 'x' }));
  } finally {
    await w.close();
  }
});

test('without a journal an outage fails the write, as before', async () => {
  const db = flakyStore();
  const w = new ExecLogWriter(db.store);
  await assert.rejects(w.write(row('a')), (e: unknown) => e instanceof ApiError && e.code === 'STORE_UNAVAILABLE');
  await w.close();
});
