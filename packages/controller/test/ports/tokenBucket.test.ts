import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TokenBucket } from '../../src/ports/TokenBucket.js';

test('a token bucket lets its burst through, then asks for the time the rate needs', () => {
  let now = 0;
  const b = new TokenBucket(1000, 500, () => now); // 1000 bytes/s, 500 at once
  assert.equal(b.take(500), 0, 'the burst passes without waiting');
  assert.equal(b.take(250), 250, '250 bytes of debt at 1000 bytes/s: 250 ms');
  now = 250;
  assert.equal(b.take(0), 0, 'the debt is paid after those 250 ms');
  now = 10_000;
  assert.equal(b.take(600), 100, 'idle time refills up to the burst, never more');
  now = 10_100;
  assert.equal(b.take(100), 100);
});
