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
  user_id: string | null;
  name: string;
  key_hash: string;
  permissions: string;
  created_at: string;
  revoked_at: string | null;
}
export interface WorkerRow {
  id: string;
  name: string;
  url: string;
  state: 'online' | 'draining' | 'offline';
  isolations: string;
  capacity_cpu_millicores: number;
  capacity_memory_mb: number;
  capacity_disk_mb: number;
  cached_images: string;
  last_heartbeat_at: string | null;
  created_at: string;
}
export interface ImageRow {
  id: string;
  tenant_id: string | null;
  name: string;
  scope: 'tenant' | 'partner' | 'platform';
  state: 'pending' | 'ready' | 'failed';
  sha256: string | null;
  size_bytes: number | null;
  created_at: string;
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
  network_profile: string;
  idle_timeout_s: number;
  max_lifetime_s: number | null;
  env: string;
  metadata: string;
  created_at: string;
  started_at: string | null;
  last_activity_at: string;
  ended_at: string | null;
  updated_at: string;
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
}
export interface AuditEventRow {
  id: string;
  tenant_id: string | null;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  details: string;
  created_at: string;
}

export interface JobLeaseRow {
  job: string;
  holder: string;
  expires_at: string;
}

export interface Database {
  tenants: TenantRow;
  users: UserRow;
  groups: GroupRow;
  group_members: GroupMemberRow;
  api_keys: ApiKeyRow;
  workers: WorkerRow;
  images: ImageRow;
  bunkers: BunkerRow;
  bunker_labels: BunkerLabelRow;
  exec_logs: ExecLogRow;
  audit_events: AuditEventRow;
  job_leases: JobLeaseRow;
}
