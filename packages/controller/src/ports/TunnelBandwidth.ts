import type { Duplex } from 'node:stream';
import { ThrottledTunnel } from './ThrottledTunnel.js';
import { TokenBucket } from './TokenBucket.js';

interface Buckets {
  out: TokenBucket;
  into: TokenBucket;
  tunnels: number;
}

/** What a bucket lets through at once: 100 ms at the rate, at least one agent frame (64 KiB). */
function burstOf(bytesPerS: number): number {
  return Math.max(64 * 1024, bytesPerS / 10);
}

/**
 * A bunker's `bandwidth_mbit` on its tunnels through this controller: one bucket per direction
 * per bunker, shared by all its open tunnels (path proxy, previews, port-forward), so opening
 * more connections gets no more bandwidth. Per controller, like the tunnel cap.
 */
export class TunnelBandwidth {
  private readonly buckets = new Map<string, Buckets>();

  /** The tunnel held to `mbit` both ways; its buckets go when the bunker's last tunnel closes. */
  limit(bunkerId: string, mbit: number, tunnel: Duplex): ThrottledTunnel {
    const bytesPerS = (mbit * 1_000_000) / 8;
    let b = this.buckets.get(bunkerId);
    if (!b || b.out.bytesPerS !== bytesPerS) {
      b = {
        out: new TokenBucket(bytesPerS, burstOf(bytesPerS)),
        into: new TokenBucket(bytesPerS, burstOf(bytesPerS)),
        tunnels: b?.tunnels ?? 0,
      };
      this.buckets.set(bunkerId, b);
    }
    const buckets = b;
    buckets.tunnels++;
    const throttled = new ThrottledTunnel(tunnel, buckets.out, buckets.into);
    throttled.once('close', () => {
      buckets.tunnels--;
      if (buckets.tunnels === 0 && this.buckets.get(bunkerId) === buckets) this.buckets.delete(bunkerId);
    });
    return throttled;
  }
}
