import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newId } from '../src/ids/newId.js';

test('ids are prefixed, 20 base32 characters, and distinct across many refills of the random pool', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const id = newId('bk');
    assert.match(id, /^bk_[0-9a-hjkmnp-tv-z]{20}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 5000);
});
