import { newId } from '@scaibunker/core';
import type { BunkerRow } from '../../src/store/schema.js';

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
    ...patch,
  };
}
