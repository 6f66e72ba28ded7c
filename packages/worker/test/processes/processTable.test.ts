import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type ExecHandlers, type ExecOutcome, WorkerError } from '@scaibunker/core';
import { ProcessTable } from '../../src/processes/ProcessTable.js';
import type { RunningProcess } from '../../src/processes/TrackedProcess.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-ptable-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A process that prints `output` and exits 0 once `finish()` is called. */
function fakeLaunch(output: Buffer) {
  let finish!: () => void;
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  const launch = (h: ExecHandlers): RunningProcess => {
    const result = (async (): Promise<ExecOutcome> => {
      await h.onStdout?.(output);
      await finished;
      return { exitCode: 0, signal: null, timedOut: false, durationMs: 1 };
    })();
    return {
      started: Promise.resolve({ pid: 7 }),
      result,
      write: async () => {},
      closeStdin: () => {},
      signal: () => {},
      resize: () => {},
      kill: () => {},
    };
  };
  return { launch, finish: () => finish() };
}

const meta = (execId: string, background = false) => ({ execId, background, tag: null, pty: false, stdinOpen: false });

test('finished journals past the memory budget are dropped oldest first, across bunkers; running ones stay', async () => {
  const table = new ProcessTable({ spillDir: dir, blockingMemoryBytes: 1000, finishedMemoryBytes: 2500 });
  const running = fakeLaunch(Buffer.alloc(1000, 1));
  await table.start('bk_a', meta('ex_running'), running.launch);
  for (let i = 0; i < 5; i++) {
    const p = fakeLaunch(Buffer.alloc(1000, i));
    const tracked = await table.start(i % 2 ? 'bk_a' : 'bk_b', meta(`ex_${i}`), p.launch);
    p.finish();
    await tracked.whenEnded();
    await tracked.result;
  }
  const known = (bunker: string, id: string) => {
    try {
      table.get(bunker, id);
      return true;
    } catch (err) {
      assert.ok(err instanceof WorkerError && err.code === 'PROCESS_NOT_FOUND');
      return false;
    }
  };
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => known(i % 2 ? 'bk_a' : 'bk_b', `ex_${i}`)),
    [false, false, false, true, true],
  );
  assert.ok(known('bk_a', 'ex_running'), 'a running exec is never dropped');
  assert.equal(table.get('bk_b', 'ex_4').info().outputBytes, 1000);
  running.finish();
});

test('a blocking exec keeps at most its memory bound; a repeated background start answers the same process', async () => {
  const table = new ProcessTable({ spillDir: dir, blockingMemoryBytes: 1500 });
  const big = fakeLaunch(Buffer.alloc(4000, 2));
  const p = await table.start('bk_c', meta('ex_big'), big.launch);
  big.finish();
  await p.whenEnded();
  assert.equal(p.info().outputTruncated, false, 'one chunk over the bound is kept whole');
  const bg = fakeLaunch(Buffer.from('x'));
  const first = await table.start('bk_c', meta('ex_bg', true), bg.launch);
  const again = await table.start('bk_c', meta('ex_bg', true), fakeLaunch(Buffer.from('y')).launch);
  assert.equal(again, first);
  await assert.rejects(
    table.start('bk_c', meta('ex_big'), fakeLaunch(Buffer.from('z')).launch),
    (e: unknown) => e instanceof WorkerError && e.code === 'PROCESS_CONFLICT',
  );
  bg.finish();
});

test('a bunker keeps its newest keepFinished finished execs; other bunkers and running execs are untouched', async () => {
  const table = new ProcessTable({ spillDir: dir, keepFinished: 3 });
  const running = fakeLaunch(Buffer.from('r'));
  await table.start('bk_k', meta('ex_running'), running.launch);
  const runToEnd = async (bunker: string, id: string) => {
    const p = fakeLaunch(Buffer.from(id));
    const tracked = await table.start(bunker, meta(id), p.launch);
    p.finish();
    await tracked.whenEnded();
    await tracked.result;
  };
  for (let i = 0; i < 6; i++) await runToEnd('bk_k', `ex_k${i}`);
  for (let i = 0; i < 2; i++) await runToEnd('bk_o', `ex_o${i}`);
  const ids = (bunker: string) => table.list(bunker).map((p) => p.execId);
  assert.deepEqual(ids('bk_k'), ['ex_k5', 'ex_k4', 'ex_k3', 'ex_running']);
  assert.deepEqual(ids('bk_o'), ['ex_o1', 'ex_o0']);
  // A bunker dropped and used again starts its count afresh.
  await table.dropBunker('bk_o');
  for (let i = 0; i < 4; i++) await runToEnd('bk_o', `ex_p${i}`);
  assert.deepEqual(ids('bk_o'), ['ex_p3', 'ex_p2', 'ex_p1']);
  running.finish();
});
