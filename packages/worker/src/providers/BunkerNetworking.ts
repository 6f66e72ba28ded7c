import type { NetworkProfile } from '@scaibunker/core';
import type { BunkerSpec } from './Provider.js';

/** What a provider needs to give a bunker a network beyond loopback (the worker's WorkerNetwork). */
export interface BunkerNetworking {
  /** Profiles beyond `isolated` it can give. */
  readonly profiles: readonly NetworkProfile[];
  /** Plumbs the bunker's network; the provider's runtime joins `netnsPath`. */
  attach(spec: BunkerSpec): Promise<{ netnsPath: string; resolvConfPath: string }>;
  /** Removes it; idempotent, and cheap for a bunker that never had one. */
  detach(bunkerId: string): Promise<void>;
}
