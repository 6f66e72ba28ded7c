/**
 * The head of an HTTP/1.x answer from a service in a bunker, parsed by the relay itself: only
 * the head is parsed, the body is then passed on as the bytes it is (see relay.ts). Strict on
 * purpose (RFC 9112): anything not plainly HTTP/1.x is refused, never guessed at.
 */

/** A head larger than this is refused (Node's own server limit is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

export interface ResponseHead {
  status: number;
  reason: string;
  /** Names lower-cased, values trimmed, in the order sent (repeats kept). */
  headers: Array<[string, string]>;
  /** Bytes of the head, the blank line included: the body starts there. */
  length: number;
}

/** How the body of an answer ends (RFC 9112 §6.3). */
export type BodyFraming = { kind: 'none' } | { kind: 'length'; bytes: number } | { kind: 'chunked' } | { kind: 'close' };

export class MalformedHead extends Error {}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible characters, spaces and tabs, obs-text; no CR, LF or NUL.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The head at the start of `buf`: `undefined` while its blank line has not arrived yet,
 * MalformedHead when it is not an HTTP/1.x answer head (or exceeds MAX_HEAD_BYTES).
 */
export function parseResponseHead(buf: Buffer): ResponseHead | undefined {
  const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length > MAX_HEAD_BYTES) throw new MalformedHead(`answer head exceeds ${MAX_HEAD_BYTES} bytes`);
    return undefined;
  }
  if (end + 4 > MAX_HEAD_BYTES) throw new MalformedHead(`answer head exceeds ${MAX_HEAD_BYTES} bytes`);
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const status = /^HTTP\/1\.[01] ([1-9][0-9]{2})(?: ([\t\x20-\x7e\x80-\xff]*))?$/.exec(lines[0] ?? '');
  if (!status) throw new MalformedHead(`not an HTTP/1.x status line: ${JSON.stringify((lines[0] ?? '').slice(0, 64))}`);
  const headers: Array<[string, string]> = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).trim();
    // No name, whitespace before the colon, obs-fold or control characters: refused (RFC 9112 §5).
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw new MalformedHead(`malformed header line ${i}`);
    headers.push([name.toLowerCase(), value]);
  }
  return { status: Number(status[1]), reason: status[2] ?? '', headers, length: end + 4 };
}

/** How the body of `head`, answering a request with `method`, is delimited. */
export function bodyFraming(head: ResponseHead, method: string): BodyFraming {
  const { status } = head;
  if (method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304) return { kind: 'none' };
  const te = head.headers.filter(([n]) => n === 'transfer-encoding').map(([, v]) => v);
  if (te.length > 0) {
    const codings = te
      .join(',')
      .split(',')
      .map((c) => c.trim().toLowerCase());
    // Chunked last: chunked framing; any other transfer coding: the body runs to the close.
    return codings[codings.length - 1] === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  }
  const lengths = new Set(head.headers.filter(([n]) => n === 'content-length').flatMap(([, v]) => v.split(',').map((x) => x.trim())));
  if (lengths.size === 0) return { kind: 'close' };
  const [only] = [...lengths];
  if (lengths.size > 1 || !/^[0-9]{1,15}$/.test(only as string)) throw new MalformedHead('invalid Content-Length');
  return { kind: 'length', bytes: Number(only) };
}
