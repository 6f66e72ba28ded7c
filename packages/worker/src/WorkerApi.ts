/**
 * What the controller may ask of a worker. One interface, two transports: the in-process
 * `Worker` (embedded `serve`) and `HttpWorkerClient` (separate `scaibunker worker`).
 */
import type { Readable } from 'node:stream';
import type { NetworkProfile } from '@scaibunker/core';
import type { ExecHandlers, ExecResult as ExecOutcome, FileStat as FileStatInfo } from './agent/AgentClient.js';
import type { BunkerStats } from './providers/Provider.js';

// The worker passes these straight through from the bunker's agent (and its provider).
export type { BunkerStats, ExecHandlers, ExecOutcome, FileStatInfo };

export interface SpawnRequest {
  bunkerId: string;
  imageSha256: string;
  isolation: 'container' | 'microvm';
  cpuMillicores: number;
  memoryMb: number;
  diskMb: number;
  networkProfile: NetworkProfile;
  /** Hostnames and `*.` wildcards an `allowlisted` bunker may reach (validated by the controller). */
  networkAllowlist?: string[];
  /** Egress cap in Mbit/s; absent: the worker's default. */
  bandwidthMbit?: number;
  /** Only with `transit`: one interface (eth0, eth1, …) per entry, each on a bridge of `tenantId`. */
  interfaces?: TransitInterfaceSpec[];
  hostname: string;
}

/** One layer-2 interface of a `transit` bunker; the worker checks the bridge belongs to `tenantId`. */
export interface TransitInterfaceSpec {
  bridgeId: string;
  tenantId: string;
  /** Unicast MAC, lower-case `aa:bb:cc:dd:ee:ff`. */
  mac: string;
  /** Drop frames and ARP whose source MAC is not `mac`. */
  spoofGuard: boolean;
}

export interface ExecRequest {
  argv: string[];
  env?: Record<string, string>;
  cwd?: string;
  user?: string;
  stdin?: string;
  timeoutMs: number;
}

/** Errors crossing this boundary carry a stable code; the controller maps them to API errors. */
export const WORKER_ERROR_CODES = [
  'BUNKER_NOT_FOUND',
  'INVALID_STATE',
  'SPAWN_FAILED',
  'IMAGE_NOT_CACHED',
  'NOT_FOUND',
  'NOT_A_DIRECTORY',
  'IS_A_DIRECTORY',
  'ALREADY_EXISTS',
  'NOT_EMPTY',
  'PERMISSION_DENIED',
  'INVALID_PATH',
  'NO_SPACE',
  'TOO_LARGE',
  'IO_ERROR',
  'CHANNEL_CLOSED',
  'WORKER_UNAVAILABLE',
  'BRIDGE_FAILED',
  /** An image could not be fetched (storage failed or sent bytes of the wrong digest); the message says why. */
  'IMAGE_FETCH_FAILED',
  /** The worker's own disk is full or under its reserve (`--disk-reserve`): no new bunker, no image fetch. */
  'HOST_DISK_FULL',
] as const;
export type WorkerErrorCode = (typeof WORKER_ERROR_CODES)[number];

export class WorkerError extends Error {
  constructor(
    readonly code: WorkerErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerError';
  }
}

export interface WorkerApi {
  spawn(req: SpawnRequest): Promise<void>;
  /** Idempotent: an unknown id is not an error. */
  destroy(bunkerId: string): Promise<void>;
  /** Freezes every process of the bunker (cgroup freezer); memory and files stay. */
  pause(bunkerId: string): Promise<void>;
  resume(bunkerId: string): Promise<void>;
  exec(bunkerId: string, req: ExecRequest, handlers: ExecHandlers): Promise<ExecOutcome>;
  readFile(bunkerId: string, path: string): Promise<Readable>;
  /** Streams `data` in; rejects with TOO_LARGE (and writes nothing) past `maxBytes`. */
  writeFile(
    bunkerId: string,
    path: string,
    data: Readable,
    opts: { mode?: number; parents?: boolean; maxBytes: number },
  ): Promise<{ bytes: number }>;
  stat(bunkerId: string, path: string): Promise<FileStatInfo>;
  list(bunkerId: string, path: string): Promise<FileStatInfo[]>;
  mkdir(bunkerId: string, path: string, opts: { parents?: boolean }): Promise<void>;
  remove(bunkerId: string, path: string, opts: { recursive?: boolean }): Promise<void>;
  /**
   * Resource readings of several bunkers in one call (the controller's usage ticker asks once
   * per worker per tick): cumulative CPU, current memory and disk, pids. A bunker the worker
   * does not run, or whose reading failed, is simply absent from the answer.
   */
  stats(bunkerIds: string[]): Promise<Record<string, BunkerStats>>;
  /** Makes a tenant's transit bridge (idempotent for the same tenant); BRIDGE_FAILED when it cannot. */
  createBridge(req: { bridgeId: string; tenantId: string }): Promise<void>;
  /** Removes a bridge; idempotent. */
  deleteBridge(bridgeId: string): Promise<void>;
  /**
   * Makes sure the image is in the worker's cache, fetching it (a peer of the same availability
   * group first, else storage) when it is not. IMAGE_NOT_CACHED when no origin has it,
   * IMAGE_FETCH_FAILED when fetching failed. `bytes`: the image's size.
   */
  ensureImage(sha256: string): Promise<{ source: 'cache' | 'peer' | 'proxy'; bytes: number }>;
}

/** What a worker serves its peers (`GET /v1/images/{sha256}`): a complete cached image, never a partial one. */
export interface CachedImageSource {
  /** Rejects with IMAGE_NOT_CACHED when the image is not (completely) cached here. */
  openCachedImage(sha256: string): Promise<{ stream: Readable; bytes: number }>;
}

/** What a worker reports every heartbeat (the controller's HeartbeatBody schema). */
export interface Heartbeat {
  worker_id: string;
  name: string;
  url: string;
  isolations: string[];
  /** Network profiles this worker can give a bunker; the scheduler places only there. */
  network_profiles: NetworkProfile[];
  capacity: { cpu_millicores: number; memory_mb: number; disk_mb: number };
  cached_images: string[];
  /** Ids of the transit bridges this worker has. */
  bridges?: string[];
  bunkers: Array<{ id: string; status: 'running' | 'paused' | 'stopped' }>;
}

/** The worker's side of the controller: heartbeats, audit batches and images. In-process or HTTP. */
export interface ControllerLink {
  heartbeat(hb: Heartbeat): Promise<{ ok: boolean; heartbeat_interval_s: number; unknown_bunkers: string[]; unknown_bridges?: string[] }>;
  /** Stores one flow-audit batch of a bunker (`{ts_us}-{worker_pid}.ndjson`); a repeated name overwrites. */
  putAuditBatch(bunkerId: string, name: string, ndjson: Buffer): Promise<void>;
  /** Workers sharing an availability group with `workerId` that hold the image (may be empty). */
  imagePeers(sha256: string, workerId: string): Promise<Array<{ worker_id: string; url: string }>>;
  /**
   * Streams the image from storage (`scaibunker/images/{sha256}`). Rejects with
   * WorkerError('IMAGE_NOT_CACHED') when storage does not have it, with anything else when it
   * could not be asked.
   */
  openImage(sha256: string): Promise<Readable>;
}
