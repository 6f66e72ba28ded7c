/** Group commit of exec-log rows: batching, merging a completion into its queued start, order, failures. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExecLogWriter } from '../../src/bunkers/ExecLogWriter.js';
import type { ExecLogStore } from '../../src/store/ExecLogStore.js';
import type { ExecLogRow } from '../../src/store/schema.js';
import { execLogRow } from '../helpers/rows.js';

const row = execLogRow;

/** A store that records each statement and holds it until released. */
function fakeStore(failIds: string[] = []) {
  const statements: ExecLogRow[][] = [];
  const gates: Array<() => void> = [];
  const store = {
    upsertMany: async (rows: readonly ExecLogRow[]) => {
      statements.push(rows.map((r) => ({ ...r })));
      await new Promise<void>((r) => gates.push(r));
      if (rows.some((r) => failIds.includes(r.id))) throw new Error(`refused ${rows.map((r) => r.id).join(',')}`);
    },
  } as unknown as ExecLogStore;
  const openGates = () => {
    for (const g of gates.splice(0)) g();
  };
  return { store, statements, openGates };
}

const tick = () => new Promise((r) => setImmediate(r));

test('writes made together go out as one statement; each resolves only once it committed', async () => {
  const { store, statements, openGates } = fakeStore();
  const w = new ExecLogWriter(store);
  let done = 0;
  const all = ['a', 'b', 'c'].map((id) => w.write(row(id)).then(() => done++));
  await tick();
  assert.equal(statements.length, 1);
  assert.deepEqual(
    statements[0]?.map((r) => r.id),
    ['a', 'b', 'c'],
  );
  assert.equal(done, 0, 'nothing resolves before the commit');
  openGates();
  await Promise.all(all);
  assert.equal(done, 3);
});

test('a completion queued behind its start merges into it: one row, written complete', async () => {
  const { store, statements, openGates } = fakeStore();
  const w = new ExecLogWriter(store);
  const start = w.write(row('a'));
  const end = w.write(row('a', { exit_code: 0, finished_at: 'x' }));
  await tick();
  openGates();
  await Promise.all([start, end]);
  assert.deepEqual(
    statements.map((s) => s.map((r) => `${r.id}:${r.exit_code}`)),
    [['a:0']],
  );
});

test('a completion made while its start is being written goes in the next statement, after the start committed', async () => {
  const { store, statements, openGates } = fakeStore();
  const w = new ExecLogWriter(store);
  const start = w.write(row('b'));
  await tick();
  assert.equal(statements.length, 1, 'the start is in flight');
  const end = w.write(row('b', { exit_code: 1 }));
  await tick();
  assert.equal(statements.length, 1, 'one statement at a time');
  openGates();
  await start;
  await tick();
  assert.equal(statements.length, 2);
  openGates();
  await end;
  assert.deepEqual(
    statements.map((s) => s.map((r) => `${r.id}:${r.exit_code}`)),
    [['b:null'], ['b:1']],
  );
});

test('a row the database refuses fails its own exec only', async () => {
  const { store, openGates } = fakeStore(['bad']);
  const w = new ExecLogWriter(store);
  const good = w.write(row('good'));
  const bad = w.write(row('bad'));
  const opener = setInterval(openGates, 1);
  try {
    await good;
    await assert.rejects(bad, /refused bad/);
  } finally {
    clearInterval(opener);
  }
});

test('a start written later is dropped when its exec ends first, and written when it is still running after the delay', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { store, statements, openGates } = fakeStore();
  const w = new ExecLogWriter(store);
  w.writeStartLater(row('short'), 1000);
  w.writeStartLater(row('long'), 1000);
  const shortEnd = w.write(row('short', { exit_code: 0, finished_at: 'x' }));
  await tick();
  openGates();
  await shortEnd;
  assert.deepEqual(
    statements.map((s) => s.map((r) => `${r.id}:${r.exit_code}`)),
    [['short:0']],
    'the short exec wrote its completed row only',
  );
  t.mock.timers.tick(999);
  await tick();
  assert.equal(statements.length, 1, 'no start before the delay');
  t.mock.timers.tick(1);
  await tick();
  assert.deepEqual(
    statements.map((s) => s.map((r) => `${r.id}:${r.exit_code}`)),
    [['short:0'], ['long:null']],
  );
  openGates();
  const longEnd = w.write(row('long', { exit_code: 1, finished_at: 'y' }));
  await tick();
  openGates();
  await longEnd;
  assert.deepEqual(
    statements.at(-1)?.map((r) => `${r.id}:${r.exit_code}`),
    ['long:1'],
  );
});

