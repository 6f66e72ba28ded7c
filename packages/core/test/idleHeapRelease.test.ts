import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdleHeapRelease, youngGenerationBytes } from '../src/memory/IdleHeapRelease.js';

const MIN_YOUNG = 8 * 1024 * 1024;

// The event loop's utilization reads 0 until the loop has turned once; a server's has long before.
await sleep(1);

/** Short-lived objects, many surviving a scavenge or two: what grows V8's young generation. */
function burst(): void {
  let keep: object[] = [];
  for (let i = 0; i < 3_000_000; i++) {
    keep.push({ i, s: `x${i}` });
    if (keep.length > 200_000) keep = [];
  }
}

test('a burst grows the young generation; it is released at the first quiet look, not while busy', async () => {
  const lines: string[] = [];
  const release = new IdleHeapRelease({ quietUtilization: 0.5, minYoungBytes: MIN_YOUNG }, (l) => lines.push(l));
  release.look(); // from here on the loop's load is measured
  burst();
  const grown = youngGenerationBytes();
  assert.ok(grown >= MIN_YOUNG, `the burst grew the young generation to ${grown} bytes`);
  assert.equal(release.look(), false, 'the burst itself kept the loop busy');
  assert.ok(youngGenerationBytes() >= MIN_YOUNG, 'and it was kept');
  // Quiet: nothing of ours runs, but V8's own tasks after a burst (finishing a collection) may
  // keep an interval busy, so the release comes at one of the next looks, as on the timer.
  let released = false;
  for (let i = 0; i < 20 && !released; i++) {
    await sleep(300);
    released = release.look();
  }
  assert.ok(released, 'released at a quiet look');
  assert.ok(youngGenerationBytes() < MIN_YOUNG, `${youngGenerationBytes()} bytes of young generation left`);
  assert.match(lines.join('\n'), /released an idle heap: young generation was \d+ MB/);
  await sleep(300);
  assert.equal(release.look(), false, 'nothing grew since: no second collection');
  assert.equal(lines.length, 1);
});

test('a young generation under the threshold is left alone, however quiet', async () => {
  const release = new IdleHeapRelease({ quietUtilization: 0.5, minYoungBytes: 1024 * 1024 * 1024 });
  release.look();
  burst();
  await sleep(300);
  assert.equal(release.look(), false);
});

test('started, it looks on its own timer; stopped, it no longer does', async () => {
  let released = 0;
  const release = new IdleHeapRelease({ intervalMs: 100, quietUtilization: 0.5, minYoungBytes: MIN_YOUNG }, () => released++);
  try {
    release.start();
    burst();
    for (let i = 0; i < 100 && released === 0; i++) await sleep(100); // the timer's look: no event to await
    assert.equal(released, 1);
  } finally {
    release.stop();
  }
  burst();
  await sleep(500);
  assert.equal(released, 1, 'no look after stop()');
});
