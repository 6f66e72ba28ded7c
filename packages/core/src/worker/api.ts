/**
 * What the controller may ask of a worker. One interface, several transports: the in-process
 * `Worker` (embedded `serve`), and for a separate `scaibunker worker` `MuxWorkerClient` (the
 * multiplexed channel) or `HttpWorkerClient`, both driven by WORKER_ROUTES. And what a worker asks of its controller (ControllerLink).
 */
import type { Duplex, Readable } from 'node:stream';
import type {
  BridgeRequest,
  BunkerStats,
  EnsureImageResult,
  ExecOutcome,
  ExecRequest,
  FileStatInfo,
  Heartbeat,
  HeartbeatReply,
  ProcessInfo,
  SnapshotRequest,
  SnapshotResult,
  SpawnRequest,
  StartProcessRequest,
  WatchEvent,
} from './schemas.js';

/** Where a command's output goes; awaiting a handler's promise holds the stream back (back-pressure). */
export interface ExecHandlers {
  onStdout?(chunk: Buffer): void | Promise<void>;
  onStderr?(chunk: Buffer): void | Promise<void>;
  signal?: AbortSignal;
}

/** One output chunk of a journaled process. */
export interface ProcessOutput {
  stream: 'stdout' | 'stderr';
  seq: number;
  data: Buffer;
}

/** Where a stream of events goes (process output, file changes); awaiting holds the stream back. */
export interface EventHandlers<E> {
  onEvent(event: E): void | Promise<void>;
  signal?: AbortSignal;
}

/** Errors crossing this boundary are WorkerErrors (see errors.ts); the controller maps them to API errors. */
export interface WorkerApi {
  spawn(req: SpawnRequest): Promise<void>;
  /** Idempotent: an unknown id is not an error. */
  destroy(bunkerId: string): Promise<void>;
  /** Freezes every process of the bunker (cgroup freezer); memory and files stay. */
  pause(bunkerId: string): Promise<void>;
  resume(bunkerId: string): Promise<void>;
  /**
   * Archives the bunker's writable layer (never the image) and stores it, compressed, at
   * `scaibunker/snapshots/{snapshotId}` through the ControllerLink; the bunker is frozen while
   * its files are read and runs on afterwards. Resolves once the object is stored whole.
   * SNAPSHOT_FAILED (nothing stored) when it could not; BUNKER_NOT_FOUND / INVALID_STATE
   * when the bunker is not here or not running.
   */
  snapshot(bunkerId: string, req: SnapshotRequest): Promise<SnapshotResult>;
  exec(bunkerId: string, req: ExecRequest, handlers: ExecHandlers): Promise<ExecOutcome>;
  /** Starts a process that outlives the call; answers once it runs (its pid known). Repeating an execId answers the same process. */
  startProcess(bunkerId: string, req: StartProcessRequest): Promise<ProcessInfo>;
  /** Running and recently finished processes (every exec, background or not), newest first. */
  listProcesses(bunkerId: string): Promise<ProcessInfo[]>;
  /** PROCESS_NOT_FOUND when the worker does not (or no longer) journal it. */
  getProcess(bunkerId: string, execId: string): Promise<ProcessInfo>;
  /**
   * Replays the process's journaled output from `fromSeq` on, then follows it live; resolves
   * with the process as it ended (or as it is when `handlers.signal` aborts the reading).
   */
  processEvents(bunkerId: string, execId: string, fromSeq: number, handlers: EventHandlers<ProcessOutput>): Promise<ProcessInfo>;
  /** INVALID_STATE when the process has ended or its stdin is closed (or was never open). */
  writeStdin(bunkerId: string, execId: string, data: Readable): Promise<{ bytes: number }>;
  closeStdin(bunkerId: string, execId: string): Promise<void>;
  /** Sends a signal to the process group (a finished process: INVALID_STATE). */
  signalProcess(bunkerId: string, execId: string, signal: string): Promise<void>;
  /** Resizes a pty process's terminal (no pty: INVALID_STATE). */
  resizeProcess(bunkerId: string, execId: string, cols: number, rows: number): Promise<void>;
  /** Streams file changes under `path` until `handlers.signal` aborts or the directory goes. */
  watchFiles(bunkerId: string, path: string, opts: { recursive?: boolean }, handlers: EventHandlers<WatchEvent>): Promise<void>;
  readFile(bunkerId: string, path: string): Promise<Readable>;
  /**
   * A byte stream to 127.0.0.1:port inside the bunker (over the agent channel). PORT_NOT_LISTENING
   * when nothing listens there, TOO_MANY_TUNNELS over the per-bunker cap. The Duplex is
   * half-open capable: end() closes the write side only; 'end' means the server closed its side;
   * destroy() drops the connection. Ends (or errors) when the bunker is destroyed. Its chunks
   * may be lent (ChunkPool): the last holder of one hands it back with returnChunk once its
   * bytes are written (pipeLent does), else it is simply garbage-collected.
   */
  openTunnel(bunkerId: string, port: number): Promise<Duplex>;
  /** Streams `data` in; rejects with TOO_LARGE (and writes nothing) past `maxBytes`. */
  writeFile(
    bunkerId: string,
    path: string,
    data: Readable,
    opts: { mode?: number | undefined; parents?: boolean; maxBytes: number },
  ): Promise<{ bytes: number }>;
  stat(bunkerId: string, path: string): Promise<FileStatInfo>;
  list(bunkerId: string, path: string): Promise<FileStatInfo[]>;
  mkdir(bunkerId: string, path: string, opts: { parents?: boolean | undefined }): Promise<void>;
  remove(bunkerId: string, path: string, opts: { recursive?: boolean }): Promise<void>;
  /**
   * Resource readings of several bunkers in one call (the controller's usage ticker asks once
   * per worker per tick): cumulative CPU, current memory and disk, pids. A bunker the worker
   * does not run, or whose reading failed, is simply absent from the answer.
   */
  stats(bunkerIds: string[]): Promise<Record<string, BunkerStats>>;
  /** Makes a tenant's transit bridge (idempotent for the same tenant); BRIDGE_FAILED when it cannot. */
  createBridge(req: BridgeRequest): Promise<void>;
  /** Removes a bridge; idempotent. */
  deleteBridge(bridgeId: string): Promise<void>;
  /**
   * Makes sure the image is in the worker's cache, fetching it (a peer of the same availability
   * group first, else storage) when it is not. IMAGE_NOT_CACHED when no origin has it,
   * IMAGE_FETCH_FAILED when fetching failed. `bytes`: the image's size.
   */
  ensureImage(sha256: string): Promise<EnsureImageResult>;
}