test('close writes the starts of execs still running', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { store, statements, openGates } = fakeStore();
  const w = new ExecLogWriter(store);
  w.writeStartLater(row('running'), 1000);
  const closed = w.close();
  await tick();
  openGates();
  await closed;
  assert.deepEqual(
    statements.map((s) => s.map((r) => r.id)),
    [['running']],
  );
});

/**
 * A writer that lingers for up to 4 ms with 2 siblings, whose blocking execs lately took `took`
 * ms (a manual clock); three execs a, b, c then run, and a has ended.
 */
async function afterFirstOfThree(took: number) {
  const { store, statements, openGates } = fakeStore();
  const clock = { ms: 0 };
  const w = new ExecLogWriter(store, undefined, undefined, { siblings: 2, maxLingerMs: 4, latencyShare: 1 / 3, now: () => clock.ms });
  w.writeStartLater(row('earlier'), 1000);
  clock.ms += took;
  const earlier = w.write(row('earlier', { exit_code: 0, finished_at: 'x' }));
  await tick();
  openGates();
  await earlier;
  statements.length = 0;
  for (const id of ['a', 'b', 'c']) w.writeStartLater(row(id), 1000);
  const a = w.write(row('a', { exit_code: 0, finished_at: 'x' }));
  return { w, statements, openGates, a };
}

test('under load a flush waits for the rows of the execs running beside it, and goes once they have all queued', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { w, statements, openGates, a } = await afterFirstOfThree(30);
  await tick();
  assert.equal(statements.length, 0, 'two siblings still run: the flush waits');
  const b = w.write(row('b', { exit_code: 0, finished_at: 'x' }));
  await tick();
  assert.equal(statements.length, 0, 'one sibling still runs');
  const c = w.write(row('c', { exit_code: 0, finished_at: 'x' }));
  await tick();
  assert.deepEqual(
    statements.map((s) => s.map((r) => r.id)),
    [['a', 'b', 'c']],
    'the last sibling queued: one statement, before the linger ran out',
  );
  openGates();
  await Promise.all([a, b, c]);
});

test('a linger ends after its time whatever still runs; with fewer siblings a flush does not wait', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { w, statements, openGates, a } = await afterFirstOfThree(30);
  t.mock.timers.tick(3);
  await tick();
  assert.equal(statements.length, 0);
  t.mock.timers.tick(1);
  await tick();
  assert.deepEqual(
    statements.map((s) => s.map((r) => r.id)),
    [['a']],
    'maxLingerMs (4), not a third of 30 ms',
  );
  openGates();
  await a;
  // One sibling left running (c) after b ends: below `siblings`, so b's row goes at once.
  const b = w.write(row('b', { exit_code: 0, finished_at: 'x' }));
  await tick();
  assert.deepEqual(
    statements.at(-1)?.map((r) => r.id),
    ['b'],
  );
  openGates();
  await b;
  const closed = w.close();
  await tick();
  openGates();
  await closed;
});

test('a linger is at most a third of what execs took lately, and none when they are fast', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  for (const [took, linger] of [
    [6, 2],
    [2, 0],
  ] as const) {
    const { w, statements, openGates, a } = await afterFirstOfThree(took);
    if (linger > 0) {
      t.mock.timers.tick(linger - 1);
      await tick();
      assert.equal(statements.length, 0, `execs took ${took} ms: still waiting after ${linger - 1} ms`);
      t.mock.timers.tick(1);
    }
    await tick();
    assert.deepEqual(
      statements.map((s) => s.map((r) => r.id)),
      [['a']],
      `execs took ${took} ms: the flush went after ${linger} ms`,
    );
    openGates();
    await a;
    const closed = w.close();
    await tick();
    openGates();
    await closed;
  }
});
