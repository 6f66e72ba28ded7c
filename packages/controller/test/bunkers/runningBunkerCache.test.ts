import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RunningBunkerCache } from '../../src/bunkers/RunningBunkerCache.js';
import type { BunkerRow } from '../../src/store/schema.js';

const row = (id: string, state = 'running') => ({ id, state, tenant_id: 'tn_a' }) as BunkerRow;

test('keeps running rows only, until invalidated', () => {
  const cache = new RunningBunkerCache();
  cache.put('bk_1', row('bk_1'), cache.version('bk_1'));
  cache.put('bk_2', row('bk_2', 'paused'), cache.version('bk_2'));
  assert.equal(cache.get('bk_1')?.id, 'bk_1');
  assert.equal(cache.get('bk_2'), undefined, 'a paused row is never cached');
  cache.invalidate('bk_1');
  assert.equal(cache.get('bk_1'), undefined);
});

test('a read that began before an invalidation cannot put its older row back', () => {
  const cache = new RunningBunkerCache();
  const before = cache.version('bk_1');
  cache.invalidate('bk_1'); // the row changed while the read was in flight
  cache.put('bk_1', row('bk_1'), before);
  assert.equal(cache.get('bk_1'), undefined);
  cache.put('bk_1', row('bk_1'), cache.version('bk_1'));
  assert.equal(cache.get('bk_1')?.id, 'bk_1');
});

test('invalidating everything (lost notices) drops every row and refuses in-flight puts', () => {
  const cache = new RunningBunkerCache();
  cache.put('bk_1', row('bk_1'), cache.version('bk_1'));
  const inFlight = cache.version('bk_2');
  cache.invalidate(null);
  assert.equal(cache.get('bk_1'), undefined);
  cache.put('bk_2', row('bk_2'), inFlight);
  assert.equal(cache.get('bk_2'), undefined);
});

test('entries expire after the TTL', () => {
  const cache = new RunningBunkerCache(0);
  cache.put('bk_1', row('bk_1'), cache.version('bk_1'));
  assert.equal(cache.get('bk_1'), undefined);
});

test('past its bound on tracked versions a new generation still refuses older reads', () => {
  const cache = new RunningBunkerCache(60_000, 3);
  const inFlight = cache.version('bk_x');
  for (let i = 0; i < 5; i++) cache.invalidate(`bk_${i}`);
  cache.put('bk_x', row('bk_x'), inFlight);
  assert.equal(cache.get('bk_x'), undefined);
});
