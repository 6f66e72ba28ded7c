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
  monitorIntervalMs: number;
  sweepIntervalMs: number;
}

export const DEFAULT_CONFIG: ControllerConfig = {
  outputInlineCapBytes: 1024 * 1024,
  execPreviewBytes: 4096,
  uploadCapBytes: 256 * 1024 * 1024,
  heartbeatIntervalMs: 10_000,
  missedHeartbeats: 3,
  monitorIntervalMs: 30_000,
  sweepIntervalMs: 30_000,
};
