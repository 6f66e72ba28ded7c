import type { Redis } from 'ioredis';
import type { DependencyState } from '../health/DependencyState.js';
import { closeRedis, connectRedis, liveState } from '../redis/connectRedis.js';
import type { Heartbeats } from './Heartbeats.js';

const KEY = 'workers:heartbeat';

/** Heartbeats in one Redis hash, `workers:heartbeat` (worker id → ms), shared by every controller. */
export class RedisHeartbeats implements Heartbeats {
  private constructor(
    private readonly redis: Redis,
    private readonly state: DependencyState | undefined,
  ) {}

  static async connect(url: string, state?: DependencyState): Promise<RedisHeartbeats> {
    return new RedisHeartbeats(await connectRedis(url, { name: 'heartbeats', ...(state ? { state } : {}) }), state);
  }

  async record(workerId: string, atMs: number): Promise<void> {
    await liveState(() => this.redis.hset(KEY, workerId, String(atMs)), this.state);
  }

  async lastSeen(): Promise<Map<string, number>> {
    const all = await liveState(() => this.redis.hgetall(KEY), this.state);
    return new Map(Object.entries(all).map(([id, ms]) => [id, Number(ms)]));
  }

  /** One round trip, for readiness: LIVE_STATE_UNAVAILABLE when Redis does not answer. */
  async ping(): Promise<void> {
    await liveState(() => this.redis.ping(), this.state);
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
