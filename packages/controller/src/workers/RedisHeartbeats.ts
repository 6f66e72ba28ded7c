import type { Redis } from 'ioredis';
import { closeRedis, connectRedis } from '../redis/connectRedis.js';
import type { Heartbeats } from './Heartbeats.js';

const KEY = 'workers:heartbeat';

/** Heartbeats in one Redis hash, `workers:heartbeat` (worker id → ms), shared by every controller. */
export class RedisHeartbeats implements Heartbeats {
  private constructor(private readonly redis: Redis) {}

  static async connect(url: string, log?: (m: string) => void): Promise<RedisHeartbeats> {
    return new RedisHeartbeats(await connectRedis(url, { name: 'heartbeats', ...(log ? { log } : {}) }));
  }

  async record(workerId: string, atMs: number): Promise<void> {
    await this.redis.hset(KEY, workerId, String(atMs));
  }

  async lastSeen(): Promise<Map<string, number>> {
    const all = await this.redis.hgetall(KEY);
    return new Map(Object.entries(all).map(([id, ms]) => [id, Number(ms)]));
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
