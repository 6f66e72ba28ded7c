/** What the stub servers share: their API error, ids shaped like the API's, and JSON answers. */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** An API error answer: `{ error: { code, message, details } }` with its status. */
export class HttpFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

const ID_CHARS = '0123456789abcdefghjkmnpqrstvwxyz';
export function newId(prefix: string): string {
  let out = '';
  for (const b of randomBytes(20)) out += ID_CHARS[b & 31];
  return `${prefix}_${out}`;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
