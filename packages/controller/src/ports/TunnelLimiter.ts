import { ApiError } from '@scaibunker/core';

/**
 * Open port connections per bunker on this controller (path proxy, previews, port-forward). A
 * slot is taken before the tunnel is opened and given back once when it closes; past the cap a
 * new one is TUNNEL_LIMIT (429). Per controller: N controllers allow up to N × the cap.
 */
export class TunnelLimiter {
  private readonly open = new Map<string, number>();

  constructor(private readonly maxPerBunker: number) {}

  /** Takes a slot; the returned function gives it back (calling it again does nothing). */
  acquire(bunkerId: string): () => void {
    const n = this.open.get(bunkerId) ?? 0;
    if (n >= this.maxPerBunker) {
      throw new ApiError('TUNNEL_LIMIT', `bunker ${bunkerId} already has ${n} open port connections (the cap is ${this.maxPerBunker})`, {
        limit: this.maxPerBunker,
      });
    }
    this.open.set(bunkerId, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(bunkerId) ?? 1) - 1;
      if (left <= 0) this.open.delete(bunkerId);
      else this.open.set(bunkerId, left);
    };
  }

  count(bunkerId: string): number {
    return this.open.get(bunkerId) ?? 0;
  }
}
