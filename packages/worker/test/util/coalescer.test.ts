import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { Coalescer } from '../../src/util/Coalescer.js';

async function collect(chunks: Buffer[], size: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of Readable.from(chunks).pipe(new Coalescer(size))) out.push(c as Buffer);
  return out;
}

test('small chunks come out joined to at least the size, the rest at the end, every byte in order', async () => {
  const chunks = Array.from({ length: 37 }, (_, i) => randomBytes(1000 + i));
  const out = await collect(chunks, 8192);
  assert.deepEqual(Buffer.concat(out), Buffer.concat(chunks));
  for (const c of out.slice(0, -1)) assert.ok(c.length >= 8192, `a middle chunk of ${c.length} bytes`);
  assert.ok(out.length < chunks.length / 4, `${out.length} chunks out of ${chunks.length}`);
});

test('a chunk already at the size passes on as it is; nothing in, nothing out', async () => {
  const big = randomBytes(10_000);
  const out = await collect([big], 4096);
  assert.equal(out.length, 1);
  assert.equal(out[0], big);
  assert.deepEqual(await collect([], 4096), []);
});
