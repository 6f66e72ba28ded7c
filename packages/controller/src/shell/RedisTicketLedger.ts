import type { Redis } from 'ioredis';
import type { DependencyState } from '../health/DependencyState.js';
import { closeRedis, connectRedis, liveState } from '../redis/connectRedis.js';
import type { TicketLedger } from './TicketLedger.js';

/** Several controllers: a ticket is spent by whichever sets `tickets:spent:<id>` first (SET NX). */
export class RedisTicketLedger implements TicketLedger {
  private constructor(
    private readonly redis: Redis,
    private readonly state: DependencyState | undefined,
  ) {}

  static async connect(url: string, state?: DependencyState): Promise<RedisTicketLedger> {
    return new RedisTicketLedger(await connectRedis(url, { name: 'tickets', ...(state ? { state } : {}) }), state);
  }

  async claim(id: string, ttlMs: number): Promise<boolean> {
    const set = await liveState(() => this.redis.set(`tickets:spent:${id}`, '1', 'PX', ttlMs, 'NX'), this.state);
    return set === 'OK';
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
