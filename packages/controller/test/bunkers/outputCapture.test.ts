/** Exec output past the inline cap: stored within the budget, capped past it, and a store that fails is an answer, not a crash. */
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { test } from 'node:test';
import type { BlobStore } from '../../src/blobs/BlobStore.js';
import { OutputCapture } from '../../src/bunkers/OutputCapture.js';
import type { OutputBudget } from '../../src/bunkers/OutputStorage.js';

/** Keeps what is put, or fails every put with `failWith` once `failAfter` bytes have arrived. */
function memoryBlobs(failWith?: NodeJS.ErrnoException, failAfter = 0) {
  const objects = new Map<string, Buffer>();
  const blobs = {
    put: async (key: string, data: Readable | Buffer) => {
      const parts: Buffer[] = [];
      let n = 0;
      for await (const c of data as Readable) {
        parts.push(c as Buffer);
        n += (c as Buffer).length;
        if (failWith && n > failAfter) {
          (data as Readable).destroy();
          throw failWith;
        }
      }
      objects.set(key, Buffer.concat(parts));
      return { bytes: n };
    },
  } as unknown as BlobStore;
  return { blobs, objects };
}

function budget(bytes: number): OutputBudget & { taken: number } {
  let left = bytes;
  const b = {
    taken: 0,
    open: async () => (left > 0 ? undefined : ('capped' as const)),
    take: (want: number) => {
      const n = Math.min(want, left);
      left -= n;
      b.taken += n;
      return n;
    },
    release: (n: number) => {
      b.taken -= n;
    },
  };
  return b;
}

test('past the budget the stored object ends at the cap and says capped; the response keeps its inline part', async () => {
  const { blobs, objects } = memoryBlobs();
  const capture = new OutputCapture(blobs, 'k', 10, budget(25));
  for (let i = 0; i < 10; i++) await capture.write(Buffer.alloc(10, 97 + i));
  await capture.finish();
  assert.equal(capture.storeState, 'capped');
  assert.equal(capture.stored, 25);
  assert.equal(objects.get('k')?.length, 25);
  assert.equal(capture.text(), 'a'.repeat(10));
  assert.equal(capture.bytes, 100);
  assert.equal(capture.truncated, true);
});

test('within the budget the whole stream is stored: complete', async () => {
  const { blobs, objects } = memoryBlobs();
  const capture = new OutputCapture(blobs, 'k', 4, budget(1000));
  await capture.write(Buffer.from('hello world'));
  await capture.finish();
  assert.equal(capture.storeState, 'complete');
  assert.equal(objects.get('k')?.toString(), 'hello world');
});

test('a store that runs out of space mid-stream: failed, nothing kept, the budget given back, no unhandled rejection', async () => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  const { blobs, objects } = memoryBlobs(enospc, 20);
  const b = budget(1000);
  const capture = new OutputCapture(blobs, 'k', 5, b);
  for (let i = 0; i < 20; i++) await capture.write(Buffer.alloc(10, 120));
  await capture.finish();
  assert.equal(capture.storeState, 'failed');
  assert.equal(capture.stored, 0);
  assert.equal(b.taken, 0);
  assert.equal(objects.has('k'), false);
  assert.equal((capture.error as NodeJS.ErrnoException).code, 'ENOSPC');
});

test('a refused budget (tenant cap reached, disk under its reserve) stores nothing: capped', async () => {
  const { blobs, objects } = memoryBlobs();
  const capture = new OutputCapture(blobs, 'k', 5, budget(0));
  await capture.write(Buffer.alloc(50, 1));
  await capture.finish();
  assert.equal(capture.storeState, 'capped');
  assert.equal(objects.size, 0);
});
