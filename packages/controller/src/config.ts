/** Controller tunables; intervals are configurable so tests run quickly. */
export interface ControllerConfig {
  /** Inline stdout/stderr cap per stream; the rest goes to the blob store. */
  outputInlineCapBytes: number;
  /** Bytes of each stream kept in the exec-log row. */
  execPreviewBytes: number;
  /** Largest file upload, enforced while streaming. */
  uploadCapBytes: number;
  heartbeatIntervalMs: number;
  /** Heartbeat intervals a worker may miss before it is marked offline. */
  missedHeartbeats: number;
  /**
   * A worker silent this long (from its last heartbeat) is lost: its active bunkers fail
   * `worker_lost`. Before that an offline worker is only unreachable: its bunkers keep their
   * state and it resumes where it was when it heartbeats again. Must exceed the heartbeat
   * timeout (`missedHeartbeats` × `heartbeatIntervalMs`).
   */
  workerLostAfterMs: number;
  monitorIntervalMs: number;
  sweepIntervalMs: number;
  /**
   * A create still `pending`/`provisioning` after this long has lost its controller: the sweeper
   * fails it (`provision_failed: controller lost`), releasing its quota charge. Well above the
   * slowest start (a microVM boot under TCG is bounded at 60 s, plus the agent's 10 s).
   */
  stuckCreateMs: number;
  /** How often running and paused bunkers are metered into the usage table (at most one row per bunker per minute). */
  usageIntervalMs: number;
  /** How often the bake job looks for pending images, and for bakes whose controller died (a registration also starts it at once). */
  imageBakeIntervalMs: number;
  /** The scan queue's interval (DESIGN: every 2 min). */
  imageScanIntervalMs: number;
  /** How often the daily 03:17 UTC rescan is checked for (it is idempotent). */
  imageRescanCheckMs: number;
  /** Stored exec output per exec (both streams); past it the stored output is capped. */
  outputStoreCapBytes: number;
  /** Stored exec output per tenant (all its execs within retention). */
  outputStoreTenantCapBytes: number;
  /** Stored exec output older than this is deleted. */
  outputRetentionMs: number;
  /** How often the output-retention sweep runs. */
  outputRetentionIntervalMs: number;
  /** Free space kept on the controller's data disk: under it no exec output spills, and /readyz says not ready. */
  diskReserveBytes: number;
  /** Log every background tick this controller runs (job, lease holder, start, end, result) on stderr. */
  traceJobs: boolean;
  /** A shell with no client attached is killed after this long (it can be reattached until then). */
  shellGraceMs: number;
  /** How often background execs whose row is open are adopted (after a restart) or closed as lost. */
  execReconcileIntervalMs: number;
  /**
   * Host-based previews answer on `{port}-{bunker id, _ as -}.{previewDomain}` (a wildcard DNS
   * record and certificate for `*.{previewDomain}` point at the controllers); null: no previews
   * are served (they can still be created, their URLs just do not resolve).
   */
  previewDomain: string | null;
  /** The scheme of preview URLs (`https` behind a TLS front; `http` for local use). */
  previewScheme: 'http' | 'https';
  /** Open port connections (path proxy, previews, port-forward) per bunker on one controller; past it TUNNEL_LIMIT. */
  maxTunnelsPerBunker: number;
  /** How often expired snapshots are deleted and snapshots a dead controller left half-made are closed (DESIGN: 5 min). */
  snapshotCleanupIntervalMs: number;
  /** A snapshot still `creating` after this long lost its controller: the cleanup fails it and its bunker runs on. */
  snapshotStaleMs: number;
  /** A proxied connection with no bytes either way for this long is closed (PORT_TIMEOUT before an answer). */
  tunnelIdleMs: number;
}

export const DEFAULT_CONFIG: ControllerConfig = {
  outputInlineCapBytes: 1024 * 1024,
  execPreviewBytes: 4096,
  uploadCapBytes: 256 * 1024 * 1024,
  heartbeatIntervalMs: 10_000,
  missedHeartbeats: 3,
  workerLostAfterMs: 10 * 60_000,
  monitorIntervalMs: 30_000,
  sweepIntervalMs: 30_000,
  stuckCreateMs: 10 * 60_000,
  usageIntervalMs: 60_000,
  imageBakeIntervalMs: 10_000,
  imageScanIntervalMs: 120_000,
  imageRescanCheckMs: 60_000,
  traceJobs: false,
  outputStoreCapBytes: 256 * 1024 * 1024,
  outputStoreTenantCapBytes: 10 * 1024 * 1024 * 1024,
  outputRetentionMs: 7 * 86_400_000,
  outputRetentionIntervalMs: 3_600_000,
  diskReserveBytes: 256 * 1024 * 1024,
  shellGraceMs: 60_000,
  execReconcileIntervalMs: 30_000,
  previewDomain: null,
  previewScheme: 'https',
  maxTunnelsPerBunker: 64,
  tunnelIdleMs: 300_000,
  snapshotCleanupIntervalMs: 300_000,
  snapshotStaleMs: 30 * 60_000,
};

/** Refuses a configuration that cannot work, with a message naming the flags (start-up error). */
export function validateConfig(c: ControllerConfig): void {
  const timeoutMs = c.missedHeartbeats * c.heartbeatIntervalMs;
  if (!(c.workerLostAfterMs > timeoutMs)) {
    throw new Error(
      `--worker-lost-after (${c.workerLostAfterMs} ms) must exceed the heartbeat timeout ` +
        `(${c.missedHeartbeats} missed heartbeats × --heartbeat-interval-ms ${c.heartbeatIntervalMs} = ${timeoutMs} ms)`,
    );
  }
}
