/** Network profiles that get host plumbing; `isolated` bunkers keep a loopback-only netns and never come here. */
export type HostNetworkProfile = 'registry' | 'allowlisted' | 'unrestricted';

export interface NetworkPlan {
  profile: HostNetworkProfile;
  /** tbf rate in both directions, 1–10000 Mbit/s. */
  bandwidthMbit: number;
  /** Hostname patterns the DNS responder answers (`allowlisted`; kept so a restarted worker still has them). */
  allowlist?: string[];
}

/** Everything the host knows about one bunker's network; persisted as its state file. */
export interface BunkerNetwork {
  bunkerId: string;
  /** Name under /run/netns (what `ip netns exec` takes). */
  netnsName: string;
  /** Bind-mounted netns file a container runtime joins (`/run/netns/<netnsName>`). */
  netnsPath: string;
  /** Host-side veth in the root namespace; every rule of the bunker matches on it. */
  hostIf: string;
  /** The bunker's own address (its `eth0`). */
  address: string;
  /** The host side's address: the bunker's default gateway and where its DNS lands. */
  gateway: string;
  prefixLen: number;
  /** The bunker's nft table, family inet (sets `allow4` / `allow6` live there). */
  table: string;
  profile: HostNetworkProfile;
  bandwidthMbit: number;
  allowlist?: string[];
}

export interface BunkerNetworksOptions {
  /** One JSON file per bunker is kept here so a restarted worker knows its allocations. */
  stateDir: string;
  /** IPv4 pool, e.g. '10.200.0.0/16'; each bunker gets a /30 of it. */
  subnet: string;
  /** Port of the worker's DNS responder (bound on 0.0.0.0); every :53 from a bunker is DNATed here. */
  dnsPort: number;
  /** Addresses (or IPv4 CIDRs) of the worker/controller that bunkers must never reach. */
  protectedAddresses: string[];
  /** Per-bunker cap on tracked connections (default 512). */
  maxConnections?: number;
  /**
   * Two to four lowercase letters every kernel object name starts with (default 'sb').
   * reconcile() removes leftovers carrying this prefix only, so tests use their own.
   */
  namePrefix?: string;
  log?: (m: string) => void;
}
