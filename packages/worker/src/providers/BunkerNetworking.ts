import type { NetworkProfile } from '@scaibunker/core';
import type { BunkerSpec } from './Provider.js';

export interface BunkerAttachment {
  netnsPath: string;
  resolvConfPath: string;
  ipv4?: { address: string; prefixLen: number; gateway: string };
}

/** What a provider needs to give a bunker a network beyond loopback (the worker's WorkerNetwork). */
export interface BunkerNetworking {
  /** Profiles beyond `isolated` it can give. */
  readonly profiles: readonly NetworkProfile[];
  /**
   * Plumbs the bunker's network; the provider's runtime joins `netnsPath`. `ipv4` is the
   * address the netns's `eth0` was given (absent for `transit`): a microVM moves it into its
   * guest, which configures it itself.
   */
  attach(spec: BunkerSpec): Promise<BunkerAttachment>;
  /** Removes it; idempotent, and cheap for a bunker that never had one. */
  detach(bunkerId: string): Promise<void>;
}
