import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { DependencyState } from '../health/DependencyState.js';
import { closeRedis, connectRedis, liveState } from '../redis/connectRedis.js';
import { CHARGE, type LuaScript, REBUILD, RELEASE, UNLOCK } from './luaScripts.js';
import type { ChargeResult, ChargeSet, QuotaCharge, QuotaCounters } from './QuotaCounters.js';

export const EPOCH_KEY = 'quota:epoch';
export const STASH_PREFIX = 'quota:bunker:';
const BUCKET_REGISTRY = 'quota:buckets';
const BUNKER_REGISTRY = 'quota:bunkers';
const LOCK_KEY = 'quota:rebuild:lock';

export interface RedisQuotaCountersOptions {
  /** How long a rebuild may hold the lock before another controller may take it. */
  lockTtlMs?: number;
  log?: (msg: string) => void;
  state?: DependencyState;
}

/**
 * Quota counters in Redis (`quota:bucket:{kind}:{id}:{resource}`), shared by every controller.
 * Each create's check-and-increment over all of its buckets is one Lua script, and so is each
 * release; the decrement set lives in `quota:bunker:{bunker_id}`. `quota:epoch` marks the
 * counters as built: after a wipe it is gone and the next user rebuilds them from rows, under
 * `quota:rebuild:lock`. Single Redis instance (not Cluster: scripts touch keys across slots).
 */
export class RedisQuotaCounters implements QuotaCounters {
  readonly kind = 'redis' as const;
  private readonly lockTtlMs: number;
  private readonly state: DependencyState | undefined;

  private constructor(
    private readonly redis: Redis,
    opts: RedisQuotaCountersOptions,
  ) {
    this.lockTtlMs = opts.lockTtlMs ?? 30_000;
    this.state = opts.state;
  }

  /** Connects (failing now, not at the first create, when Redis does not answer). */
  static async connect(url: string, opts: RedisQuotaCountersOptions = {}): Promise<RedisQuotaCounters> {
    return new RedisQuotaCounters(
      await connectRedis(url, { name: 'quota', ...(opts.log ? { log: opts.log } : {}), ...(opts.state ? { state: opts.state } : {}) }),
      opts,
    );
  }

  /** EVALSHA, loading the script when Redis does not have it (a restart or SCRIPT FLUSH). */
  private run(script: LuaScript, keys: string[], args: Array<string | number>): Promise<unknown> {
    return liveState(async () => {
      try {
        return await this.redis.evalsha(script.sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
        await this.redis.script('LOAD', script.source);
        return this.redis.evalsha(script.sha, keys.length, ...keys, ...args);
      }
    }, this.state);
  }

  async tryCharge(bunkerId: string, charges: readonly QuotaCharge[]): Promise<ChargeResult> {
    const keys = [EPOCH_KEY, STASH_PREFIX + bunkerId, BUCKET_REGISTRY, BUNKER_REGISTRY, ...charges.map((c) => c.key)];
    const args: Array<string | number> = [bunkerId];
    for (const c of charges) args.push(c.amount, c.cap === null ? '' : c.cap);
    const reply = (await this.run(CHARGE, keys, args)) as [string, number?, number?];
    if (reply[0] === 'ok') return { status: 'ok' };
    if (reply[0] === 'not_ready') return { status: 'not_ready' };
    return { status: 'exceeded', index: Number(reply[1]), current: Number(reply[2]) };
  }

  async release(bunkerId: string): Promise<boolean> {
    return (await this.run(RELEASE, [STASH_PREFIX + bunkerId, BUNKER_REGISTRY, BUCKET_REGISTRY], [bunkerId])) === 1;
  }

  async usage(keys: readonly string[]): Promise<Map<string, number>> {
    if (keys.length === 0) return new Map();
    const values = await liveState(() => this.redis.mget(...keys), this.state);
    return new Map(keys.map((k, i) => [k, Number(values[i] ?? 0)]));
  }

  async isReady(): Promise<boolean> {
    return (await liveState(() => this.redis.exists(EPOCH_KEY), this.state)) === 1;
  }

  async rebuild(sets: readonly ChargeSet[]): Promise<void> {
    // Amounts as strings: Lua numbers decoded from JSON would reach Redis formatted as floats.
    const data = sets.map((s) => [s.bunkerId, s.charges.flatMap((c) => [c.key, String(c.amount)])]);
    const epoch = `${new Date().toISOString()} ${randomBytes(4).toString('hex')}`;
    await this.run(REBUILD, [EPOCH_KEY, BUCKET_REGISTRY, BUNKER_REGISTRY], [epoch, STASH_PREFIX, JSON.stringify(data)]);
  }

  async withRebuildLock<T>(fn: () => Promise<T>): Promise<T> {
    const token = randomBytes(16).toString('hex');
    const deadline = Date.now() + 2 * this.lockTtlMs;
    while ((await liveState(() => this.redis.set(LOCK_KEY, token, 'PX', this.lockTtlMs, 'NX'), this.state)) !== 'OK') {
      if (Date.now() > deadline) throw new Error('timed out waiting for the quota rebuild lock');
      await sleep(20);
    }
    try {
      return await fn();
    } finally {
      await this.run(UNLOCK, [LOCK_KEY], [token]).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await closeRedis(this.redis);
  }
}
