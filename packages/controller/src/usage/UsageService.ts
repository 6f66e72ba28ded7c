import { ApiError, schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { OutputStorage } from '../bunkers/OutputStorage.js';
import { resolveTenant } from '../quotas/access.js';
import type { Store } from '../store/Store.js';
import { parseTimestamp } from '../time/parseTimestamp.js';

const DAY_MS = 86_400_000;

/**
 * `GET /usage`: a tenant's metered usage (rows written by the UsageTicker) summed over a range,
 * per bunker, UTC day or hour, image, or in total. Every caller with `scaibunker:read` sees the
 * whole tenant's usage, as it sees every bunker of the tenant; platform admins another tenant's.
 */
export class UsageService {
  constructor(
    private readonly store: Store,
    /** The tenant's stored exec output, reported beside its metered usage. */
    private readonly outputs?: Pick<OutputStorage, 'usage'>,
  ) {}

  async report(principal: Principal, query: schemas.UsageQuery): Promise<schemas.UsageReport> {
    const tenantId = await resolveTenant(this.store, principal, query.tenant_id);
    const to = query.to === undefined ? Date.now() : parseTimestamp(query.to, 'to');
    const from = query.from === undefined ? to - DAY_MS : parseTimestamp(query.from, 'from');
    if (to <= from) throw new ApiError('VALIDATION_FAILED', '`to` must be after `from`', { field: 'querystring/to' });
    if (to - from > schemas.USAGE_MAX_RANGE_DAYS * DAY_MS) {
      throw new ApiError('VALIDATION_FAILED', `the range may span at most ${schemas.USAGE_MAX_RANGE_DAYS} days`, {
        field: 'querystring/from',
        max_days: schemas.USAGE_MAX_RANGE_DAYS,
      });
    }
    const groupBy = query.group_by ?? 'none';
    const fromIso = new Date(from).toISOString();
    const toIso = new Date(to).toISOString();
    const totals = await this.store.usage.totals(tenantId, fromIso, toIso, groupBy);
    return {
      items: totals.map((t) => ({
        key: groupBy === 'hour' && t.key !== null ? `${t.key}:00:00.000Z` : t.key,
        cpu_seconds: round(t.cpu_seconds),
        memory_mb_minutes: round(t.memory_mb_minutes),
        disk_mb_minutes: round(t.disk_mb_minutes),
        wall_seconds: round(t.wall_seconds),
      })),
      from: fromIso,
      to: toIso,
      group_by: groupBy,
      ...(this.outputs ? { stored_output_bytes: (await this.outputs.usage(tenantId)).current } : {}),
      snapshot_bytes: await this.store.snapshots.tenantBytes(tenantId),
    };
  }
}

/** Sums of floating-point rows: six decimals are plenty and hide the float noise. */
function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
