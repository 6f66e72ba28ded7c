import { Redis } from 'ioredis';
import { InProcessQuotaCounters } from '../../src/quotas/InProcessQuotaCounters.js';
import type { QuotaCounters } from '../../src/quotas/QuotaCounters.js';
import { RedisQuotaCounters } from '../../src/quotas/RedisQuotaCounters.js';

/** The test Redis; missing is a failure, never a skip (scripts/test.sh starts one and sets it). */
export function testRedisUrl(): string {
  const url = process.env.SCAIBUNKER_TEST_REDIS_URL;
  if (!url) throw new Error('SCAIBUNKER_TEST_REDIS_URL is not set: run the suite with `npm test` (it starts Redis)');
  return url;
}

/** Runs one command on the test Redis with a connection of its own (FLUSHALL, SCRIPT FLUSH, GET…). */
export async function redisCommand(...args: [string, ...Array<string | number>]): Promise<unknown> {
  const redis = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    return await redis.call(...args);
  } finally {
    redis.disconnect();
  }
}

/** Both counter implementations; `wipe` loses every counter (a Redis FLUSHALL, a process restart). */
export const COUNTERS: Array<{
  name: 'in-process' | 'redis';
  create(): Promise<QuotaCounters>;
  wipe(counters: QuotaCounters): Promise<void>;
}> = [
  {
    name: 'in-process',
    create: async () => new InProcessQuotaCounters(),
    wipe: (c) => (c as InProcessQuotaCounters).wipe(),
  },
  {
    name: 'redis',
    create: () => RedisQuotaCounters.connect(testRedisUrl()),
    wipe: async () => {
      await redisCommand('FLUSHALL');
    },
  },
];
