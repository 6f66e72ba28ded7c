import { ApiError } from '@scaibunker/core';
import { Redis } from 'ioredis';
import type { DependencyState } from '../health/DependencyState.js';
import { isRedisOutage } from '../health/failures.js';

export interface ConnectRedisOptions {
  /** Names the connection in logged errors (`[quota] redis: …`). */
  name: string;
  log?: (msg: string) => void;
  /** Told when the connection is lost and when it is back (`/readyz`). */
  state?: DependencyState;
}

/**
 * A connected ioredis client, or an error naming the (redacted) URL: a controller configured
 * with Redis fails at start, not at its first create. Errors after that are logged once per
 * distinct message while ioredis reconnects. Commands issued while disconnected fail at once
 * (no offline queue): a create during an outage is answered LIVE_STATE_UNAVAILABLE now, not
 * after a retry budget.
 */
export async function connectRedis(url: string, opts: ConnectRedisOptions): Promise<Redis> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, enableOfflineQueue: false });
  let lastError = '';
  let connected = false;
  redis.on('error', (err: Error) => {
    // Before the first connection the failure is reported below.
    if (connected && err.message !== lastError) log(`[${opts.name}] redis: ${err.message}`);
    lastError = err.message;
    if (connected) opts.state?.down(err);
  });
  redis.on('close', () => {
    if (connected) opts.state?.down(new Error(lastError || 'connection closed'));
  });
  redis.on('ready', () => {
    connected = true;
    lastError = '';
    opts.state?.up();
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${redactUrl(url)}: ${lastError || (err as Error).message}`);
  }
  return redis;
}

/**
 * Runs a command of the live state; an outage (not connected, connection lost under it) becomes
 * LIVE_STATE_UNAVAILABLE, a 503 with Retry-After. Other errors (a script's) pass unchanged.
 */
export async function liveState<T>(command: () => Promise<T>, state?: DependencyState): Promise<T> {
  try {
    return await command();
  } catch (err) {
    if (err instanceof ApiError || !isRedisOutage(err)) throw err;
    state?.down(err);
    throw new ApiError('LIVE_STATE_UNAVAILABLE', 'the live-state store (Redis) cannot be reached right now; retry shortly', {
      dependency: 'redis',
    });
  }
}

export async function closeRedis(redis: Redis): Promise<void> {
  await redis.quit().catch(() => redis.disconnect());
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}
