/** What a Worker is built from: its directories, providers, networking, controller link and bounds. */
import type { ProcessTableOptions } from '../processes/ProcessTable.js';
import type { BunkerNetworking } from '../providers/BunkerNetworking.js';
import type { Provider } from '../providers/Provider.js';
import type { ControllerLink } from '../WorkerApi.js';

export interface WorkerCapacity {
  cpu_millicores: number;
  memory_mb: number;
  disk_mb: number;
}

export interface WorkerLogger {
  info(message: string): void;
  warn(message: string): void;
}

/** The worker-wide part of networking: what providers use, plus reconciliation at start. */
export interface WorkerNetworking extends BunkerNetworking {
  reconcile(live: ReadonlySet<string>): Promise<{ restored: string[]; removed: string[] }>;
  /** Transit bridges (present when the host can make them). */
  createBridge?(bridgeId: string, tenantId: string): Promise<void>;
  deleteBridge?(bridgeId: string): Promise<void>;
  /** Ids of the bridges this worker has. */
  bridgeIds?(): string[];
  /** The tenant a bridge was made for, or undefined when this worker does not have it. */
  bridgeTenant?(bridgeId: string): string | undefined;
}

export interface WorkerOptions {
  /** Holds worker.json (the persisted worker id). */
  dataDir: string;
  /**
   * Holds the cached images as `<sha256>.ext4` (and `.partial/`, downloads in progress). One
   * worker per directory: starting removes the partial downloads it finds.
   */
  imageDir: string;
  /**
   * The worker token, presented to peer workers when fetching an image from them. Without it
   * images are fetched from storage only.
   */
  token?: string;
  /** A peer or storage that sends no image bytes for this long is abandoned (default 30000). */
  imageStallTimeoutMs?: number;
  /** One per isolation this worker offers (e.g. container and microvm). */
  providers: Provider[];
  /** The providers' network plumbing, when this host offers profiles beyond `isolated`. */
  networking?: WorkerNetworking;
  controller: ControllerLink;
  name: string;
  /** How the controller reaches this worker; '' when in-process. */
  url: string;
  /** Default 10000; the controller's `heartbeat_interval_s` reply overrides it. */
  heartbeatIntervalMs?: number;
  /** Default: all CPUs × cpuOvercommit, all RAM, the size of the filesystem holding dataDir. */
  capacity?: WorkerCapacity;
  /**
   * CPU limits are quotas on shared cores, not reservations, so the worker offers more
   * millicores than it has (default 8×).
   */
  cpuOvercommit?: number;
  /**
   * Memory offered per MB of RAM (default 1: never overcommitted). An idle bunker uses a small
   * part of its `memory_mb` limit, so a host of mostly idle bunkers can offer more; past the
   * host's RAM the kernel's OOM killer decides, not the scheduler.
   */
  memoryOvercommit?: number;
  /**
   * Free space kept on the disk holding dataDir (default 256 MiB): under it new bunkers are
   * refused with HOST_DISK_FULL, so running ones keep room to write.
   */
  diskReserveBytes?: number;
  /** Bound on connecting to a fresh bunker's agent and its first health answer (default 10000). */
  agentConnectTimeoutMs?: number;
  /** Bounds of each exec's output journal (spilled under `<dataDir>/journals`). */
  processes?: Omit<ProcessTableOptions, 'spillDir'>;
  logger?: WorkerLogger;
  /**
   * Called when a bunker's agent channel closes on its own (the bunker died). The next
   * heartbeat reports it anyway; this lets an in-process controller react at once.
   */
  onBunkerStopped?(bunkerId: string): void;
}

export const defaultLogger: WorkerLogger = {
  info: (m) => console.log(`[worker] ${m}`),
  warn: (m) => console.warn(`[worker] ${m}`),
};
