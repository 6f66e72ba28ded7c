/**
 * Decoding of the JSON payloads the agent sends (RESULT, ERROR, HELLO, STARTED) and the
 * byte shapes callers hand in; the frames around them are protocol.ts's.
 */
import { AgentError } from './AgentError.js';
import type { AgentHello } from './agentTypes.js';
import { ProtocolError } from './protocol.js';

/** A JSON object payload; anything else is a protocol error. */
export function parseJson(payload: Buffer): Record<string, unknown> {
  const v: unknown = JSON.parse(payload.toString('utf8'));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ProtocolError('expected a JSON object');
  return v as Record<string, unknown>;
}

export function parseHello(payload: Buffer): AgentHello {
  const h = parseJson(payload);
  if (typeof h.protocol !== 'number' || typeof h.version !== 'string' || typeof h.pid !== 'number') {
    throw new ProtocolError('HELLO lacks protocol, version or pid');
  }
  return {
    protocol: h.protocol,
    version: h.version,
    pid: h.pid,
    bootId: typeof h.boot_id === 'string' ? h.boot_id : '',
  };
}

/** The AgentError an ERROR frame carries; a malformed one is itself a PROTOCOL_ERROR. */
export function errorFromPayload(payload: Buffer): AgentError {
  try {
    const e = parseJson(payload);
    const code = typeof e.code === 'string' ? e.code : 'IO_ERROR';
    const message = typeof e.message === 'string' ? e.message : code;
    return new AgentError(code, message, typeof e.errno === 'string' ? { errno: e.errno } : undefined);
  } catch {
    return new AgentError('PROTOCOL_ERROR', 'malformed ERROR frame from agent');
  }
}

export function toBuffer(piece: Buffer | Uint8Array | string): Buffer {
  if (typeof piece === 'string') return Buffer.from(piece, 'utf8');
  return Buffer.isBuffer(piece) ? piece : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
}

export function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}
