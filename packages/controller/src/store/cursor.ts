import { ApiError } from '@scaibunker/core';

/** Opaque keyset cursor over (timestamp, id), newest first. */
export function encodeCursor(at: string, id: string): string {
  return Buffer.from(`${at}|${id}`).toString('base64url');
}

export function decodeCursor(cursor: string): { at: string; id: string } {
  const raw = Buffer.from(cursor, 'base64url').toString();
  const sep = raw.indexOf('|');
  if (sep <= 0) throw new ApiError('VALIDATION_FAILED', 'cursor is not one this API issued', { field: 'cursor' });
  return { at: raw.slice(0, sep), id: raw.slice(sep + 1) };
}
