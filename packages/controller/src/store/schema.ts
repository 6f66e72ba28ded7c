/** Row types of every table; timestamps are ISO-8601 UTC strings, booleans 0/1, JSON as text. */
export interface TenantRow {
  id: string;
  name: string;
  created_at: string;
}
export interface UserRow {
  id: string;
  tenant_id: string;
  name: string;
  created_at: string;
}
export interface GroupRow {
  id: string;
  tenant_id: string;
  name: string;
  created_at: string;
}
export interface GroupMemberRow {
  group_id: string;
  user_id: string;
}
export interface ApiKeyRow {
  id: string;
  tenant_id: string;
  /** Unused: a link to the `users` table, which nothing fills yet. Identity is `identity_*`. */
  user_id: string | null;
  /** The user the key acts as (quota buckets); null: the key's actor `key:<id>`. */
  identity_user_id: string | null;
  /** JSON array of the user's groups. */
  identity_groups: string;
  name: string;
  key_hash: string;
  permissions: string;
  created_at: string;
  revoked_at: string | null;
  /** Past it the key is refused (UNAUTHENTICATED); null: never. */
  expires_at: string | null;
  /** Last authenticated use, written at most once a minute per key. */
  last_used_at: string | null;
}
export interface WorkerRow {
  id: string;
  name: string;
  url: string;
  state: 'online' | 'draining' | 'offline';
  isolations: string;
  /** JSON array of the network profiles the worker offers. */
  network_profiles: string;
  capacity_cpu_millicores: number;
  capacity_memory_mb: number;
  capacity_disk_mb: number;
  cached_images: string;
  /** JSON array of the transit bridge ids the worker reported in its last heartbeat. */
  bridges: string;
  last_heartbeat_at: string | null;
  created_at: string;
}
/** A tenant's transit bridge on one worker. */
export interface BridgeRow {
  id: string;
  tenant_id: string;
  name: string;
  worker_id: string;
  /** `reserved` while its worker is making it; only `ready` bridges take bunkers. */
  state: 'reserved' | 'ready';
  created_at: string;
}
export interface ImageRow {
  id: string;
  tenant_id: string | null;
  name: string;
  scope: 'tenant' | 'partner' | 'platform';
  state: 'pending' | 'baking' | 'ready' | 'failed';
  sha256: string | null;
  size_bytes: number | null;
  created_at: string;
  /** JSON `{type:'oci', ref}` or `{type:'tar', path}`; null for the built-in catalog. */
  source?: string | null | undefined;
  /** 1: the scheduler may place on a worker that must fetch the image first. */
  lazy_pull?: number | undefined;
  /** JSON BakeProgress while baking. */
  progress?: string | null | undefined;
  /** Why the bake failed (`REASON: message`). */
  failure?: string | null | undefined;
  /** The controller baking it, and when it last reported progress. */
  baker?: string | null | undefined;
  baker_seen_at?: string | null | undefined;
  scan_state?: 'pending' | 'scanning' | 'done' | 'failed' | null | undefined;
  scan_result?: string | null | undefined;
  scanned_at?: string | null | undefined;
  created_by?: string | null | undefined;
  updated_at?: string | null | undefined;
}
export interface ImageShareRow {
  image_id: string;
  tenant_id: string;
}
export interface ImageCacheRow {
  worker_id: string;
  sha256: string;
  state: 'warming' | 'ready' | 'failed';
  error: string | null;
  updated_at: string;
}
export interface AvailabilityGroupRow {
  id: string;
  /**
   * Unique over every group (the column's UNIQUE predates tenant groups, and SQLite cannot drop
   * it without rebuilding the table): a tenant group's is stored as `<tenant_id>/<name>`, which
   * no platform group's name can be (`/` is not allowed in one). The store reads it back bare.
   */
  name: string;
  /** Null (or absent): a platform group. */
  tenant_id?: string | null | undefined;
  created_at: string;
}
export interface AvailabilityGroupWorkerRow {
  group_id: string;
  worker_id: string;
}
export interface AvailabilityGroupImageRow {
  group_id: string;
  image_id: string;
}
export interface BunkerRow {
  id: string;
  tenant_id: string;
  created_by: string;
  image: string;
  image_sha256: string | null;
  lifecycle: 'ephemeral' | 'session' | 'persistent';
  state: string;
  termination_reason: string | null;
  worker_id: string | null;
  isolation: string;
  cpu_millicores: number;
  memory_mb: number;
  disk_mb: number;
  gpu_count: number;
  network_profile: string;
  /** JSON array of hostnames / `*.` wildcards for `allowlisted`; null for other profiles. */
  network_allowlist: string | null;
  /** Egress cap in Mbit/s; null: the worker's default. */
  bandwidth_mbit: number | null;
  /** JSON `[{name, bridge_id, mac, spoof_guard}]` of a `transit` bunker; null for other profiles. */
  interfaces: string | null;
  idle_timeout_s: number;
  max_lifetime_s: number | null;
  env: string;
  metadata: string;
  created_at: string;
  started_at: string | null;
  last_activity_at: string;
  ended_at: string | null;
  updated_at: string;
  /**
   * JSON `[{key, amount}]`: the quota counters this bunker was charged at create (null: not
   * charged). Counters are rebuilt from the active rows' sets; release uses Redis's own copy.
   */
  quota_charges: string | null;
  /** The snapshot this bunker's files were restored from (create, resume after passivation, recovery). */
  snapshot_id: string | null;
  /** The worker it ran on before it was recovered elsewhere from a snapshot (its worker was lost). */
  recovered_from: string | null;
  /** 1: an exec/file/shell call on the passivated bunker resumes it first. */
  auto_resume: number;
  /** 1: paused with its worker resources released; its files are in `snapshot_id`. */
  passivated: number;
}
export interface BunkerLabelRow {
  bunker_id: string;
  tenant_id: string;
  key: string;
  value: string;
}
export interface ExecLogRow {
  id: string;
  bunker_id: string;
  tenant_id: string;
  caller: string;
  command: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: number;
  duration_ms: number | null;
  stdout_preview: string;
  stderr_preview: string;
  truncated: number;
  full_output_ref: string | null;
  started_at: string;
  finished_at: string | null;
  /** What of the output is in the blob store: inline (nothing), complete, capped, failed, expired. */
  output_store: string;
  /** Bytes of this exec's output in the blob store (0 once expired): counted against its tenant. */
  output_bytes: number;
  /** running | exited | killed | timed_out | lost (null on rows older than processes: derived). */
  state: string | null;
  /** Caller's label of a background process. */
  tag: string | null;
  /** 1: started with `background: true` (survives its request). */
  background: number;
  pid: number | null;
  /** Why it ended when that was not the command's own doing: client_gone, worker_lost, bunker_ended. */
  end_reason: string | null;
  /** 1: it ran in a terminal. */
  pty: number;
}
export interface AuditEventRow {
  id: string;
  tenant_id: string | null;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  /** The bunker the event is on or inside; null for events on anything else. */
  bunker_id: string | null;
  details: string;
  created_at: string;
}

