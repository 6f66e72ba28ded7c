/**
 * The provider contract: how the worker runs bunkers, whatever the isolation technology.
 * Every provider exposes the in-bunker agent through a Unix socket path on the host (a
 * container's listening agent, or QEMU's end of a VM's virtio-serial port), so the worker's
 * AgentClient is the same for all of them.
 */
import type { Writable } from 'node:stream';
import type { BunkerStats, NetworkProfile } from '@scaibunker/core';
import type { AgentClient } from '../agent/AgentClient.js';
import type { TransitInterfaceSpec } from '../WorkerApi.js';

/** A bunker's resource readings: the worker contract's (core/src/worker). */
export type { BunkerStats };

/** `proot`: no kernel isolation at all (ptrace path translation), enabled explicitly per worker; see ProotProvider. */
export type Isolation = 'container' | 'microvm' | 'proot';
export const ISOLATION_NAMES: readonly Isolation[] = ['container', 'microvm', 'proot'];

/**
 * What a provider's writable layer archive is: a container's overlay upper dir as a GNU tar
 * (whiteouts, opaque dirs and ownership kept), or a microVM's root-disk delta as a qcow2 whose
 * backing is the raw image (its backing-file name is meaningless: restore re-points it).
 */
export type LayerFormat = 'container-tar' | 'microvm-qcow2';

/** The layer format each isolation writes and restores (proot bunkers have none: they cannot be snapshotted). */
export const LAYER_FORMAT: Record<Isolation, LayerFormat | undefined> = {
  container: 'container-tar',
  microvm: 'microvm-qcow2',
  proot: undefined,
};

/** Start a bunker from an archived writable layer instead of the bare image. */
export interface LayerRestore {
  /**
   * The uncompressed archive on the host, outside every bunker's rootfs. The provider may move
   * it (rename) instead of copying it; the caller removes it afterwards if it is still there.
   */
  archivePath: string;
  format: LayerFormat;
}

export interface BunkerSpec {
  id: string;
  imageSha256: string;
  /** The image's .ext4 file on the host. */
  imagePath: string;
  cpuMillicores: number;
  memoryMb: number;
  diskMb: number;
  /** Max processes/threads inside the bunker (default 512). */
  pidsLimit?: number;
  hostname: string;
  /** A provider refuses a profile it cannot give (validateSpec): beyond `isolated` it needs the worker's networking, and `transit` is container-only. */
  networkProfile: NetworkProfile;
  /** Only with `allowlisted`: hostnames and `*.` wildcards the bunker may reach (undefined: absent, as for every optional member). */
  networkAllowlist?: string[] | undefined;
  /** Egress cap in Mbit/s; absent: the worker's default. */
  bandwidthMbit?: number | undefined;
  /** Only with `transit`: the bunker's layer-2 interfaces (eth0, eth1, … in order). */
  interfaces?: TransitInterfaceSpec[] | undefined;
  /**
   * Lay this archived writable layer over the image before the bunker starts (containers:
   * unpacked into the overlay's upper dir; VMs: the qcow2 delta becomes the root overlay and
   * the VM boots cold). A format the provider does not write is SNAPSHOT_CORRUPT; an archive
   * that does not fit `diskMb` is SPAWN_FAILED; either way nothing is left behind.
   */
  restore?: LayerRestore | undefined;
}

export interface SpawnedBunker {
  id: string;
  agentSocketPath: string;
  /** Host pid of the bunker's init process (the agent), or of its VMM. */
  pid: number;
  /**
   * A channel the provider already opened while starting the bunker (the microvm provider
   * must: reconnecting to a serial port races the guest noticing the hang-up). The worker
   * uses it instead of connecting again.
   */
  agent?: AgentClient;
}

export interface Provider {
  readonly isolation: Isolation;
  /** Idempotent host preparation (cgroup fixes, runtime detection). */
  init(): Promise<void>;
  /**
   * Resolves once the agent can be reached (its socket exists, or for a VM its HELLO came).
   * The wait is bounded; on timeout or failure everything created so far is cleaned up and
   * a ProviderError carrying the runtime's stderr or the guest console's tail is thrown.
   */
  spawn(spec: BunkerSpec): Promise<SpawnedBunker>;
  /** Idempotent; leaves no mount, cgroup, netns, process or directory behind. */
  destroy(id: string): Promise<void>;
  /** Freeze / thaw the bunker (containers and proot: cgroup freezer; VMs: the VMM stops the vCPUs). */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  isPaused(id: string): Promise<boolean>;
  stats(id: string): Promise<BunkerStats>;
  /**
   * Writes the bunker's writable layer (never the image), uncompressed, to `out` and resolves
   * with its format once every byte was written; `out` is not ended (the caller ends it, and
   * only on success, so a failure can never look like a short archive). The bunker is frozen
   * while its files are read and thawed afterwards, also on failure; a bunker that was already
   * paused stays paused. Rejects when `out` errors or is destroyed (the caller aborting), and
   * leaves no temporary file behind. For a VM the caller first asks the guest to flush its page
   * cache (the provider only sees the block layer). NOT_FOUND when the bunker is not here.
   */
  writeLayer(id: string, out: Writable): Promise<LayerFormat>;
  /** What exists on the host; used to reconnect after a worker restart. */
  list(): Promise<Array<{ id: string; running: boolean; agentSocketPath: string }>>;
  health(): Promise<{ ok: boolean; runtime: string; details?: string }>;
  /**
   * Releases what no bunker holds (idle image mounts, helper processes) when the worker
   * stops. Running bunkers keep running and are found again by list().
   */
  shutdown(): Promise<void>;
}

/**
 * SNAPSHOT_CORRUPT: a restore archive that is not of the provider's format or does not unpack.
 * DESTROY_INCOMPLETE: a destroy left something behind (BunkerDestroyError lists each step).
 */
export type ProviderErrorCode =
  | 'SPAWN_FAILED'
  | 'NOT_FOUND'
  | 'RUNTIME_UNAVAILABLE'
  | 'LIMIT_INVALID'
  | 'SNAPSHOT_CORRUPT'
  | 'DESTROY_INCOMPLETE';

export class ProviderError extends Error {
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly details?: string,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}
