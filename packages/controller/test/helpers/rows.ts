import { newId } from '@scaibunker/core';
import type { BunkerRow, ExecLogRow } from '../../src/store/schema.js';

/** A bunker row for store-level tests: a pending container bunker unless `patch` says otherwise. */
export function bunkerRow(tenantId: string, patch: Partial<BunkerRow> = {}): BunkerRow {
  const now = new Date().toISOString();
  return {
    id: newId('bk'),
    tenant_id: tenantId,
    created_by: 'key:test',
    image: 'minimal',
    image_sha256: 'e'.repeat(64),
    lifecycle: 'ephemeral',
    state: 'pending',
    termination_reason: null,
    worker_id: null,
    isolation: 'container',
    cpu_millicores: 1000,
    memory_mb: 256,
    disk_mb: 256,
    gpu_count: 0,
    network_profile: 'isolated',
    network_allowlist: null,
    bandwidth_mbit: null,
    interfaces: null,
    idle_timeout_s: 300,
    max_lifetime_s: 3600,
    env: '{}',
    metadata: '{}',
    created_at: now,
    started_at: null,
    last_activity_at: now,
    ended_at: null,
    updated_at: now,
    quota_charges: null,
    snapshot_id: null,
    recovered_from: null,
    auto_resume: 0,
    passivated: 0,
    ...patch,
  };
}

/** An exec-log row as an exec writes it when it starts; `patch` fills in the rest. */
export function execLogRow(id: string, patch: Partial<ExecLogRow> = {}): ExecLogRow {
  return {
    id,
    bunker_id: 'bk_1',
    tenant_id: 'tn_1',
    caller: 'key:x',
    command: 'true',
    exit_code: null,
    signal: null,
    timed_out: 0,
    duration_ms: null,
    stdout_preview: '',
    stderr_preview: '',
    truncated: 0,
    full_output_ref: null,
    started_at: '2030-01-01T00:00:00.000Z',
    finished_at: null,
    output_store: 'inline',
    output_bytes: 0,
    state: null,
    tag: null,
    background: 0,
    pid: null,
    end_reason: null,
    pty: 0,
    ...patch,
  };
}
