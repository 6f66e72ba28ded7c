/**
 * One proxied exchange over a tunnel to a port inside a bunker: an HTTP/1.1 request relayed with
 * Node's client on the tunnel (bodies streamed both ways, never buffered whole), or an upgrade
 * (WebSocket…) relayed as raw bytes once its request is written. The caller's ScaiBunker
 * credentials (Authorization, the preview token header and cookie) never enter the bunker.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApiError } from '@scaibunker/core';

export const PREVIEW_TOKEN_HEADER = 'x-scaibunker-preview-token';
export const PREVIEW_COOKIE = 'scaibunker_preview';

/** Hop-by-hop headers (RFC 9110 §7.6.1), and what the proxy sets itself or keeps from the bunker. */
const DROPPED_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
  PREVIEW_TOKEN_HEADER,
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-prefix',
]);
const DROPPED_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** What one exchange did, for its audit event. */
export interface RelayStats {
  status: number;
  /** Body bytes from the caller (an upgrade: every byte after the request head). */
  bytesIn: number;
  /** Body bytes to the caller (an upgrade: every byte from the bunker). */
  bytesOut: number;
  durationMs: number;
  /** Why it ended early, when it did. */
  error?: string;
}

export interface RelayOptions {
  req: IncomingMessage;
  tunnel: Duplex;
  port: number;
  /** Path and query as the service in the bunker sees them (starts with `/`). */
  path: string;
  /** `X-Forwarded-Prefix`: where the caller reached the service (the path proxy's prefix). */
  prefix?: string;
  /** No byte either way for this long closes the exchange. */
  idleMs: number;
  /** Extra response headers (the path proxy's sandbox CSP). */
  responseHeaders?: OutgoingHttpHeaders;
}

function schemeOf(req: IncomingMessage): 'http' | 'https' {
  return (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
}

/** The request headers the bunker sees: the caller's minus hop-by-hop and credentials, plus X-Forwarded-*. */
export function forwardHeaders(req: IncomingMessage, port: number, prefix: string | undefined, upgrade: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const named = new Set(
    String(req.headers.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t && t !== 'upgrade'),
  );
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    let value = raw[i + 1] as string;
    if (DROPPED_REQUEST.has(name) || named.has(name)) continue;
    if (name === 'cookie') {
      value = stripCookie(value, PREVIEW_COOKIE);
      if (!value) continue;
    }
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  }
  out.host = `localhost:${port}`;
  out['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  out['x-forwarded-proto'] = schemeOf(req);
  if (req.headers.host) out['x-forwarded-host'] = req.headers.host;
  if (prefix) out['x-forwarded-prefix'] = prefix;
  if (upgrade) {
    out.connection = 'Upgrade';
    if (req.headers.upgrade) out.upgrade = req.headers.upgrade;
  }
  return out;
}

/** A Cookie header without the named cookie ('' when nothing is left). */
export function stripCookie(header: string, name: string): string {
  return header
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p && p.split('=', 1)[0] !== name)
    .join('; ');
}

/** The value of a cookie in a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** An API error as the answer, when nothing has been answered yet. */
export function answerError(res: ServerResponse, err: ApiError): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  res.writeHead(err.status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
  res.end(JSON.stringify(err.toBody()));
}

/** A timer reset by every byte; fires once when the exchange has been idle for `ms`. */
function idleTimer(ms: number, onIdle: () => void): { touch(): void; stop(): void } {
  const t = setTimeout(onIdle, ms);
  t.unref();
  return { touch: () => t.refresh(), stop: () => clearTimeout(t) };
}

