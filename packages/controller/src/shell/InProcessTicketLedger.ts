import type { TicketLedger } from './TicketLedger.js';

/** One controller: spent ticket ids in memory until they would have expired anyway. */
export class InProcessTicketLedger implements TicketLedger {
  private readonly spent = new Map<string, number>();

  async claim(id: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    for (const [k, until] of this.spent) if (until <= now) this.spent.delete(k);
    if (this.spent.has(id)) return false;
    this.spent.set(id, now + ttlMs);
    return true;
  }

  async close(): Promise<void> {}
}