export interface JobLeaseRow {
  job: string;
  holder: string;
  expires_at: string;
}

export interface QuotaProfileRow {
  id: string;
  tenant_id: string;
  name: string;
  max_bunkers: number | null;
  max_cpu_millicores: number | null;
  max_memory_mb: number | null;
  max_disk_mb: number | null;
  max_gpu_count: number | null;
  /** Stored snapshot bytes of the whole tenant. */
  max_snapshot_bytes: number | null;
  /** JSON arrays; null: no restriction. */
  allowed_lifecycles: string | null;
  allowed_images: string | null;
  allowed_network_profiles: string | null;
  created_at: string;
  updated_at: string;
}

export interface QuotaAssignmentRow {
  id: string;
  tenant_id: string;
  profile_id: string;
  kind: 'user' | 'group' | 'group_per_user';
  /** A user id (`user`) or a group name (`group`, `group_per_user`). */
  subject: string;
  created_at: string;
}

/** One bunker's usage up to `sampled_at` since its previous row, filed under the minute it was sampled in. */
export interface UsageRow {
  id: string;
  tenant_id: string;
  bunker_id: string;
  image: string;
  /** The start of the UTC minute `sampled_at` falls in (`…:MM:00.000Z`). */
  minute_start: string;
  /**
   * The reading the row's last sample counted from (the previous sample's `sampled_at`, or the
   * bunker's `started_at`); unique per bunker, so no reading is counted from twice.
   */
  since_at: string;
  sampled_at: string;
  cpu_seconds: number;
  memory_mb_minutes: number;
  disk_mb_minutes: number;
  wall_seconds: number;
  /** The worker's cumulative CPU reading at `sampled_at`: the next row's delta starts there. */
  cpu_usage_ns: number;
  created_at: string;
}

/** A terminated bunker's last reading, waiting for the usage ticker. */
export interface UsageFinalSampleRow {
  bunker_id: string;
  paused: number;
  cpu_usage_ns: number;
  memory_bytes: number;
  disk_used_bytes: number | null;
  sampled_at: string;
}

/** A host-based preview of a bunker's port (`{port}-{bunker}.{preview domain}`). */
export interface PortPreviewRow {
  id: string;
  tenant_id: string;
  bunker_id: string;
  port: number;
  /** sha256 (hex) of the preview token; null for a public preview. */
  token_sha256: string | null;
  public: number;
  created_by: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
}

/** A bunker's writable layer stored as one archive (`scaibunker/snapshots/{id}`). */
export interface SnapshotRow {
  id: string;
  tenant_id: string;
  bunker_id: string;
  created_by: string;
  name: string | null;
  source: 'user' | 'fork' | 'passivation';
  /** `deleting`: claimed by a delete (hidden from the API). */
  state: 'creating' | 'ready' | 'failed' | 'deleting';
  image: string;
  image_sha256: string;
  isolation: string;
  disk_mb: number;
  /** `container-tar` | `microvm-qcow2`, once ready. */
  format: string | null;
  sha256: string | null;
  size_bytes: number;
  error: string | null;
  created_at: string;
  ready_at: string | null;
  expires_at: string | null;
}

export interface Database {
  tenants: TenantRow;
  users: UserRow;
  groups: GroupRow;
  group_members: GroupMemberRow;
  api_keys: ApiKeyRow;
  workers: WorkerRow;
  bridges: BridgeRow;
  images: ImageRow;
  image_shares: ImageShareRow;
  image_cache: ImageCacheRow;
  availability_groups: AvailabilityGroupRow;
  availability_group_workers: AvailabilityGroupWorkerRow;
  availability_group_images: AvailabilityGroupImageRow;
  bunkers: BunkerRow;
  snapshots: SnapshotRow;
  bunker_labels: BunkerLabelRow;
  exec_logs: ExecLogRow;
  audit_events: AuditEventRow;
  job_leases: JobLeaseRow;
  quota_profiles: QuotaProfileRow;
  quota_assignments: QuotaAssignmentRow;
  usage: UsageRow;
  usage_final_samples: UsageFinalSampleRow;
  port_previews: PortPreviewRow;
}
