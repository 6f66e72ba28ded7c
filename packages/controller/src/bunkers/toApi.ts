import type { ProcessInfo, schemas } from '@scaibunker/core';
import type { BunkerRow, ExecLogRow, SnapshotRow } from '../store/schema.js';

/** `workerReachable`: false while the bunker's worker is offline (see `BunkerService.toApi`). */
export function bunkerToApi(r: BunkerRow, workerReachable: boolean): schemas.Bunker {
  return {
    id: r.id,
    tenant_id: r.tenant_id,
    image: r.image,
    image_sha256: r.image_sha256,
    lifecycle: r.lifecycle,
    state: r.state as schemas.Bunker['state'],
    termination_reason: r.termination_reason,
    worker_id: r.worker_id,
    worker_reachable: workerReachable,
    isolation: r.isolation as schemas.Bunker['isolation'],
    cpu_millicores: r.cpu_millicores,
    memory_mb: r.memory_mb,
    disk_mb: r.disk_mb,
    gpu_count: r.gpu_count,
    network_profile: r.network_profile,
    network_allowlist: r.network_allowlist === null ? null : (JSON.parse(r.network_allowlist) as string[]),
    bandwidth_mbit: r.bandwidth_mbit,
    interfaces: r.interfaces === null || r.interfaces === undefined ? null : JSON.parse(r.interfaces),
    idle_timeout_s: r.idle_timeout_s,
    max_lifetime_s: r.max_lifetime_s,
    metadata: JSON.parse(r.metadata),
    created_at: r.created_at,
    started_at: r.started_at,
    last_activity_at: r.last_activity_at,
    ended_at: r.ended_at,
    snapshot_id: r.snapshot_id ?? null,
    passivated: Number(r.passivated) === 1,
    auto_resume: Number(r.auto_resume) === 1,
    recovered_from: r.recovered_from ?? null,
  };
}

export function snapshotToApi(r: SnapshotRow): schemas.Snapshot {
  return {
    id: r.id,
    tenant_id: r.tenant_id,
    bunker_id: r.bunker_id,
    name: r.name,
    source: r.source,
    state: r.state as schemas.Snapshot['state'],
    image: r.image,
    isolation: r.isolation as schemas.Snapshot['isolation'],
    disk_mb: r.disk_mb,
    size_bytes: Number(r.size_bytes),
    sha256: r.sha256,
    error: r.error,
    created_by: r.created_by,
    created_at: r.created_at,
    ready_at: r.ready_at,
    expires_at: r.expires_at,
  };
}

export function execLogToApi(r: ExecLogRow): schemas.ExecLog {
  return {
    id: r.id,
    bunker_id: r.bunker_id,
    caller: r.caller,
    command: r.command,
    exit_code: r.exit_code,
    signal: r.signal,
    timed_out: r.timed_out === 1,
    duration_ms: r.duration_ms,
    stdout_preview: r.stdout_preview,
    stderr_preview: r.stderr_preview,
    truncated: r.truncated === 1,
    full_output_ref: r.full_output_ref,
    started_at: r.started_at,
    finished_at: r.finished_at,
    output_store: r.output_store as schemas.ExecLog['output_store'],
    output_stored_bytes: Number(r.output_bytes),
  };
}

/** An exec as a process: its row, with what its worker says while it runs (`live`). */
export function processToApi(r: ExecLogRow, live?: ProcessInfo): schemas.Process {
  const running = r.finished_at === null;
  const state = (running ? (live?.state ?? 'running') : (r.state ?? derivedState(r))) as schemas.Process['state'];
  return {
    exec_id: r.id,
    bunker_id: r.bunker_id,
    caller: r.caller,
    command: r.command,
    tag: r.tag,
    background: r.background === 1,
    pty: r.pty === 1,
    pid: r.pid ?? live?.pid ?? null,
    state,
    exit_code: running ? (live?.exitCode ?? null) : r.exit_code,
    signal: running ? (live?.signal ?? null) : r.signal,
    timed_out: running ? (live?.timedOut ?? false) : r.timed_out === 1,
    duration_ms: running ? (live?.durationMs != null ? Math.round(live.durationMs) : null) : r.duration_ms,
    end_reason: r.end_reason,
    stdin_open: running && (live?.stdinOpen ?? false),
    next_seq: live?.nextSeq ?? null,
    started_at: r.started_at,
    finished_at: running ? (live?.endedAt ?? null) : r.finished_at,
  };
}

/** Rows written before exec states existed. */
function derivedState(r: ExecLogRow): string {
  if (r.timed_out === 1) return 'timed_out';
  if (r.signal !== null) return 'killed';
  return r.exit_code !== null ? 'exited' : 'lost';
}
