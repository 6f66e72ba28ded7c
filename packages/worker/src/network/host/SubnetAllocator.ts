import { isIPv4 } from 'node:net';

/** One bunker's slice of the pool: the host side takes the first host address, the bunker the second. */
export interface Slot {
  gateway: string;
  address: string;
  prefixLen: number;
}

export function ipv4ToInt(ip: string): number {
  if (!isIPv4(ip)) throw new Error(`not an IPv4 address: '${ip}'`);
  return ip.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses 'a.b.c.d/n' (or a bare address as /32) into its network base and prefix length. */
export function parseCidr4(cidr: string): { base: number; prefixLen: number } {
  const [ip, len, extra] = cidr.split('/');
  const prefixLen = len === undefined ? 32 : Number(len);
  if (
    extra !== undefined ||
    ip === undefined ||
    !Number.isInteger(prefixLen) ||
    prefixLen < 0 ||
    prefixLen > 32 ||
    !/^\d+$/.test(len ?? '32')
  )
    throw new Error(`not an IPv4 CIDR: '${cidr}'`);
  const size = 2 ** (32 - prefixLen);
  const base = ipv4ToInt(ip);
  if (base % size !== 0) throw new Error(`'${cidr}' has host bits set`);
  return { base, prefixLen };
}

/**
 * Hands out /30s of an IPv4 pool, always the lowest free one. A /30 rather than a /31 because
 * some userlands still treat the /31 network and broadcast addresses as unusable. The caller
 * owns the list of taken slots (the state files) and serialises allocations.
 */
export class SubnetAllocator {
  static readonly SLOT_PREFIX = 30;
  private readonly base: number;
  private readonly slots: number;

  constructor(readonly subnet: string) {
    const { base, prefixLen } = parseCidr4(subnet);
    if (prefixLen > SubnetAllocator.SLOT_PREFIX) throw new Error(`subnet ${subnet} is smaller than one /${SubnetAllocator.SLOT_PREFIX}`);
    this.base = base;
    this.slots = 2 ** (SubnetAllocator.SLOT_PREFIX - prefixLen);
  }

  get capacity(): number {
    return this.slots;
  }

  /** Slot index of a bunker address or gateway, or undefined when it is outside the pool. */
  slotOf(address: string): number | undefined {
    const offset = ipv4ToInt(address) - this.base;
    if (offset < 0 || offset >= this.slots * 4) return undefined;
    return Math.floor(offset / 4);
  }

  slot(index: number): Slot {
    if (!Number.isInteger(index) || index < 0 || index >= this.slots) throw new Error(`slot ${index} outside ${this.subnet}`);
    const net = this.base + index * 4;
    return { gateway: intToIpv4(net + 1), address: intToIpv4(net + 2), prefixLen: SubnetAllocator.SLOT_PREFIX };
  }

  /** The lowest slot not in `taken`; throws when the pool is exhausted. */
  allocate(taken: ReadonlySet<number>): Slot {
    for (let i = 0; i < this.slots; i++) if (!taken.has(i)) return this.slot(i);
    throw new Error(`address pool ${this.subnet} exhausted (${this.slots} bunkers)`);
  }
}
