/** Checks every provider applies to a BunkerSpec before it creates anything. */
import { allowlistEntryError, BANDWIDTH_MBIT_MAX, BANDWIDTH_MBIT_MIN, SHA256_HEX } from '@scaibunker/core';
import { type BunkerSpec, ProviderError } from './Provider.js';

export const BUNKER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const HOSTNAME_RE = new RegExp(`^${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
/** sun_path is 108 bytes including the NUL. */
export const MAX_SOCKET_PATH = 107;

export interface SpecBounds {
  /** Smallest memory the provider can run a bunker in (a VM needs room for its kernel). */
  minMemoryMb: number;
  provider: string;
  /** Unix sockets the provider will create for this bunker (checked against sun_path). */
  socketPaths: string[];
  /** Network profiles the provider can give (default: `isolated` only). */
  networkProfiles?: readonly string[];
}

export function validateSpec(spec: BunkerSpec, bounds: SpecBounds, pidsLimit: number): void {
  const bad = (m: string) => new ProviderError('LIMIT_INVALID', m);
  if (!BUNKER_ID_RE.test(spec.id)) throw new ProviderError('SPAWN_FAILED', `invalid bunker id ${JSON.stringify(spec.id)}`);
  if (!SHA256_HEX.test(spec.imageSha256))
    throw new ProviderError('SPAWN_FAILED', `invalid image sha256 ${JSON.stringify(spec.imageSha256)}`);
  if (!Number.isInteger(spec.cpuMillicores) || spec.cpuMillicores < 10 || spec.cpuMillicores > 1_024_000)
    throw bad(`cpuMillicores must be an integer in 10..1024000 (got ${spec.cpuMillicores})`);
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < bounds.minMemoryMb || spec.memoryMb > 4_194_304)
    throw bad(`memoryMb must be an integer in ${bounds.minMemoryMb}..4194304 for ${bounds.provider} bunkers (got ${spec.memoryMb})`);
  if (!Number.isInteger(spec.diskMb) || spec.diskMb < 1 || spec.diskMb > 16_777_216)
    throw bad(`diskMb must be an integer in 1..16777216 (got ${spec.diskMb})`);
  if (!Number.isInteger(pidsLimit) || pidsLimit < 4 || pidsLimit > 4_194_304)
    throw bad(`pidsLimit must be an integer in 4..4194304 (got ${pidsLimit})`);
  if (spec.hostname.length > 64 || !HOSTNAME_RE.test(spec.hostname))
    throw new ProviderError('SPAWN_FAILED', `invalid hostname ${JSON.stringify(spec.hostname)}`);
  if (
    spec.bandwidthMbit !== undefined &&
    (!Number.isInteger(spec.bandwidthMbit) || spec.bandwidthMbit < BANDWIDTH_MBIT_MIN || spec.bandwidthMbit > BANDWIDTH_MBIT_MAX)
  )
    throw bad(`bandwidthMbit must be an integer in ${BANDWIDTH_MBIT_MIN}..${BANDWIDTH_MBIT_MAX} (got ${spec.bandwidthMbit})`);
  if (spec.networkAllowlist !== undefined && spec.networkProfile !== 'allowlisted')
    throw new ProviderError('SPAWN_FAILED', `networkAllowlist is only for the allowlisted profile (got ${spec.networkProfile})`);
  for (const entry of spec.networkAllowlist ?? []) {
    const reason = allowlistEntryError(entry);
    if (reason) throw new ProviderError('SPAWN_FAILED', `network allowlist entry ${JSON.stringify(entry)} ${reason}`);
  }
  if (!(bounds.networkProfiles ?? ['isolated']).includes(spec.networkProfile))
    throw new ProviderError(
      'SPAWN_FAILED',
      `network profile ${spec.networkProfile} is not offered by the ${bounds.provider} provider here`,
    );
  if (spec.networkProfile === 'allowlisted' && !spec.networkAllowlist?.length)
    throw new ProviderError('SPAWN_FAILED', 'the allowlisted profile needs a non-empty networkAllowlist');
  for (const sock of bounds.socketPaths) {
    if (Buffer.byteLength(sock) > MAX_SOCKET_PATH)
      throw new ProviderError(
        'SPAWN_FAILED',
        `socket path too long (${Buffer.byteLength(sock)} > ${MAX_SOCKET_PATH} bytes): use a shorter dataDir or id`,
        sock,
      );
  }
}
