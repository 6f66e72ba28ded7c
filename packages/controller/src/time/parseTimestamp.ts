import { ApiError } from '@scaibunker/core';

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-](\d{2}):(\d{2})))?$/;

/** An ISO 8601 date or date-time (the schema checked the shape) whose fields are in range, as epoch ms. */
export function parseTimestamp(value: string, field: string): number {
  const m = TIMESTAMP.exec(value);
  const [, y, mo, d, h = '0', mi = '0', s = '0', , oh = '0', om = '0'] = m ?? [];
  const ms = Date.parse(m?.[4] === undefined ? `${value}T00:00:00Z` : value);
  const daysInMonth = new Date(Date.UTC(Number(y), Number(mo), 0)).getUTCDate();
  const valid =
    m !== null &&
    Number.isFinite(ms) &&
    Number(mo) >= 1 &&
    Number(mo) <= 12 &&
    Number(d) >= 1 &&
    Number(d) <= daysInMonth &&
    Number(h) <= 23 &&
    Number(mi) <= 59 &&
    Number(s) <= 59 &&
    Number(oh) <= 23 &&
    Number(om) <= 59;
  if (!valid)
    throw new ApiError('VALIDATION_FAILED', `\`${field}\` is not a valid date or date-time: ${value}`, { field: `querystring/${field}` });
  return ms;
}
