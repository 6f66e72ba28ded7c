/**
 * The QuotaCounters contract, on both implementations (in-process and Redis), plus what only
 * Redis has: the key layout, EVALSHA falling back to loading the script, the rebuild lock.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '@scaibunker/core';
import type { QuotaCounters } from '../../src/quotas/QuotaCounters.js';
import { RedisQuotaCounters } from '../../src/quotas/RedisQuotaCounters.js';
import { COUNTERS, redisCommand, testRedisUrl } from '../helpers/redis.js';

const key = (name: string) => `quota:bucket:user:${newId('tn')}:${name}:bunkers`;

for (const impl of COUNTERS) {
  describe(`quota counters (${impl.name})`, () => {
    let counters: QuotaCounters;

    before(async () => {
      if (impl.name === 'redis') await redisCommand('FLUSHALL');
      counters = await impl.create();
    });
    after(async () => counters?.close());

    test('not ready until rebuilt: a charge answers not_ready and changes nothing', async () => {
      assert.equal(await counters.isReady(), false);
      const k = key('a');
      assert.deepEqual(await counters.tryCharge(newId('bk'), [{ key: k, amount: 1, cap: 5 }]), { status: 'not_ready' });
      await counters.rebuild([]);
      assert.equal(await counters.isReady(), true);
      assert.equal((await counters.usage([k])).get(k), 0);
    });

    test('a charge is all or nothing and names the first counter over its cap', async () => {
      const [a, b, c] = [key('a'), key('b'), key('c')];
      const first = newId('bk');
      assert.deepEqual(
        await counters.tryCharge(first, [
          { key: a, amount: 2, cap: 3 },
          { key: b, amount: 5, cap: null },
        ]),
        { status: 'ok' },
      );
      const refused = await counters.tryCharge(newId('bk'), [
        { key: c, amount: 1, cap: 10 },
        { key: a, amount: 2, cap: 3 },
        { key: b, amount: 1, cap: 1 },
      ]);
      assert.deepEqual(refused, { status: 'exceeded', index: 1, current: 2 });
      const now = await counters.usage([a, b, c]);
      assert.deepEqual([now.get(a), now.get(b), now.get(c)], [2, 5, 0], 'nothing of the refused charge stuck');
      // charging the same bunker again is a no-op
      assert.deepEqual(await counters.tryCharge(first, [{ key: a, amount: 2, cap: 3 }]), { status: 'ok' });
      assert.equal((await counters.usage([a])).get(a), 2);
    });

    test('an amount of 0 is never refused, even over a cap lowered below current', async () => {
      const k = key('gpu');
      assert.equal((await counters.tryCharge(newId('bk'), [{ key: k, amount: 3, cap: 3 }])).status, 'ok');
      assert.equal((await counters.tryCharge(newId('bk'), [{ key: k, amount: 0, cap: 1 }])).status, 'ok');
      assert.equal((await counters.tryCharge(newId('bk'), [{ key: k, amount: 1, cap: 1 }])).status, 'exceeded');
    });

    test('release decrements exactly the charged set, once', async () => {
      const [a, b] = [key('a'), key('b')];
      const id = newId('bk');
      await counters.tryCharge(id, [
        { key: a, amount: 1, cap: null },
        { key: b, amount: 512, cap: 1024 },
      ]);
      await counters.tryCharge(newId('bk'), [{ key: b, amount: 256, cap: 1024 }]);
      assert.equal(await counters.release(id), true);
      assert.equal(await counters.release(id), false, 'idempotent');
      assert.equal(await counters.release(newId('bk')), false, 'never charged');
      const now = await counters.usage([a, b]);
      assert.deepEqual([now.get(a), now.get(b)], [0, 256]);
    });

    test('rebuild replaces every counter and decrement set', async () => {
      const [a, b] = [key('a'), key('b')];
      const old = newId('bk');
      await counters.tryCharge(old, [{ key: a, amount: 7, cap: null }]);
      const kept = newId('bk');
      await counters.rebuild([{ bunkerId: kept, charges: [{ key: b, amount: 1000000000 }] }]);
      const now = await counters.usage([a, b]);
      assert.deepEqual([now.get(a), now.get(b)], [0, 1000000000]);
      assert.equal(await counters.release(old), false, 'the old set is gone with the old counters');
      assert.equal(await counters.release(kept), true);
      assert.equal((await counters.usage([b])).get(b), 0);
    });

    test('a wipe makes the counters not ready again', async () => {
      await impl.wipe(counters);
      assert.equal(await counters.isReady(), false);
      await counters.rebuild([]);
    });

    test('the rebuild lock runs one holder at a time', async () => {
      let inside = 0;
      let most = 0;
      await Promise.all(
        Array.from({ length: 5 }, () =>
          counters.withRebuildLock(async () => {
            inside++;
            most = Math.max(most, inside);
            await new Promise((r) => setTimeout(r, 15));
            inside--;
          }),
        ),
      );
      assert.equal(most, 1);
    });
  });
}

describe('Redis counters: keys, scripts and the lock across connections', () => {
  let one: RedisQuotaCounters;
  let two: RedisQuotaCounters;

  before(async () => {
    await redisCommand('FLUSHALL');
    one = await RedisQuotaCounters.connect(testRedisUrl());
    two = await RedisQuotaCounters.connect(testRedisUrl());
    await one.rebuild([]);
  });
  after(async () => {
    await one?.close();
    await two?.close();
  });

  test('bucket counters are plain integers; the decrement set is a hash at quota:bunker:{id}; the epoch marks readiness', async () => {
    const k = key('layout');
    const id = newId('bk');
    assert.equal((await one.tryCharge(id, [{ key: k, amount: 3, cap: 10 }])).status, 'ok');
    assert.equal(await redisCommand('GET', k), '3');
    assert.deepEqual(await redisCommand('HGETALL', `quota:bunker:${id}`), [k, '3']);
    assert.equal(await redisCommand('EXISTS', 'quota:epoch'), 1);
    await one.release(id);
    assert.equal(await redisCommand('EXISTS', `quota:bunker:${id}`), 0);
    assert.equal(await redisCommand('EXISTS', k), 0, 'a counter back at 0 is removed');
  });

  test('after SCRIPT FLUSH the scripts are loaded again (EVALSHA falls back on NOSCRIPT)', async () => {
    await redisCommand('SCRIPT', 'FLUSH');
    const k = key('noscript');
    const id = newId('bk');
    assert.equal((await one.tryCharge(id, [{ key: k, amount: 1, cap: 1 }])).status, 'ok');
    await redisCommand('SCRIPT', 'FLUSH');
    assert.equal(await one.release(id), true);
    await redisCommand('SCRIPT', 'FLUSH');
    await one.rebuild([]);
    assert.equal(await one.isReady(), true);
  });

  test('two connections never overshoot a cap and share one rebuild lock', async () => {
    const k = key('race');
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? one : two).tryCharge(newId('bk'), [{ key: k, amount: 1, cap: 7 }])),
    );
    assert.equal(results.filter((r) => r.status === 'ok').length, 7);
    assert.equal(await redisCommand('GET', k), '7');
    const order: string[] = [];
    await Promise.all([
      one.withRebuildLock(async () => {
        order.push('one in');
        await new Promise((r) => setTimeout(r, 50));
        order.push('one out');
      }),
      new Promise((r) => setTimeout(r, 10)).then(() =>
        two.withRebuildLock(async () => {
          order.push('two in');
        }),
      ),
    ]);
    assert.deepEqual(order, ['one in', 'one out', 'two in']);
  });

  test('connecting to a Redis that does not answer fails at once with a clear message', async () => {
    await assert.rejects(RedisQuotaCounters.connect('redis://127.0.0.1:1/0'), /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });
});
