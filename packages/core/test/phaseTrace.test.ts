import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PhaseTrace } from '../src/trace/PhaseTrace.js';

const MODULE = fileURLToPath(new URL('../src/trace/PhaseTrace.ts', import.meta.url));

/** A process that makes one trace with two marks and ends it; its stderr. */
function traceIn(env: Record<string, string>): string {
  const script = `
    const { PhaseTrace } = await import(${JSON.stringify(MODULE)});
    const t = PhaseTrace.start('create');
    t.mark('a');
    t.subject = 'bk_1';
    t.mark('b');
    t.end();
    t.end();
    PhaseTrace.start('create').end();
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, SCAIBUNKER_TRACE_SPAWN: '', ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stderr;
}

test('off (the default): start() hands out the shared no-op trace and nothing is written', {
  skip: PhaseTrace.enabled && 'this process traces',
}, () => {
  const t = PhaseTrace.start('create', 'bk_1');
  assert.equal(t, PhaseTrace.off);
  t.mark('a');
  t.end();
  assert.equal(traceIn({}), '');
});

test('on: one stderr line per ended trace with a subject, marks in order on the epoch clock', () => {
  const before = Date.now();
  const lines = traceIn({ SCAIBUNKER_TRACE_SPAWN: '1' }).trim().split('\n');
  assert.equal(lines.length, 1, 'ended twice and a trace without marks or subject: still one line');
  const line = lines[0] as string;
  assert.ok(line.startsWith('[trace] '), line);
  const t = JSON.parse(line.slice('[trace] '.length)) as { op: string; subject: string; marks: Array<[string, number]> };
  assert.equal(t.op, 'create');
  assert.equal(t.subject, 'bk_1');
  assert.deepEqual(
    t.marks.map(([name]) => name),
    ['a', 'b'],
  );
  const [[, a], [, b]] = t.marks as [[string, number], [string, number]];
  assert.ok(b >= a);
  assert.ok(a >= before - 1000 && a <= Date.now() + 1000, `epoch ms, got ${a}`);
});
