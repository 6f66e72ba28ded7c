import { isIPv6 } from 'node:net';

export interface HostnameLogOptions {
  /** Most addresses remembered per bunker; the least recently used go first (default 4096). */
  maxPerBunker?: number;
  /**
   * How long an answer names its addresses (default 6 h). Long on purpose: a flow record is
   * written when the flow ends (plus 10–60 s of conntrack reaping), which for a long download
   * is hours after the lookup, and the DNS TTL is not known here.
   */
  ttlMs?: number;
  /** Clock, for tests (default Date.now). */
  now?: () => number;
}

interface Entry {
  name: string;
  expiresAt: number;
}

/**
 * Which hostname a bunker last resolved to an address, so a flow record for an `unrestricted`
 * bunker can say "api.example.com" instead of only a (possibly shared CDN) IP. Fed from the
 * DNS responder's `onAnswer` callback; the latest answer for an address wins. Memory is bounded
 * per bunker (LRU) and entries expire, so a bunker resolving millions of names cannot grow it.
 */
export class HostnameLog {
  private readonly maxPerBunker: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly bunkers = new Map<string, Map<string, Entry>>();

  constructor(opts: HostnameLogOptions = {}) {
    this.maxPerBunker = opts.maxPerBunker ?? 4096;
    this.ttlMs = opts.ttlMs ?? 6 * 3600_000;
    this.now = opts.now ?? Date.now;
  }

  /** Same signature as `DnsResponderOptions.onAnswer`; bound, so it can be passed directly. */
  readonly onAnswer = (bunkerId: string, name: string, addrs: readonly string[]): void => {
    let map = this.bunkers.get(bunkerId);
    if (!map) {
      map = new Map();
      this.bunkers.set(bunkerId, map);
    }
    const expiresAt = this.now() + this.ttlMs;
    const host = name.toLowerCase().replace(/\.$/, '');
    for (const addr of addrs) {
      const key = canonicalIp(addr);
      map.delete(key);
      map.set(key, { name: host, expiresAt });
      if (map.size > this.maxPerBunker) {
        const oldest = map.keys().next().value;
        if (oldest !== undefined) map.delete(oldest);
      }
    }
  };

  /** The name `bunkerId` last resolved to `ip`, unless it expired or was evicted. */
  lookup(bunkerId: string, ip: string): string | undefined {
    const map = this.bunkers.get(bunkerId);
    if (!map) return undefined;
    const key = canonicalIp(ip);
    const entry = map.get(key);
    if (!entry) return undefined;
    map.delete(key);
    if (entry.expiresAt <= this.now()) {
      if (map.size === 0) this.bunkers.delete(bunkerId);
      return undefined;
    }
    map.set(key, entry);
    return entry.name;
  }

  /** Drops everything known about a bunker (call when it is deleted, after its final flush). */
  forget(bunkerId: string): void {
    this.bunkers.delete(bunkerId);
  }

  /** Addresses currently remembered for a bunker (expired ones included until looked up). */
  size(bunkerId: string): number {
    return this.bunkers.get(bunkerId)?.size ?? 0;
  }
}

/**
 * One spelling per address: DNS libraries and the kernel (inet_ntop) may write the same IPv6
 * address differently (zero runs, case), and the WHATWG URL parser prints the RFC 5952 form.
 */
function canonicalIp(ip: string): string {
  if (!isIPv6(ip)) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}
