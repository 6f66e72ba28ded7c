import type { Heartbeats } from './Heartbeats.js';

/** One controller: heartbeats are kept in a map. */
export class InProcessHeartbeats implements Heartbeats {
  private readonly seen = new Map<string, number>();

  async record(workerId: string, atMs: number): Promise<void> {
    this.seen.set(workerId, atMs);
  }

  async lastSeen(): Promise<Map<string, number>> {
    return new Map(this.seen);
  }

  async close(): Promise<void> {}
}