/** What a worker serves its peers (`GET /v1/images/{sha256}`): a complete cached image, never a partial one. */
export interface CachedImageSource {
  /**
   * The image from byte `from` on (default 0: all of it; a peer continuing a cut download asks
   * for the rest). `bytes` is the image's whole size; `from` in the answer is where `stream`
   * starts: absent (0) when the whole image is sent, also when `from` is not inside the image.
   * Rejects with IMAGE_NOT_CACHED when the image is not (completely) cached here.
   */
  openCachedImage(sha256: string, from?: number): Promise<CachedImage>;
}

export interface CachedImage {
  stream: Readable;
  bytes: number;
  from?: number;
}

/** The worker's side of the controller: heartbeats, audit batches and images. In-process or HTTP. */
export interface ControllerLink {
  heartbeat(hb: Heartbeat): Promise<HeartbeatReply>;
  /** Stores one flow-audit batch of a bunker (`{ts_us}-{worker_pid}.ndjson`); a repeated name overwrites. */
  putAuditBatch(bunkerId: string, name: string, ndjson: Buffer): Promise<void>;
  /** Workers sharing an availability group with `workerId` that hold the image (may be empty). */
  imagePeers(sha256: string, workerId: string): Promise<Array<{ worker_id: string; url: string }>>;
  /**
   * Streams the image from storage (`scaibunker/images/{sha256}`), from byte `from` on (a
   * `Range` request; default 0, all of it). Rejects with WorkerError('IMAGE_NOT_CACHED') when
   * storage does not have it, with anything else when it could not be asked — also when `from`
   * > 0 and storage would answer from the start (the worker then starts again from 0).
   */
  openImage(sha256: string, from?: number): Promise<Readable>;
  /**
   * Stores a snapshot archive at `scaibunker/snapshots/{snapshotId}`: whole or not at all (a
   * stream that errors stores nothing).
   */
  putSnapshot(snapshotId: string, archive: Readable): Promise<void>;
  /** Streams a stored snapshot archive; WorkerError('SNAPSHOT_NOT_FOUND') when storage has none. */
  openSnapshot(snapshotId: string): Promise<Readable>;
}
