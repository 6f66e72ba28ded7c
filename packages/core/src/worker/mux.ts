/**
 * The worker's multiplexed channel (`scaibunker-mux`): one long-lived connection from a
 * controller to a worker carrying many calls at once, instead of one HTTP request per call.
 * It is opened by an HTTP upgrade on the worker's own server (`GET /v1/worker/mux`,
 * `Connection: Upgrade`, `Upgrade: scaibunker-mux`, the worker token as for every route) and
 * then carries frames both ways:
 *
 *   u32 payload length | u32 call id | u8 type | payload
 *
 * Controller → worker: CALL {v: verb, w: {params, query, body}, r?: request id} starts call `id`
 * (ids are the caller's, never reused while the call runs); CREDIT u32 lets the worker send that
 * many more output bytes of an exec; CANCEL aborts the call (as an HTTP client going away does).
 * Worker → controller: RESULT (the route's wire answer as JSON; empty for `empty` routes),
 * STDOUT/STDERR (raw output bytes of an exec, within the credit granted), EXIT (the exec's
 * outcome as JSON) and ERROR {code, message}. Each call ends with exactly one RESULT, EXIT or
 * ERROR. Only the routes of MUX_KINDS travel here; the streaming kinds keep their HTTP routes.
 * A malformed frame closes the connection (every call on it fails WORKER_UNAVAILABLE).
 */
import type { WorkerRouteKind } from './routes.js';

export const MUX_UPGRADE = 'scaibunker-mux';
export const MUX_PATH = '/v1/worker/mux';
/** The route kinds the channel carries. */
export const MUX_KINDS: ReadonlySet<WorkerRouteKind> = new Set(['empty', 'json', 'exec']);

export const MuxFrameType = {
  CALL: 1,
  CREDIT: 2,
  CANCEL: 3,
  RESULT: 16,
  ERROR: 17,
  STDOUT: 18,
  STDERR: 19,
  EXIT: 20,
} as const;

export const MUX_HEADER_SIZE = 9;
/** Output bytes of one exec the worker may send before the caller grants more. */
export const MUX_EXEC_WINDOW = 256 * 1024;
/** The largest output frame: output is cut into pieces of at most this size. */
export const MUX_CHUNK = 64 * 1024;
/** The largest CALL the worker takes (the HTTP server's body limit). */
export const MUX_MAX_CALL = 8 * 1024 * 1024;
/** The largest frame the controller takes (the biggest replyLimit of a route). */
export const MUX_MAX_REPLY = 64 * 1024 * 1024;

export class MuxProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MuxProtocolError';
  }
}

export interface MuxFrame {
  id: number;
  type: number;
  payload: Buffer;
}

const EMPTY = Buffer.alloc(0);

export function encodeMuxFrame(id: number, type: number, payload: Buffer = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(MUX_HEADER_SIZE + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(id, 4);
  out.writeUInt8(type, 8);
  if (payload.length) payload.copy(out, MUX_HEADER_SIZE);
  return out;
}

export function encodeMuxJson(id: number, type: number, value: unknown): Buffer {
  const json = value === undefined ? '' : JSON.stringify(value);
  const len = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(MUX_HEADER_SIZE + len);
  out.writeUInt32BE(len, 0);
  out.writeUInt32BE(id, 4);
  out.writeUInt8(type, 8);
  if (len) out.write(json, MUX_HEADER_SIZE, 'utf8');
  return out;
}

export function encodeMuxCredit(id: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(MUX_HEADER_SIZE + 4);
  out.writeUInt32BE(4, 0);
  out.writeUInt32BE(id, 4);
  out.writeUInt8(MuxFrameType.CREDIT, 8);
  out.writeUInt32BE(bytes, MUX_HEADER_SIZE);
  return out;
}

/** A JSON payload, or undefined for an empty one; MuxProtocolError when it does not parse. */
export function parseMuxJson(payload: Buffer): unknown {
  if (payload.length === 0) return undefined;
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new MuxProtocolError('frame payload is not JSON');
  }
}
