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
  /**
   * How long a released bunker's names stay (default 15 min, as AddressOwners keeps a released
   * address): its last flows are reported after its network is gone.
   */
  keepReleasedMs?: number;
  /** Most names all released bunkers keep together; the longest released go first (default 65,536). */
  maxReleasedNames?: number;
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
  private readonly keepReleasedMs: number;
  private readonly maxReleasedNames: number;
  private readonly now: () => number;
  private readonly bunkers = new Map<string, Map<string, Entry>>();
  /** Released bunkers, longest released first: when, and how many names they kept. */
  private readonly released = new Map<string, { atMs: number; names: number }>();
  private releasedNames = 0;

  constructor(opts: HostnameLogOptions = {}) {
    this.maxPerBunker = opts.maxPerBunker ?? 4096;
    this.ttlMs = opts.ttlMs ?? 6 * 3600_000;
    this.keepReleasedMs = opts.keepReleasedMs ?? 15 * 60_000;
    this.maxReleasedNames = opts.maxReleasedNames ?? 65_536;
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

  /**
   * The bunker's network is gone. Its names stay a while: conntrack reports a flow when it ends,
   * and the flows a detach ends (deleting the bunker's conntrack entries) reach the auditor only
   * after it — forgotten at once, those records lost their hostname. So they stay at least
   * `keepReleasedMs`; each release drops those of bunkers released longer ago, and the longest
   * released while all released bunkers keep more than `maxReleasedNames`.
   */
  release(bunkerId: string): void {
    const names = this.bunkers.get(bunkerId)?.size ?? 0;
    if (names === 0) this.bunkers.delete(bunkerId);
    else if (!this.released.has(bunkerId)) {
      this.released.set(bunkerId, { atMs: this.now(), names });
      this.releasedNames += names;
    }
    const now = this.now();
    for (const [id, r] of this.released) {
      if (now - r.atMs < this.keepReleasedMs && this.releasedNames <= this.maxReleasedNames) break;
      this.released.delete(id);
      this.releasedNames -= r.names;
      this.bunkers.delete(id);
    }
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
