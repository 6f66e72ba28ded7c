import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { after, describe, test } from 'node:test';
import type { ChangeFeed, ChangeTopic } from '../../src/live/ChangeFeed.js';
import { InProcessChangeFeed } from '../../src/live/InProcessChangeFeed.js';
import { RedisChangeFeed } from '../../src/live/RedisChangeFeed.js';
import { redisCommand, testRedisUrl } from '../helpers/redis.js';

/** Records a feed's notices and lets a test await the next one. */
function listen(feed: ChangeFeed) {
  const seen: Array<[ChangeTopic, string | null]> = [];
  const events = new EventEmitter();
  feed.subscribe((topic, id) => {
    seen.push([topic, id]);
    events.emit('notice', id);
  });
  return { seen, next: async () => (await once(events, 'notice'))[0] as string | null };
}

test('in-process: a notice reaches the listeners before publish returns', async () => {
  const feed = new InProcessChangeFeed();
  const l = listen(feed);
  feed.publish('bunker', 'bk_1');
  assert.deepEqual(l.seen, [['bunker', 'bk_1']]);
  await feed.close();
});

describe('redis', () => {
  const feeds: RedisChangeFeed[] = [];
  after(() => Promise.all(feeds.map((f) => f.close())));

  test("a notice reaches the other controller's listeners, and the publisher's own once, synchronously", async () => {
    const a = await RedisChangeFeed.connect(testRedisUrl());
    const b = await RedisChangeFeed.connect(testRedisUrl());
    feeds.push(a, b);
    const la = listen(a);
    const lb = listen(b);
    const atB = lb.next();
    a.publish('bunker', 'bk_from_a');
    assert.deepEqual(la.seen, [['bunker', 'bk_from_a']]);
    assert.equal(await atB, 'bk_from_a');
    const atA = la.next();
    b.publish('bunker', 'bk_from_b');
    assert.equal(await atA, 'bk_from_b');
    // A's own notice did not come back to it through Redis.
    assert.deepEqual(
      la.seen.filter(([, id]) => id === 'bk_from_a'),
      [['bunker', 'bk_from_a']],
    );
    // Closed now: the next test kills every pub/sub client, and a feed closed while ioredis
    // resubscribes after that kill leaves an unhandled "Connection is closed" behind.
    await Promise.all([a.close(), b.close()]);
  });

  test('when the subscription reconnects, listeners are told to drop everything', async () => {
    const a = await RedisChangeFeed.connect(testRedisUrl());
    feeds.push(a);
    const l = listen(a);
    const flushed = l.next();
    // Whatever was published while it was away is lost; the feed says so with a null id.
    await redisCommand('CLIENT', 'KILL', 'TYPE', 'pubsub');
    assert.equal(await flushed, null);
  });

  test('an unreachable Redis fails at connect, naming it', async () => {
    await assert.rejects(
      RedisChangeFeed.connect('redis://127.0.0.1:1/0', () => undefined),
      /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/,
    );
  });
});
