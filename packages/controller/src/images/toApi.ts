import type { schemas } from '@scaibunker/core';
import type { ImageRow } from '../store/schema.js';

/** An image row as the API answers it. */
export function imageToApi(row: ImageRow): schemas.Image {
  const scan = row.scan_result ? (JSON.parse(row.scan_result) as Partial<schemas.Image['scan'] & object>) : undefined;
  return {
    id: row.id,
    name: row.name,
    sha256: row.sha256,
    state: row.state,
    scope: row.scope,
    size_bytes: row.size_bytes === null ? null : Number(row.size_bytes),
    source: row.source ? JSON.parse(row.source) : null,
    lazy_pull: Number(row.lazy_pull ?? 0) === 1,
    progress: row.progress ? JSON.parse(row.progress) : null,
    failure: row.failure ?? null,
    scan: row.scan_state
      ? {
          state: row.scan_state,
          scanner: scan?.scanner ?? null,
          scanned_at: row.scanned_at ?? null,
          packages: scan?.packages ?? null,
          counts: scan?.counts ?? null,
          vulnerabilities: (scan?.vulnerabilities ?? []).map((v) => ({
            id: v.id,
            package: v.package,
            ecosystem: v.ecosystem,
            installed: v.installed,
            ...(v.fixed ? { fixed: v.fixed } : {}),
            ...(v.severity ? { severity: v.severity } : {}),
          })),
          ...(scan?.note ? { note: scan.note } : {}),
          ...(scan?.error ? { error: scan.error } : {}),
        }
      : null,
    created_at: row.created_at,
  };
}
