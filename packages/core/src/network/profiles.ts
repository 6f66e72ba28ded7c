/**
 * Network profiles a bunker can be created with (DESIGN.md "Network profiles"). `transit` is a
 * design name too (`NETWORK_PROFILE_NAMES`, which quota profiles may list) but has no bridges
 * yet: a create asking for it is refused at the edge.
 */
export const NETWORK_PROFILES = ['isolated', 'registry', 'allowlisted', 'unrestricted'] as const;
export type NetworkProfile = (typeof NETWORK_PROFILES)[number];

/** Most entries a bunker's `network_allowlist` may hold. */
export const NETWORK_ALLOWLIST_MAX = 256;
/** Bounds of `bandwidth_mbit`, the bunker's egress shaper (tc TBF on the worker). */
export const BANDWIDTH_MBIT_MIN = 1;
export const BANDWIDTH_MBIT_MAX = 10000;
