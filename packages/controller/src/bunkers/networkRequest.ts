/**
 * The network part of a create: which profile, allowlist and bandwidth cap a bunker gets, and
 * whether the caller may have them. Runs before quotas are planned and before any worker is
 * asked, so a refused create costs nothing and leaves no row.
 */
import {
  ApiError,
  allowlistEntryError,
  hasPermission,
  NETWORK_PROFILE_PERMISSIONS,
  type NetworkProfile,
  type schemas,
} from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';

export interface BunkerNetwork {
  profile: NetworkProfile;
  /** Normalized (lower-case, no trailing dot, no duplicates); only for `allowlisted`. */
  allowlist: string[] | undefined;
  /** Mbit/s; undefined: the worker's default. */
  bandwidthMbit: number | undefined;
}

/** Lower-cased, one trailing dot dropped: the form allowlist entries are stored and matched in. */
function normalizeEntry(entry: string): string {
  const lower = entry.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Validates the create body's network fields (VALIDATION_FAILED naming the field, and for a bad
 * allowlist entry the entry itself), then checks the caller holds the profile's permission
 * (NETWORK_PROFILE_DENIED).
 */
export function resolveNetwork(principal: Principal, body: schemas.CreateBunkerBody): BunkerNetwork {
  const requested = body.network_profile ?? 'isolated';
  if (requested === 'transit') {
    throw new ApiError('VALIDATION_FAILED', 'the transit network profile is not available yet: transit bridges are not built', {
      field: 'body/network_profile',
      network_profile: 'transit',
    });
  }
  const profile: NetworkProfile = requested;
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
  return { profile, allowlist, bandwidthMbit: body.bandwidth_mbit };
}
