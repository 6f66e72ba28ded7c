/**
 * Network profiles a bunker can be created with (DESIGN.md "Network profiles"). `transit`
 * bunkers have only layer-2 interfaces on their tenant's bridges (`interfaces[]`).
 */
export const NETWORK_PROFILES = ['isolated', 'registry', 'allowlisted', 'unrestricted', 'transit'] as const;
export type NetworkProfile = (typeof NETWORK_PROFILES)[number];

/** Bounds of a transit bunker's `interfaces[]`. */
export const TRANSIT_INTERFACES_MIN = 1;
export const TRANSIT_INTERFACES_MAX = 8;
/** A MAC address as the API takes it: six colon-separated hex octets. */
export const MAC_PATTERN = '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$';

/** Why a MAC cannot be a transit interface's address (multicast/broadcast, all zero), or undefined. */
export function macAddressError(mac: string): string | undefined {
  if (!new RegExp(MAC_PATTERN).test(mac)) return 'is not a MAC address (six colon-separated hex octets)';
  const octets = mac.split(':').map((o) => Number.parseInt(o, 16));
  if (((octets[0] ?? 0) & 1) === 1) return 'is a multicast or broadcast address, not a unicast one';
  if (octets.every((o) => o === 0)) return 'is the all-zero address';
  return undefined;
}

/** Most entries a bunker's `network_allowlist` may hold. */
export const NETWORK_ALLOWLIST_MAX = 256;
/** Bounds of `bandwidth_mbit`, the bunker's egress shaper (tc TBF on the worker). */
export const BANDWIDTH_MBIT_MIN = 1;
export const BANDWIDTH_MBIT_MAX = 10000;
