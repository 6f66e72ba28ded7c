import { Redis } from 'ioredis';

export interface ConnectRedisOptions {
  /** Names the connection in logged errors (`[quota] redis: …`). */
  name: string;
  log?: (msg: string) => void;
}

/**
 * A connected ioredis client, or an error naming the (redacted) URL: a controller configured
 * with Redis fails at start, not at its first create. Errors after that are logged once per
 * distinct message while ioredis reconnects.
 */
export async function connectRedis(url: string, opts: ConnectRedisOptions): Promise<Redis> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 });
  let lastError = '';
  let connected = false;
  redis.on('error', (err: Error) => {
    // Before the first connection the failure is reported below.
    if (connected && err.message !== lastError) log(`[${opts.name}] redis: ${err.message}`);
    lastError = err.message;
  });
  redis.on('ready', () => {
    connected = true;
    lastError = '';
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
