/**
 * One proxied exchange over a tunnel to a port inside a bunker: an HTTP/1.1 request relayed over
 * the tunnel (bodies streamed both ways, never buffered whole), or an upgrade
 * (WebSocket…) relayed as raw bytes once its request is written. The caller's ScaiBunker
 * credentials (Authorization, the preview token header and cookie) never enter the bunker.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError, pipeLent, returnChunk } from '@scaibunker/core';
import { ChunkedBody } from './ChunkedBody.js';
import { type BodyFraming, bodyFraming, MalformedHead, parseResponseHead, type ResponseHead } from './responseHead.js';

export const PREVIEW_TOKEN_HEADER = 'x-scaibunker-preview-token';
export const PREVIEW_COOKIE = 'scaibunker_preview';
/** E2B's header for a sandbox's `trafficAccessToken` on its port hosts (PreviewGateway). */
export const E2B_TRAFFIC_TOKEN_HEADER = 'e2b-traffic-access-token';

const EMPTY = Buffer.alloc(0);
const CRLF = Buffer.from('\r\n');

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
  // Node's server answers the caller's `Expect: 100-continue` itself.
  'expect',
  'host',
  'authorization',
  PREVIEW_TOKEN_HEADER,
  E2B_TRAFFIC_TOKEN_HEADER,
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