/** Relays one HTTP request; `onDone` runs once, when the answer has ended or the exchange failed. */
export function relayHttp(o: RelayOptions, res: ServerResponse, onDone: (s: RelayStats) => void): void {
  const { req, tunnel } = o;
  const started = Date.now();
  const stats: RelayStats = { status: 0, bytesIn: 0, bytesOut: 0, durationMs: 0 };
  let done = false;
  const finish = (error?: string) => {
    if (done) return;
    done = true;
    idle.stop();
    tunnel.destroy();
    stats.durationMs = Date.now() - started;
    if (error) stats.error = error;
    onDone(stats);
  };
  const fail = (err: ApiError) => {
    if (!res.headersSent) stats.status = err.status;
    answerError(res, err);
    finish(err.code);
  };
  const idle = idleTimer(o.idleMs, () => {
    upstream.destroy();
    fail(new ApiError('PORT_TIMEOUT', `the service on port ${o.port} sent nothing for ${o.idleMs} ms`));
  });
  const upstream = http.request({
    method: req.method,
    path: o.path,
    headers: forwardHeaders(req, o.port, o.prefix, false),
    createConnection: () => tunnel as Socket,
  });
  upstream.on('error', (err) => {
    if (done) return;
    fail(
      new ApiError('PORT_NOT_LISTENING', `the service on port ${o.port} closed the connection without a complete answer`, {
        cause: err.message,
      }),
    );
  });
  upstream.on('response', (up) => {
    stats.status = up.statusCode ?? 502;
    const headers: OutgoingHttpHeaders = {};
    const raw = up.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      if (DROPPED_RESPONSE.has(name)) continue;
      const prev = headers[name];
      const value = raw[i + 1] as string;
      headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
    }
    Object.assign(headers, o.responseHeaders ?? {});
    res.writeHead(stats.status, up.statusMessage, headers);
    // Event streams and long polls: the head goes out now, not with the first body bytes.
    res.flushHeaders();
    up.on('data', (chunk: Buffer) => {
      stats.bytesOut += chunk.length;
      idle.touch();
    });
    up.on('error', () => res.destroy());
    up.pipe(res);
  });
  req.on('data', (chunk: Buffer) => {
    stats.bytesIn += chunk.length;
    idle.touch();
  });
  req.pipe(upstream);
  res.on('close', () => {
    // The caller went away before the end: stop the exchange in the bunker too.
    if (!res.writableFinished) upstream.destroy();
    finish(res.writableFinished ? undefined : 'caller_closed');
  });
}

/** The socket and first bytes of an upgrade request (@fastify/websocket keeps them on the request). */
export function upgradeOf(req: IncomingMessage): { socket: Duplex; head: Buffer } | undefined {
  const syms = Object.getOwnPropertySymbols(req);
  const socketSym = syms.find((s) => s.description === 'ws-socket');
  const headSym = syms.find((s) => s.description === 'ws-head');
  const socket = socketSym ? (req as unknown as Record<symbol, Duplex>)[socketSym] : undefined;
  if (!socket) return undefined;
  const head = headSym ? (req as unknown as Record<symbol, Buffer>)[headSym] : undefined;
  return { socket, head: head ?? Buffer.alloc(0) };
}

/** Relays an upgrade (WebSocket…): the request head is written, then bytes flow both ways untouched. */
export function relayUpgrade(o: RelayOptions, client: { socket: Duplex; head: Buffer }, onDone: (s: RelayStats) => void): void {
  const { req, tunnel } = o;
  const headers = forwardHeaders(req, o.port, o.prefix, true);
  let head = `${req.method} ${o.path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${String(v)}\r\n`;
  }
  tunnel.write(`${head}\r\n`);
  splice(client, tunnel, o.idleMs, true, onDone);
}

/**
 * Joins a caller's socket (after its upgrade) and a tunnel byte for byte until either side
 * closes, errors or both stay idle for `idleMs`; then both are destroyed and `onDone` runs once.
 * `httpStatus`: read the status of the first line the tunnel sends (an upgrade's answer);
 * otherwise the exchange is on record as 101 (a raw tunnel the controller answered itself).
 */
export function splice(
  client: { socket: Duplex; head: Buffer },
  tunnel: Duplex,
  idleMs: number,
  httpStatus: boolean,
  onDone: (s: RelayStats) => void,
): void {
  const { socket } = client;
  const started = Date.now();
  const stats: RelayStats = { status: httpStatus ? 0 : 101, bytesIn: 0, bytesOut: 0, durationMs: 0 };
  let done = false;
  const idle = idleTimer(idleMs, () => finish('idle'));
  const finish = (error?: string) => {
    if (done) return;
    done = true;
    idle.stop();
    tunnel.destroy();
    socket.destroy();
    stats.durationMs = Date.now() - started;
    if (error) stats.error = error;
    onDone(stats);
  };
  if (client.head.length > 0) {
    stats.bytesIn += client.head.length;
    tunnel.write(client.head);
  }
  tunnel.on('data', (chunk: Buffer) => {
    if (stats.status === 0) stats.status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(chunk.subarray(0, 16).toString('latin1'))?.[1] ?? 0);
    stats.bytesOut += chunk.length;
    idle.touch();
  });
  socket.on('data', (chunk: Buffer) => {
    stats.bytesIn += chunk.length;
    idle.touch();
  });
  tunnel.pipe(socket);
  socket.pipe(tunnel);
  tunnel.on('error', () => finish('tunnel_error'));
  socket.on('error', () => finish('caller_error'));
  tunnel.on('close', () => finish());
  socket.on('close', () => finish());
}
