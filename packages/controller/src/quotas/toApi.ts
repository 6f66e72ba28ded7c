import type { schemas } from '@scaibunker/core';
import type { QuotaAssignmentRow, QuotaProfileRow } from '../store/schema.js';

const list = <T>(json: string | null): T[] | null => (json === null ? null : (JSON.parse(json) as T[]));

export function assignmentToApi(a: QuotaAssignmentRow): schemas.QuotaAssignment {
  return { id: a.id, profile_id: a.profile_id, kind: a.kind, subject: a.subject, created_at: a.created_at };
}

export function profileToApi(p: QuotaProfileRow, assignments: QuotaAssignmentRow[]): schemas.QuotaProfile {
  return {
    id: p.id,
    tenant_id: p.tenant_id,
    name: p.name,
    max_bunkers: p.max_bunkers,
    max_cpu_millicores: p.max_cpu_millicores,
    max_memory_mb: p.max_memory_mb,
    max_disk_mb: p.max_disk_mb,
    max_gpu_count: p.max_gpu_count,
    max_snapshot_bytes: p.max_snapshot_bytes === null ? null : Number(p.max_snapshot_bytes),
    allowed_lifecycles: list(p.allowed_lifecycles),
    allowed_images: list(p.allowed_images),
    allowed_network_profiles: list(p.allowed_network_profiles),
    assignments: assignments.filter((a) => a.profile_id === p.id).map(assignmentToApi),
    created_at: p.created_at,
    updated_at: p.updated_at,
  };
}
