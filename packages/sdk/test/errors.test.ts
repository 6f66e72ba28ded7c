import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ERROR_CODES, type ErrorCode } from '@scaibunker/core';
import {
  AuthError,
  ConflictError,
  connectionFailed,
  DiskFullError,
  ERROR_CLASS_BY_CODE,
  errorFromApi,
  errorFromResponseBody,
  InternalError,
  NotFoundError,
  PayloadTooLargeError,
  QuotaError,
  readSseEvents,
  ScaiBunkerError,
  type ScaiBunkerErrorClass,
  type SseEvent,
  SseParser,
  UnavailableError,
  ValidationError,
} from '../src/index.js';

/** The family each HTTP status belongs to. A status the table gains without a family fails below. */
const FAMILY_BY_STATUS: Record<number, ScaiBunkerErrorClass> = {
  400: ValidationError,
  401: AuthError,
  403: AuthError,
  404: NotFoundError,
  409: ConflictError,
  413: PayloadTooLargeError,
  416: ValidationError,
  422: ConflictError,
  429: QuotaError,
  500: InternalError,
  502: UnavailableError,
  503: UnavailableError,
  504: UnavailableError,
  507: DiskFullError,
};

describe('error mapping', () => {
  const codes = Object.keys(ERROR_CODES) as ErrorCode[];

  test('the table is not empty and every code has a class', () => {
    assert.ok(codes.length >= 20);
    assert.deepEqual(Object.keys(ERROR_CLASS_BY_CODE).sort(), [...codes].sort());
  });

  for (const code of codes) {
    test(`${code} maps to the class of its status ${ERROR_CODES[code].status}`, () => {
      const status = ERROR_CODES[code].status;
      const Family = FAMILY_BY_STATUS[status];
      assert.ok(Family, `status ${status} of ${code} has a family`);
      const err = errorFromApi(status, { code, message: `m-${code}`, details: { k: 1 } });
      assert.ok(err instanceof ScaiBunkerError);
      assert.ok(err instanceof Family, `${code} is a ${Family.name}, got ${err.constructor.name}`);
      assert.equal(err.code, code);
      assert.equal(err.status, status);
      assert.equal(err.message, `m-${code}`);
      assert.deepEqual(err.details, { k: 1 });
      assert.equal(err.name, Family.name);
      // From an SSE `error` event (no HTTP status): the status comes from the table.
      const fromStream = errorFromApi(undefined, { code, message: 'x' });
      assert.ok(fromStream instanceof Family);
      assert.equal(fromStream.status, status);
      // From a response body.
      const fromBody = errorFromResponseBody(status, JSON.stringify({ error: { code, message: 'y', details: {} } }));
      assert.ok(fromBody instanceof Family);
      assert.equal(fromBody.code, code);
    });
  }

  test('a code this SDK does not know keeps its code and gets the class of its status', () => {
    const err = errorFromResponseBody(409, JSON.stringify({ error: { code: 'SNAPSHOT_BUSY', message: 'busy', details: {} } }));
    assert.ok(err instanceof ConflictError);
    assert.equal(err.code, 'SNAPSHOT_BUSY');
    assert.equal(err.status, 409);
  });

  test('a body that is not the API error shape is UNEXPECTED_RESPONSE, classed by status', () => {
    const err = errorFromResponseBody(502, '<html>Bad Gateway</html>');
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.code, 'UNEXPECTED_RESPONSE');
    assert.equal(err.status, 502);
    assert.match(err.message, /HTTP 502.*Bad Gateway/);
    const teapot = errorFromResponseBody(418, '');
    assert.equal(teapot.constructor, ScaiBunkerError);
  });

  test('network failures are UnavailableError CONNECTION_FAILED with the cause kept', () => {
    const cause = new Error('ECONNREFUSED');
    const err = connectionFailed('cannot reach', cause);
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.code, 'CONNECTION_FAILED');
    assert.equal(err.cause, cause);
  });
});

const STREAM = [
  ': a comment, then an event with CRLF line ends\r\n',
  'event: stdout\r\ndata: {"data":"one"}\r\n\r\n',
  'event: stderr\rdata: {"data":"two"}\r\r',
  'data: first line\ndata:second line\ndata\n\n',
  'id: 7\nevent: exit\ndata: {"exit_code":0,"text":"héllo ✓"}\nretry: 10\nunknown: x\n\n',
  'event: ignored-without-data\n\n',
  'data:  two spaces keep one\n\n',
  'event: unterminated\ndata: never dispatched\n',
].join('');

const EXPECTED: SseEvent[] = [
  { event: 'stdout', data: '{"data":"one"}' },
  { event: 'stderr', data: '{"data":"two"}' },
  { event: 'message', data: 'first line\nsecond line\n' },
  { event: 'exit', data: '{"exit_code":0,"text":"héllo ✓"}', id: '7' },
  { event: 'message', data: ' two spaces keep one', id: '7' },
];

function parseInPieces(pieces: string[]): SseEvent[] {
  const parser = new SseParser();
  const out: SseEvent[] = [];
  for (const p of pieces) out.push(...parser.push(p));
  out.push(...parser.end());
  return out;
}

async function collect(chunks: Uint8Array[]): Promise<SseEvent[]> {
  async function* source() {
    for (const c of chunks) yield c;
  }
  const out: SseEvent[] = [];
  for await (const e of readSseEvents(source())) out.push(e);
  return out;
}

describe('SSE parser', () => {
  test('parses the whole stream in one piece', () => {
    assert.deepEqual(parseInPieces([STREAM]), EXPECTED);
  });

  test('gives the same events for every split of the text into three pieces', () => {
    for (let i = 0; i <= STREAM.length; i++) {
      for (let j = i; j <= STREAM.length; j += 7) {
        const events = parseInPieces([STREAM.slice(0, i), STREAM.slice(i, j), STREAM.slice(j)]);
        assert.deepEqual(events, EXPECTED, `split at ${i} and ${j}`);
      }
    }
  });

  test('gives the same events one character at a time', () => {
    assert.deepEqual(parseInPieces([...STREAM]), EXPECTED);
  });

  test('decodes UTF-8 split inside multi-byte characters, at every byte boundary and at random', async () => {
    const bytes = Buffer.from(STREAM, 'utf8');
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(await collect([bytes.subarray(0, i), bytes.subarray(i)]), EXPECTED, `byte split at ${i}`);
    }
    let seed = 42;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed / 2147483648;
    };
    for (let round = 0; round < 200; round++) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + Math.floor(rand() * 12);
        chunks.push(bytes.subarray(at, at + n));
        at += n;
      }
      assert.deepEqual(await collect(chunks), EXPECTED, `random round ${round}`);
    }
  });

  test('a CR at the end of a chunk waits to see whether an LF follows', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('data: a\r'), []);
    assert.deepEqual(parser.push('\n'), []);
    assert.deepEqual(parser.push('\r'), []);
    assert.deepEqual(parser.push('\ndata: b\n\n'), [
      { event: 'message', data: 'a' },
      { event: 'message', data: 'b' },
    ]);
  });
});
