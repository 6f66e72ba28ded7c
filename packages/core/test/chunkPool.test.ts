import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkPool, returnChunk } from '../src/buffers/ChunkPool.js';

test('a lent chunk is a copy; handed back, its block is lent again', () => {
  const pool = new ChunkPool(16, 4);
  const src = Buffer.from('hello');
  const a = pool.lend(src);
  src.fill(0);
  assert.equal(a.toString(), 'hello', 'the bytes were copied');
  returnChunk(a);
  assert.equal(pool.idle, 1);
  const b = pool.lend(Buffer.from('world!'));
  assert.equal(b.buffer, a.buffer, 'the same memory, read into again');
  assert.equal(b.toString(), 'world!');
  assert.equal(pool.idle, 0);
});

test('pieces are lent joined, in order, as one chunk', () => {
  const pool = new ChunkPool(16, 4);
  const a = pool.lend([Buffer.from('ab'), Buffer.alloc(0), Buffer.from('cde')]);
  assert.equal(a.toString(), 'abcde');
  assert.throws(() => pool.lend([Buffer.alloc(10), Buffer.alloc(7)]), RangeError);
});

test('only the very chunk lent goes back, once: views, copies, foreign buffers and repeats do nothing', () => {
  const pool = new ChunkPool(16, 4);
  const a = pool.lend(Buffer.from('abcdef'));
  returnChunk(a.subarray(1));
  returnChunk(Buffer.from(a));
  returnChunk(Buffer.from('not lent'));
  returnChunk(new Uint8Array(4));
  assert.equal(pool.idle, 0);
  returnChunk(a);
  returnChunk(a);
  assert.equal(pool.idle, 1, 'handed back once, counted once');
  // Two lends in a row after one return: the second gets fresh memory, not the block in use.
  const b = pool.lend(Buffer.from('x'));
  const c = pool.lend(Buffer.from('y'));
  assert.notEqual(b.buffer, c.buffer);
});

test('at most `keep` blocks wait for reuse; larger chunks than a block are refused', () => {
  const pool = new ChunkPool(8, 2);
  const lent = [1, 2, 3, 4].map((i) => pool.lend(Buffer.alloc(8, i)));
  for (const c of lent) returnChunk(c);
  assert.equal(pool.idle, 2);
  assert.throws(() => pool.lend(Buffer.alloc(9)), RangeError);
});
