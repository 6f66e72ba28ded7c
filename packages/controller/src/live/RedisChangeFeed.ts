import { newId } from '@scaibunker/core';
import type { Redis } from 'ioredis';
import { closeRedis, connectRedis } from '../redis/connectRedis.js';
import { CHANGE_TOPICS, type ChangeFeed, type ChangeListener, type ChangeTopic } from './ChangeFeed.js';

const CHANNEL = 'scaibunker:changes';

/**
 * Change notices over Redis pub/sub (at most once: a message published while a subscriber is
 * disconnected is lost). So whenever the subscription (re)connects, listeners are told to drop
 * everything; a notice that fails to publish is logged, and caches bound the damage with a TTL.
 */
export class RedisChangeFeed implements ChangeFeed {
  private readonly listeners: ChangeListener[] = [];
  private readonly origin = newId('ctl');

  private constructor(
    private readonly pub: Redis,
    private readonly sub: Redis,
    private readonly log: (m: string) => void,
  ) {
    sub.on('message', (_channel: string, message: string) => {
      const [origin, topic, id] = message.split(' ');
      if (origin === this.origin || !id || !CHANGE_TOPICS.includes(topic as ChangeTopic)) return;
      this.emit(topic as ChangeTopic, id);
    });
    // Attached once connected, so every 'ready' is a reconnect: ioredis resubscribes by itself,
    // but whatever was published meanwhile is gone.
    sub.on('ready', () => {
      for (const topic of CHANGE_TOPICS) this.emit(topic, null);
    });
  }

  static async connect(url: string, log: (m: string) => void = (m) => console.error(m)): Promise<RedisChangeFeed> {
    const pub = await connectRedis(url, { name: 'changes', log });
    let sub: Redis;
    try {
      sub = await connectRedis(url, { name: 'changes', log });
      await sub.subscribe(CHANNEL);
    } catch (err) {
      await closeRedis(pub);
      throw err;
    }
    return new RedisChangeFeed(pub, sub, log);
  }

  publish(topic: ChangeTopic, id: string): void {
    this.emit(topic, id);
    this.pub.publish(CHANNEL, `${this.origin} ${topic} ${id}`).catch((err: Error) => {
      this.log(`[changes] could not publish a ${topic} change (other controllers notice within their cache TTL): ${err.message}`);
    });
  }

  subscribe(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    await Promise.all([closeRedis(this.pub), closeRedis(this.sub)]);
  }

  private emit(topic: ChangeTopic, id: string | null): void {
    for (const l of this.listeners) l(topic, id);
  }
}
