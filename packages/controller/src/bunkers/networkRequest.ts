/**
 * The network part of a create: which profile, allowlist and bandwidth cap a bunker gets, and
 * whether the caller may have them. Runs before quotas are planned and before any worker is
 * asked, so a refused create costs nothing and leaves no row.
 */
import { randomBytes } from 'node:crypto';
import {
  ApiError,
  allowlistEntryError,
  hasPermission,
  macAddressError,
  NETWORK_PROFILE_PERMISSIONS,
  type NetworkProfile,
  type schemas,
} from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';

/** One interface of a `transit` bunker as stored on its row (and shown in every answer). */
export interface BunkerInterface {
  name: string;
  bridge_id: string;
  mac: string;
  spoof_guard: boolean;
}

export interface BunkerNetwork {
  profile: NetworkProfile;
  /** Normalized (lower-case, no trailing dot, no duplicates); only for `allowlisted`. */
  allowlist: string[] | undefined;
  /** Mbit/s; undefined: the worker's default. */
  bandwidthMbit: number | undefined;
  /** Only for `transit`: its interfaces, MACs filled in (bridges not checked yet: see checkBridges). */
  interfaces: BunkerInterface[] | undefined;
}

/** A random locally administered unicast MAC (02:…). */
function generatedMac(): string {
  const b = randomBytes(5);
  return ['02', ...[...b].map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

/** The interfaces of a transit create: MACs checked (format, unicast, no duplicates) or generated. */
function resolveInterfaces(entries: NonNullable<schemas.CreateBunkerBody['interfaces']>): BunkerInterface[] {
  const seen = new Set<string>();
  const out = entries.map((e, n) => {
    const field = `body/interfaces/${n}/mac`;
    let mac = e.mac?.toLowerCase();
    if (mac !== undefined) {
      const reason = macAddressError(mac);
      if (reason) throw new ApiError('VALIDATION_FAILED', `interfaces[${n}].mac ${JSON.stringify(e.mac)} ${reason}`, { field, mac: e.mac });
      if (seen.has(mac)) throw new ApiError('VALIDATION_FAILED', `interfaces[${n}].mac ${mac} is given twice`, { field, mac: e.mac });
    } else {
      do mac = generatedMac();
      while (seen.has(mac));
    }
    seen.add(mac);
    return { name: `eth${n}`, bridge_id: e.bridge_id, mac, spoof_guard: e.spoof_guard ?? true };
  });
  return out;
}

/**
 * Every bridge of a transit create must be a `ready` bridge of the caller's tenant; another
 * tenant's bridge is BRIDGE_NOT_FOUND exactly like a missing one.
 */
export async function checkBridges(store: Store, principal: Principal, interfaces: readonly BunkerInterface[]): Promise<void> {
  const ids = [...new Set(interfaces.map((i) => i.bridge_id))];
  const found = new Map((await store.bridges.getMany(principal.tenantId, ids)).map((b) => [b.id, b]));
  for (const [n, i] of interfaces.entries()) {
    if (found.get(i.bridge_id)?.state !== 'ready')
      throw new ApiError('BRIDGE_NOT_FOUND', `no bridge ${i.bridge_id}`, {
        bridge_id: i.bridge_id,
        field: `body/interfaces/${n}/bridge_id`,
      });
  }
}

/** Lower-cased, one trailing dot dropped: the form allowlist entries are stored and matched in. */
function normalizeEntry(entry: string): string {
  const lower = entry.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Validates the create body's network fields (VALIDATION_FAILED naming the field, and for a bad
 * allowlist entry the entry itself), then checks the caller holds the profile's permission
 * (NETWORK_PROFILE_DENIED) — and for a transit interface without spoof guard also
 * `scaibunker:l2_transparency`.
 */
export function resolveNetwork(principal: Principal, body: schemas.CreateBunkerBody): BunkerNetwork {
  const profile: NetworkProfile = body.network_profile ?? 'isolated';
  if (profile !== 'transit' && body.interfaces !== undefined) {
    throw new ApiError('VALIDATION_FAILED', `interfaces are only accepted with the transit profile (got ${profile})`, {
      field: 'body/interfaces',
      network_profile: profile,
    });
  }
  let interfaces: BunkerInterface[] | undefined;
  if (profile === 'transit') {
    if (!body.interfaces || body.interfaces.length === 0) {
      throw new ApiError('VALIDATION_FAILED', 'the transit profile needs interfaces (1-8 entries)', {
        field: 'body/interfaces',
        network_profile: profile,
      });
    }
    interfaces = resolveInterfaces(body.interfaces);
  }
  const entries = body.network_allowlist;
  if (profile !== 'allowlisted' && entries !== undefined) {
    throw new ApiError('VALIDATION_FAILED', `network_allowlist is only accepted with the allowlisted profile (got ${profile})`, {
      field: 'body/network_allowlist',
      network_profile: profile,
    });
  }
  let allowlist: string[] | undefined;
  if (profile === 'allowlisted') {
    if (!entries || entries.length === 0) {
      throw new ApiError('VALIDATION_FAILED', 'the allowlisted profile needs a non-empty network_allowlist', {
        field: 'body/network_allowlist',
        network_profile: profile,
      });
    }
    const invalid = entries.flatMap((entry, index) => {
      const reason = allowlistEntryError(entry);
      return reason === undefined ? [] : [{ index, entry, reason }];
    });
    if (invalid.length > 0) {
      const first = invalid[0]!;
      const more = invalid.length > 1 ? ` (and ${invalid.length - 1} more invalid entries)` : '';
      throw new ApiError('VALIDATION_FAILED', `network_allowlist entry ${JSON.stringify(first.entry)} ${first.reason}${more}`, {
        field: `body/network_allowlist/${first.index}`,
        entry: first.entry,
        reason: first.reason,
        invalid_entries: invalid,
      });
    }
    allowlist = [...new Set(entries.map(normalizeEntry))];
  }
  const permission = NETWORK_PROFILE_PERMISSIONS[profile];
  if (permission && !hasPermission(principal.permissions, permission)) {
    throw new ApiError('NETWORK_PROFILE_DENIED', `the ${profile} network profile needs the ${permission} permission`, {
      network_profile: profile,
      permission,
    });
  }
  if (interfaces?.some((i) => !i.spoof_guard) && !hasPermission(principal.permissions, 'scaibunker:l2_transparency')) {
    throw new ApiError('NETWORK_PROFILE_DENIED', 'spoof_guard: false needs the scaibunker:l2_transparency permission', {
      network_profile: profile,
      permission: 'scaibunker:l2_transparency',
    });
  }
  return { profile, allowlist, bandwidthMbit: body.bandwidth_mbit, interfaces };
}