/** An HTTP/1.1 request head, as written to a tunnel. */
function requestHead(method: string, path: string, headers: OutgoingHttpHeaders): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${String(v)}\r\n`;
  }
  return `${head}\r\n`;
}

/**
 * The answer headers the caller sees: the service's minus hop-by-hop ones (and a
 * Content-Length that does not frame the body), plus `extra`.
 */
function answerHeaders(head: ResponseHead, framing: BodyFraming, extra: OutgoingHttpHeaders | undefined): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const named = new Set(
    head.headers
      .filter(([n]) => n === 'connection')
      .flatMap(([, v]) => v.split(','))
      .map((t) => t.trim().toLowerCase()),
  );
  for (const [name, value] of head.headers) {
    if (DROPPED_RESPONSE.has(name) || named.has(name)) continue;
    if (name === 'content-length' && (framing.kind === 'chunked' || framing.kind === 'close')) continue;
    const prev = headers[name];
    headers[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  }
  return Object.assign(headers, extra ?? {});
}

/**
 * Relays one HTTP request; `onDone` runs once, when the answer has ended or the exchange failed.
 *
 * The tunnel carries exactly this one exchange (`Connection: close`). The request head is
 * written by hand and the body streamed after it (re-chunked when the caller sent it chunked).
 * Of the service's answer only the head is parsed (responseHead.ts); the body bytes go to the
 * caller as they arrive, as views into the tunnel's buffers: the length-delimited and
 * close-delimited ones untouched, a chunked one with its framing dropped (ChunkedBody). The
 * caller's answer is framed by Node's server, so the caller's connection stays reusable. A
 * tunnel's chunk is handed back (returnChunk: its memory may be lent) once the write of its
 * last bytes to the caller is done.
 */
export function relayHttp(o: RelayOptions, res: ServerResponse, onDone: (s: RelayStats) => void): void {
  const { req, tunnel } = o;
  const method = req.method ?? 'GET';
  const started = Date.now();
  const stats: RelayStats = { status: 0, bytesIn: 0, bytesOut: 0, durationMs: 0 };
  let done = false;
  /** The answer is complete (or abandoned): nothing more from the tunnel is relayed. */
  let over = false;
  const finish = (error?: string) => {
    if (done) return;
    done = true;
    over = true;
    idle.stop();
    tunnel.destroy();
    stats.durationMs = Date.now() - started;
    if (error) stats.error = error;
    onDone(stats);
  };
  const fail = (err: ApiError) => {
    over = true;
    if (!res.headersSent) stats.status = err.status;
    answerError(res, err);
    finish(err.code);
  };
  const broken = (why: string) =>
    new ApiError('PORT_NOT_LISTENING', `the service on port ${o.port} closed the connection without a complete answer`, { cause: why });
  const idle = idleTimer(o.idleMs, () =>
    fail(new ApiError('PORT_TIMEOUT', `the service on port ${o.port} sent nothing for ${o.idleMs} ms`)),
  );

  // The request: head, then the body as Node's server decoded it, framed again for the service.
  const chunkedIn = req.headers['transfer-encoding'] !== undefined;
  const headers = forwardHeaders(req, o.port, o.prefix, false);
  headers.connection = 'close';
  if (chunkedIn) headers['transfer-encoding'] = 'chunked';
  tunnel.write(requestHead(method, o.path, headers));
  req.on('data', (chunk: Buffer) => {
    if (over) return;
    stats.bytesIn += chunk.length;
    idle.touch();
    const framed = chunkedIn ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, CRLF]) : chunk;
    if (!tunnel.write(framed)) {
      req.pause();
      tunnel.once('drain', () => req.resume());
    }
  });
  req.on('end', () => {
    if (chunkedIn && !over) tunnel.write('0\r\n\r\n');
  });

  // The answer.
  let pending: Buffer = EMPTY;
  let framing: BodyFraming | undefined;
  let left = 0;
  const chunked = new ChunkedBody();
  const complete = () => {
    over = true;
    res.end();
  };
  /** `body` (the tunnel's `chunk`, or the part of it after the head) to the caller. */
  const forward = (chunk: Buffer, body: Buffer) => {
    let pieces: Buffer[];
    if (framing?.kind === 'chunked') {
      try {
        pieces = chunked.push(body);
      } catch (err) {
        res.destroy();
        finish(`bad_framing: ${(err as Error).message}`);
        return;
      }
    } else if (framing?.kind === 'length') {
      pieces = [body.length > left ? body.subarray(0, left) : body];
      left -= (pieces[0] as Buffer).length;
    } else pieces = [body];
    let full = false;
    let last = -1;
    for (let i = 0; i < pieces.length; i++) if ((pieces[i] as Buffer).length > 0) last = i;
    // Writes to one socket complete in order: once the last is done, so are the others.
    if (last < 0) returnChunk(chunk);
    for (let i = 0; i <= last; i++) {
      const p = pieces[i] as Buffer;
      if (p.length === 0) continue;
      stats.bytesOut += p.length;
      if (!(i === last ? res.write(p, () => returnChunk(chunk)) : res.write(p))) full = true;
    }
    if ((framing?.kind === 'length' && left === 0) || chunked.done) return complete();
    if (full) {
      tunnel.pause();
      res.once('drain', () => tunnel.resume());
    }
  };
  const onHead = (): void => {
    let head: ResponseHead | undefined;
    try {
      head = parseResponseHead(pending);
      // Interim answers (100 Continue, 103 Early Hints) are dropped: Node's server answered the
      // caller's Expect itself.
      while (head && head.status < 200 && head.status !== 101) {
        pending = pending.subarray(head.length);
        head = parseResponseHead(pending);
      }
      if (!head) return;
      if (head.status === 101) throw new MalformedHead('101 to a request that asked for no upgrade');
      framing = bodyFraming(head, method);
      stats.status = head.status;
      const headers = answerHeaders(head, framing, o.responseHeaders);
      if (head.reason) res.writeHead(head.status, head.reason, headers);
      else res.writeHead(head.status, headers);
    } catch (err) {
      fail(broken((err as Error).message));
      return;
    }
    const chunk = pending;
    const body = chunk.subarray(head.length);
    pending = EMPTY;
    if (framing.kind === 'length') left = framing.bytes;
    if (framing.kind === 'none' || (framing.kind === 'length' && left === 0)) complete();
    else if (body.length > 0) forward(chunk, body);
    // Event streams and long polls: the head goes out now, not with the first body bytes.
    else res.flushHeaders();
  };
  tunnel.on('data', (chunk: Buffer) => {
    if (over) return;
    idle.touch();
    if (framing) return forward(chunk, chunk);
    if (pending.length === 0) pending = chunk;
    else {
      const before = pending;
      pending = Buffer.concat([before, chunk]);
      returnChunk(before); // copied together: neither is referred to any more
      returnChunk(chunk);
    }
    onHead();
  });
  tunnel.on('end', () => {
    if (over) return;
    if (!framing) fail(broken('end of stream'));
    else if (framing.kind === 'close') complete();
    else {
      // Cut short: the caller must not take a truncated body for a whole one.
      res.destroy();
      finish('truncated');
    }
  });
  tunnel.on('error', (err) => {
    if (over) return;
    if (!framing) fail(broken(err.message));
    else {
      res.destroy();
      finish('tunnel_error');
    }
  });
  res.on('close', () => finish(res.writableFinished ? undefined : 'caller_closed'));
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
  tunnel.write(requestHead(req.method ?? 'GET', o.path, forwardHeaders(req, o.port, o.prefix, true)));
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
  pipeLent(tunnel, socket); // the tunnel's chunks go back once written
  socket.pipe(tunnel);
  tunnel.on('error', () => finish('tunnel_error'));
  socket.on('error', () => finish('caller_error'));
  tunnel.on('close', () => {
    // The service's side is done after its end: what the caller has not taken yet goes out first
    // (the pipe ended the caller's socket behind it), and only then does the exchange end.
    if (tunnel.readableEnded && !socket.destroyed && !socket.writableFinished) socket.once('finish', () => finish());
    else finish();
  });
  socket.on('close', () => finish());
}
