import type { Capability, StorageVerb } from './CapabilityTokens.js';

/** The part of the blob store every storage key lives under. */
export const STORAGE_ROOT = 'scaibunker/';

/** What one storage caller may do: resolved from its credentials, checked per request. */
export interface StorageGrant {
  /** Recorded as who did it: `worker` or `cap:<id>`. */
  readonly actor: string;
  /** `key` is an object key, or for `list` a prefix ending with `/`. */
  allows(verb: StorageVerb, key: string): boolean;
}

/** The worker token: every verb on every key of the deployment. */
export const workerGrant: StorageGrant = {
  actor: 'worker',
  allows: (_verb, key) => key.startsWith(STORAGE_ROOT),
};

export function capabilityGrant(c: Capability): StorageGrant {
  return {
    actor: `cap:${c.id}`,
    allows: (verb, key) => c.verbs.includes(verb) && key.startsWith(c.prefix),
  };
}
