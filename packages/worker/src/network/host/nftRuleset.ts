import { isIPv4 } from 'node:net';
import { intToIpv4, parseCidr4 } from './SubnetAllocator.js';
import type { BunkerNetwork } from './types.js';

/**
 * Destinations no bunker may ever reach, whatever its profile: private, shared, loopback, link-local,
 * multicast and reserved space. The worker's pool and protected addresses are added per table.
 */
export const BLOCKED_DESTINATIONS = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

/** Ports a `registry` / `allowlisted` bunker may open to addresses its DNS answers put in allow4. */
export const ALLOWED_TCP_PORTS = [80, 443];

export interface RulesetOptions {
  dnsPort: number;
  maxConnections: number;
  /** Extra IPv4 addresses/CIDRs no bunker may reach (protected addresses, the pool). */
  blocked: readonly string[];
}

/**
 * Merges IPv4 CIDRs into a list nft accepts in one anonymous interval set: CIDR blocks are either
 * nested or disjoint, so dropping every block contained in another leaves no overlap (nft 1.0.6
 * rejects overlapping intervals in a set literal).
 */
export function mergeCidrs(cidrs: readonly string[]): string[] {
  const blocks = cidrs
    .map((c) => {
      const { base, prefixLen } = parseCidr4(c);
      return { base, end: base + 2 ** (32 - prefixLen) - 1, prefixLen };
    })
    .sort((a, b) => a.base - b.base || a.prefixLen - b.prefixLen);
  const kept: typeof blocks = [];
  for (const b of blocks) {
    const last = kept[kept.length - 1];
    if (last && b.base >= last.base && b.end <= last.end) continue;
    kept.push(b);
  }
  return kept.map((b) => (b.prefixLen === 32 ? intToIpv4(b.base) : `${intToIpv4(b.base)}/${b.prefixLen}`));
}

/**
 * The nft script that (re)applies a bunker's table in one transaction. Every rule matches on the
 * host-side veth, which the bunker cannot touch (rules inside its netns could be flushed by a
 * bunker holding CAP_NET_ADMIN there).
 *
 * Re-apply keeps the table and its sets and flushes + refills the chains instead of deleting
 * the table: a delete would drop the allow4/allow6 elements the DNS responder inserted, and a
 * bunker whose program cached an answer would be refused after every worker restart. Chains are
 * base chains with policy accept, so traffic of other interfaces is never affected; everything
 * not explicitly accepted from the bunker is dropped or rejected by the bunker's own rules.
 *
 * Chains:
 *   guard   (prerouting, raw)   drop all IPv6 (bunkers are IPv4-only) and spoofed sources,
 *                               before conntrack so neither creates state
 *   dns     (prerouting, dstnat) any udp/tcp :53 → gateway:dnsPort (other resolvers, DoT on 53)
 *   input   (input)             replies, the DNS responder, nothing else on the host
 *   forward (forward)           per profile; new flows into the bunker always dropped
 *   post    (postrouting, srcnat) masquerade what leaves by another interface
 */
export function bunkerRuleset(net: BunkerNetwork, opts: RulesetOptions): string {
  const t = `inet ${net.table}`;
  const iif = `iifname "${net.hostIf}"`;
  const oif = `oifname "${net.hostIf}"`;
  const gw = net.gateway;
  const capRule = `ct state new add @conns { ip saddr ct count over ${opts.maxConnections} } reject with icmpx type admin-prohibited`;
  const lines = [
    `table ${t} {`,
    '  set allow4 { type ipv4_addr; flags timeout; }',
    '  set allow6 { type ipv6_addr; flags timeout; }',
    '  set conns { type ipv4_addr; size 16; flags dynamic; }',
    '  chain guard { type filter hook prerouting priority raw; policy accept; }',
    '  chain dns { type nat hook prerouting priority dstnat; policy accept; }',
    '  chain input { type filter hook input priority filter; policy accept; }',
    '  chain forward { type filter hook forward priority filter; policy accept; }',
    '  chain post { type nat hook postrouting priority srcnat; policy accept; }',
    '}',
    ...['guard', 'dns', 'input', 'forward', 'post'].map((c) => `flush chain ${t} ${c}`),
    `add rule ${t} guard ${iif} meta nfproto ipv6 drop`,
    `add rule ${t} guard ${iif} ip saddr != ${net.address} drop`,
    `add rule ${t} dns ${iif} meta l4proto { tcp, udp } th dport 53 dnat ip to ${gw}:${opts.dnsPort}`,
    `add rule ${t} input ${iif} ct state established,related accept`,
    `add rule ${t} input ${iif} ${capRule}`,
    `add rule ${t} input ${iif} ip daddr ${gw} meta l4proto { tcp, udp } th dport ${opts.dnsPort} accept`,
    `add rule ${t} input ${iif} drop`,
    `add rule ${t} forward ${oif} ct state established,related accept`,
    `add rule ${t} forward ${oif} drop`,
    `add rule ${t} forward ${iif} ct state established,related accept`,
    `add rule ${t} forward ${iif} ${capRule}`,
  ];
  // Private, local and reserved ranges, other bunkers and the protected addresses: never, in any
  // profile — an allowed name whose DNS answer points there (rebinding, a metadata address) too.
  const blocked = mergeCidrs([...BLOCKED_DESTINATIONS, ...opts.blocked.filter((a) => isIPv4(a.split('/')[0] ?? ''))]);
  lines.push(`add rule ${t} forward ${iif} ip daddr { ${blocked.join(', ')} } reject with icmpx type admin-prohibited`);
  if (net.profile === 'unrestricted') {
    lines.push(`add rule ${t} forward ${iif} accept`);
  } else {
    lines.push(`add rule ${t} forward ${iif} ip daddr @allow4 tcp dport { ${ALLOWED_TCP_PORTS.join(', ')} } accept`);
    lines.push(`add rule ${t} forward ${iif} meta l4proto tcp reject with tcp reset`);
    lines.push(`add rule ${t} forward ${iif} reject with icmpx type admin-prohibited`);
  }
  lines.push(`add rule ${t} post ip saddr ${net.address} oifname != "${net.hostIf}" masquerade`);
  return `${lines.join('\n')}\n`;
}
