import type { ChangeFeed, ChangeListener, ChangeTopic } from './ChangeFeed.js';

/** One controller: its own writes are all there is to hear. */
export class InProcessChangeFeed implements ChangeFeed {
  private readonly listeners: ChangeListener[] = [];

  publish(topic: ChangeTopic, id: string): void {
    for (const l of this.listeners) l(topic, id);
  }

  subscribe(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {}
}
