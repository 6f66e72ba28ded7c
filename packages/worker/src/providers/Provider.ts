/**
 * The provider contract: how the worker runs bunkers, whatever the isolation technology.
 * Every provider exposes the in-bunker agent through a Unix socket path on the host (a
 * container's listening agent, or QEMU's end of a VM's virtio-serial port), so the worker's
 * AgentClient is the same for all of them.
 */
import type { BunkerStats, NetworkProfile } from '@scaibunker/core';
import type { AgentClient } from '../agent/AgentClient.js';
import type { TransitInterfaceSpec } from '../WorkerApi.js';

/** A bunker's resource readings: the worker contract's (core/src/worker). */
export type { BunkerStats };

export type Isolation = 'container' | 'microvm';

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
  /** Only with `allowlisted`: hostnames and `*.` wildcards the bunker may reach. */
  networkAllowlist?: string[];
  /** Egress cap in Mbit/s; absent: the worker's default. */
  bandwidthMbit?: number;
  /** Only with `transit`: the bunker's layer-2 interfaces (eth0, eth1, … in order). */
  interfaces?: TransitInterfaceSpec[];
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
  /** Freeze / thaw the bunker (containers: cgroup freezer; VMs: the VMM stops the vCPUs). */
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  isPaused(id: string): Promise<boolean>;
  stats(id: string): Promise<BunkerStats>;
  /** What exists on the host; used to reconnect after a worker restart. */
  list(): Promise<Array<{ id: string; running: boolean; agentSocketPath: string }>>;
  health(): Promise<{ ok: boolean; runtime: string; details?: string }>;
  /**
   * Releases what no bunker holds (idle image mounts, helper processes) when the worker
   * stops. Running bunkers keep running and are found again by list().
   */
  shutdown(): Promise<void>;
}

export type ProviderErrorCode = 'SPAWN_FAILED' | 'NOT_FOUND' | 'RUNTIME_UNAVAILABLE' | 'LIMIT_INVALID';

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
