import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { type JournalChunk, OutputJournal } from '../../src/processes/OutputJournal.js';

const dir = mkdtempSync(join(tmpdir(), 'sb-journal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const chunk = (i: number, size = 1000) => Buffer.alloc(size, i % 251);

async function collect(journal: OutputJournal, from: number): Promise<JournalChunk[]> {
  const out: JournalChunk[] = [];
  for await (const c of journal.read(from)) out.push(c);
  return out;
}

test('chunks past the memory bound spill to disk and replay in order, from any sequence number', async () => {
  const spillPath = join(dir, 'a', 'ex_a.out');
  const journal = new OutputJournal({ spillPath, memoryBytes: 10_000, diskBytes: 1_000_000 });
  for (let i = 1; i <= 100; i++) assert.equal(await journal.append(i % 3 === 0 ? 'stderr' : 'stdout', chunk(i)), i);
  journal.end();
  assert.ok(existsSync(spillPath), 'older chunks went to the spill file');
  const all = await collect(journal, 1);
  assert.deepEqual(
    all.map((c) => c.seq),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  for (const c of all) {
    assert.deepEqual(c.data, chunk(c.seq), `chunk ${c.seq} intact`);
    assert.equal(c.stream, c.seq % 3 === 0 ? 'stderr' : 'stdout');
  }
  assert.deepEqual((await collect(journal, 42)).map((c) => c.seq)[0], 42);
  assert.equal(journal.bytes, 100_000);
  await journal.discard();
  assert.ok(!existsSync(spillPath), 'discard deletes the spill file');
});

test('past the disk bound output is no longer kept: the journal says truncated, later seqs still count', async () => {
  const journal = new OutputJournal({ spillPath: join(dir, 'b.out'), memoryBytes: 4_000, diskBytes: 6_000 });
  for (let i = 1; i <= 30; i++) await journal.append('stdout', chunk(i));
  journal.end();
  assert.equal(journal.truncated, true);
  assert.equal(journal.nextSeq, 31);
  const kept = await collect(journal, 1);
  assert.ok(kept.length > 0 && kept.length < 30, `some but not all kept (${kept.length})`);
  // What is kept is the beginning, without a gap.
  assert.deepEqual(
    kept.map((c) => c.seq),
    Array.from({ length: kept.length }, (_, i) => i + 1),
  );
  for (const c of kept) assert.deepEqual(c.data, chunk(c.seq));
  assert.ok(journal.memoryBytes <= 4_000 + 1_000, 'memory stays within its bound (and one chunk)');
  await journal.discard();
});

test('a journal that may not spill (memory only, or the disk under its reserve) keeps its beginning and writes no file', async () => {
  const memoryOnly = new OutputJournal({ spillPath: join(dir, 'e.out'), memoryBytes: 3_000, diskBytes: 0 });
  const full = new OutputJournal({ spillPath: join(dir, 'f.out'), memoryBytes: 3_000, diskBytes: 1_000_000, canSpill: async () => false });
  for (const journal of [memoryOnly, full]) {
    for (let i = 1; i <= 20; i++) await journal.append('stdout', chunk(i));
    journal.end();
    assert.equal(journal.truncated, true);
    assert.deepEqual(
      (await collect(journal, 1)).map((c) => c.seq),
      [1, 2, 3, 4],
    );
  }
  assert.ok(!existsSync(join(dir, 'e.out')) && !existsSync(join(dir, 'f.out')), 'no spill file');
});

test('a reader that caught up follows live output until the end; several readers at once', async () => {
  const journal = new OutputJournal({ spillPath: join(dir, 'c.out'), memoryBytes: 1_000_000, diskBytes: 1_000_000 });
  await journal.append('stdout', Buffer.from('one'));
  const a = collect(journal, 1);
  const b = collect(journal, 2);
  await journal.append('stderr', Buffer.from('two'));
  await journal.append('stdout', Buffer.from('three'));
  journal.end();
  assert.deepEqual(
    (await a).map((c) => c.data.toString()),
    ['one', 'two', 'three'],
  );
  assert.deepEqual(
    (await b).map((c) => c.data.toString()),
    ['two', 'three'],
  );
});

test('an aborted reader stops waiting', async () => {
  const journal = new OutputJournal({ spillPath: join(dir, 'd.out'), memoryBytes: 1_000, diskBytes: 1_000 });
  const abort = new AbortController();
  const reading = (async () => {
    const seen: number[] = [];
    for await (const c of journal.read(1, abort.signal)) seen.push(c.seq);
    return seen;
  })();
  await journal.append('stdout', Buffer.from('x'));
  abort.abort();
  const seen = await reading;
  assert.ok(seen.length <= 1);
  assert.equal(journal.ended, false);
});
