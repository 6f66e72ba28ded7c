import type { HttpTransport } from './HttpTransport.js';
import type { UsageGroupBy, UsageReport } from './types.js';

export interface UsageQueryOptions {
  /** Start (inclusive): an ISO 8601 date or date-time, or a Date; default `to` minus 24 hours. */
  from?: string | Date;
  /** End (exclusive); default now. At most 92 days after `from`. */
  to?: string | Date;
  /** `bunker`, `day`, `hour`, `image` or `none` (default: one total). */
  groupBy?: UsageGroupBy;
  /** Platform admins: another tenant's usage. */
  tenantId?: string;
}

const iso = (v: string | Date) => (v instanceof Date ? v.toISOString() : v);

/** Metered usage of the caller's tenant (`scaibunker:read`). */
export class UsageApi {
  constructor(private readonly transport: HttpTransport) {}

  /** CPU seconds, memory and disk MB-minutes and wall seconds over [from, to), grouped as asked. */
  get(opts: UsageQueryOptions = {}): Promise<UsageReport> {
    return this.transport.json('get', '/v1/modules/scaibunker/usage', {
      query: {
        ...(opts.from !== undefined ? { from: iso(opts.from) } : {}),
        ...(opts.to !== undefined ? { to: iso(opts.to) } : {}),
        ...(opts.groupBy ? { group_by: opts.groupBy } : {}),
        ...(opts.tenantId ? { tenant_id: opts.tenantId } : {}),
      },
    });
  }
}
