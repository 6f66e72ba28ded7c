/**
 * The path proxy and previews through the real HTTP server, with the fake worker's tunnels
 * connecting to a local HTTP server standing in for a service inside the bunker.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingMessage, type Server } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { servedController } from '../helpers/fakeWorker.js';

const API = '/v1/modules/scaibunker';
const DOMAIN = 'preview.test';
const system = systemPrincipal('test');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request to the controller; the answer read whole. */
function call(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, base), { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A request whose answer is handed over once its head arrives (streams). */
function open(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
): { req: http.ClientRequest; res: Promise<IncomingMessage> } {
  const req = http.request(new URL(path, base), { method, headers });
  const res = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  return { req, res };
}

function nextChunk(res: IncomingMessage): Promise<string> {
  return once(res, 'data').then(([c]) => String(c));
}

describe('ports: path proxy and previews', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let upstream: Server;
  let upstreamPort: number;
  const upstreamSockets = new Set<Socket>();
  /** Resolves the `/sse` handler's wait for the test to have seen event 1. */
  let sseGo: () => void = () => {};
  let bunkerId: string;
  let stopped: string;
  let auth: Record<string, string>;
  let otherAuth: Record<string, string>;
  let publicAuth: Record<string, string>;
  let aliceTenant: string;
  const proxied = (port: number | string, rest = '/') => `${API}/bunkers/${bunkerId}/ports/${port}${rest}`;

  before(async () => {
    upstream = http.createServer((req, res) => {
      const url = req.url ?? '/';
      if (url.startsWith('/echo')) {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          res.writeHead(200, {
            'content-type': 'application/json',
            'x-upstream': 'yes',
            connection: 'keep-alive',
            'keep-alive': 'timeout=5',
          });
          res.end(JSON.stringify({ method: req.method, url, headers: req.headers, body }));
        });
      } else if (url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: one\n\n');
        new Promise<void>((r) => (sseGo = r)).then(() => res.end('data: two\n\n'));
      } else if (url === '/upload') {
        // Answers each chunk as it comes: the test sends the next only after this echo.
        res.writeHead(200, { 'content-type': 'text/plain' });
        req.on('data', (c) => res.write(`got:${c}`));
        req.on('end', () => res.end('|end'));
      } else if (url === '/hold') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': held\n\n');
      } else if (url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.end(Buffer.alloc(300_000, 97));
      } else if (url === '/sink') {
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
      } else if (url === '/silent') {
        // Never answers: the proxy's idle timeout must.
      } else {
        res.writeHead(404).end('nope');
      }
    });
    upstream.on('connection', (s) => {
      upstreamSockets.add(s);
      s.once('close', () => upstreamSockets.delete(s));
    });
    upstream.on('upgrade', (_req, socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.pipe(socket);
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    upstreamPort = (upstream.address() as AddressInfo).port;

    served = await servedController({
      config: {
        monitorIntervalMs: 3_600_000,
        sweepIntervalMs: 3_600_000,
        usageIntervalMs: 3_600_000,
        previewDomain: DOMAIN,
        maxTunnelsPerBunker: 2,
        tunnelIdleMs: 1000,
      },
    });
    served.worker.ports.set(8080, upstreamPort);
    const c = served.controller;
    const key = async (name: string, permissions: Permission[]) => {
      const t = await c.services.tenants.createTenant(system, name);
      return { tenantId: t.id, key: (await c.services.tenants.createApiKey(system, t.id, `${name}-key`, permissions)).key };
    };
    const a = await key('a', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read', 'scaibunker:audit:read']);
    aliceTenant = a.tenantId;
    auth = { authorization: `Bearer ${a.key}` };
    publicAuth = {
      authorization: `Bearer ${(await c.services.tenants.createApiKey(system, a.tenantId, 'pub', ['scaibunker:execute', 'scaibunker:preview:public'])).key}`,
    };
    otherAuth = { authorization: `Bearer ${(await key('b', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read'])).key}` };
    const create = async () => {
      const res = await call(served.url, 'POST', `${API}/bunkers`, { ...auth, 'content-type': 'application/json' }, '{"image":"minimal"}');
      assert.equal(res.status, 201, res.body);
      return JSON.parse(res.body).id as string;
    };
    bunkerId = await create();
    stopped = await create();
    assert.equal((await call(served.url, 'DELETE', `${API}/bunkers/${stopped}`, auth)).status, 200);
  });
  after(async () => {
    sseGo();
    for (const s of upstreamSockets) s.destroy();
    upstream?.close();
    await served?.close();
  });

  test('GET relays path, query and headers: hop-by-hop and credentials stay out, X-Forwarded-* are set', async () => {
    const res = await call(served.url, 'GET', proxied(8080, '/echo/a%20b?x=1&y=2'), {
      ...auth,
      connection: 'keep-alive, x-drop-me',
      'x-drop-me': 'hop',
      'keep-alive': 'timeout=5',
      te: 'trailers',
      'proxy-authorization': 'Basic xyz',
      'x-kept': 'kept',
      'x-forwarded-for': '6.6.6.6',
      cookie: 'app=1; scaibunker_preview=secret; other=2',
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['x-upstream'], 'yes');
    assert.notEqual(res.headers['keep-alive'], 'timeout=5', "the service's hop-by-hop answer headers are dropped");
    assert.match(String(res.headers['content-security-policy']), /^sandbox /);
    const seen = JSON.parse(res.body);
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/echo/a%20b?x=1&y=2');
    const h = seen.headers as Record<string, string>;
    for (const name of ['authorization', 'x-drop-me', 'keep-alive', 'te', 'proxy-authorization', 'x-scaibunker-preview-token'])
      assert.equal(h[name], undefined, `${name} must not reach the bunker`);
    assert.equal(h['x-kept'], 'kept');
    assert.equal(h.cookie, 'app=1; other=2');
    assert.equal(h.host, 'localhost:8080');
    assert.equal(h['x-forwarded-for'], '127.0.0.1');
    assert.equal(h['x-forwarded-proto'], 'http');
    assert.equal(h['x-forwarded-host'], new URL(served.url).host);
    assert.equal(h['x-forwarded-prefix'], `${API}/bunkers/${bunkerId}/ports/8080`);
    assert.ok(!JSON.stringify(h).includes(auth.authorization?.slice(7) as string), 'the API key appears nowhere');
  });

  test('a POST body streams both ways, chunk by chunk', async () => {
    const { req, res } = open(served.url, 'POST', proxied(8080, '/upload'), { ...auth, 'content-type': 'text/plain' });
    req.flushHeaders();
    req.write('first');
    const answer = await res;
    assert.equal(answer.statusCode, 200);
    answer.setEncoding('utf8');
    assert.equal(await nextChunk(answer), 'got:first');
    req.write('second');
    assert.equal(await nextChunk(answer), 'got:second');
    req.end();
    let rest = '';
    for await (const c of answer) rest += c;
    assert.equal(rest, '|end');
  });

  test("the service's answer is framed by its head: length, chunked, to the close; interim answers dropped; junk 502", async () => {
    // A service written by hand, so every framing is exactly what the test says; it never
    // closes a connection unless the framing needs it (the proxy must find the end itself).
    const sockets = new Set<Socket>();
    const answers: Record<string, string[]> = {
      '/cl': ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Mine: 1\r\n\r\nhello', 'IGNORED'],
      '/chunked': [
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-t\r\n\r\n3;ext=1\r\nabc\r\n',
        '4\r\ndefg\r\n0\r\nx-t: y\r\n\r\n',
      ],
      '/close': ['HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ', 'close', ''],
      '/continue': ['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'],
      '/nocontent': ['HTTP/1.1 204 No Content\r\nX-Mine: 2\r\n\r\n'],
      '/garbage': ['SSH-2.0-OpenSSH_9.2\r\n\r\n'],
      '/truncated': ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..', ''],
    };
    const requests: string[] = [];
    const raw = net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      let head = '';
      s.on('data', async (d) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        requests.push(head);
        const [method, path] = head.split(' ') as [string, string];
        for (const piece of answers[path] ?? ['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']) {
          if (piece === '') {
            s.end();
            return;
          }
          // HEAD: the head only, as a service would.
          s.write(method === 'HEAD' ? piece.slice(0, piece.indexOf('\r\n\r\n') + 4) : piece);
          await new Promise((r) => setImmediate(r));
        }
      });
    });
    raw.listen(0, '127.0.0.1');
    await once(raw, 'listening');
    served.worker.ports.set(8585, (raw.address() as AddressInfo).port);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const get = (path: string, method = 'GET') =>
        new Promise<Answer & { reused: boolean }>((resolve, reject) => {
          const req = http.request(new URL(proxied(8585, path), served.url), { method, headers: auth, agent: keepAlive }, (res) => {
            let body = '';
            res.setEncoding('latin1');
            res.on('data', (c) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reused: req.reusedSocket }));
            res.on('error', reject);
          });
          req.on('error', reject);
          req.end();
        });
      const cl = await get('/cl');
      assert.deepEqual([cl.status, cl.body, cl.headers['content-length'], cl.headers['x-mine']], [200, 'hello', '5', '1']);
      const chunked = await get('/chunked');
      assert.deepEqual([chunked.status, chunked.body, chunked.headers['x-t']], [200, 'abcdefg', undefined]);
      assert.ok(chunked.reused, "the caller's connection is kept between proxied requests");
      const close = await get('/close');
      assert.deepEqual([close.status, close.body, close.headers['content-type']], [200, 'until close', 'text/plain']);
      const cont = await get('/continue');
      assert.deepEqual([cont.status, cont.body], [201, 'ok']);
      const none = await get('/nocontent');
      assert.deepEqual([none.status, none.body, none.headers['x-mine']], [204, '', '2']);
      const head = await get('/cl', 'HEAD');
      assert.deepEqual([head.status, head.body, head.headers['content-length']], [200, '', '5']);
      const garbage = await get('/garbage');
      assert.equal(garbage.status, 502, garbage.body);
      assert.equal(JSON.parse(garbage.body).error.code, 'PORT_NOT_LISTENING');
      await assert.rejects(get('/truncated'), 'a body cut short is an error for the caller, not a shorter body');
      // What the service was asked: one exchange per connection, no credentials.
      const first = requests[0] as string;
      assert.match(first, /^GET \/cl HTTP\/1\.1\r\n/);
      assert.match(first, /\r\nconnection: close\r\n/);
      assert.doesNotMatch(first, /authorization/i);
    } finally {
      keepAlive.destroy();
      for (const s of sockets) s.destroy();
      raw.close();
    }
  });

  test('a chunked request body reaches the service whole', async () => {
    const { req, res } = open(served.url, 'POST', proxied(8080, '/echo/chunks'), { ...auth, 'transfer-encoding': 'chunked' });
    req.write('one,');
    req.write('two');
    req.end();
    const answer = await res;
    let text = '';
    for await (const c of answer) text += c;
    const seen = JSON.parse(text);
    assert.equal(seen.body, 'one,two');
    assert.equal(seen.headers['transfer-encoding'], 'chunked');
  });

  test('Server-Sent Events pass through as they are written', async () => {
    const { req, res } = open(served.url, 'GET', proxied(8080, '/sse'), auth);
    req.end();
    const answer = await res;
    assert.equal(answer.headers['content-type'], 'text/event-stream');
    answer.setEncoding('utf8');
    assert.equal(await nextChunk(answer), 'data: one\n\n');
    sseGo();
    let rest = '';
    for await (const c of answer) rest += c;
    assert.equal(rest, 'data: two\n\n');
  });

  test('an upgrade (WebSocket) is relayed byte for byte', async () => {
    const req = http.request(new URL(proxied(8080, '/ws'), served.url), {
      headers: { ...auth, connection: 'Upgrade', upgrade: 'echo' },
    });
    req.end();
    const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, Socket];
    assert.equal(res.statusCode, 101);
    socket.write('ping');
    assert.equal(String((await once(socket, 'data'))[0]), 'ping');
    socket.destroy();
  });

  test('nothing listening is 502 PORT_NOT_LISTENING; a silent service 504 PORT_TIMEOUT', async () => {
    const closed = http.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    served.worker.ports.set(9090, (closed.address() as AddressInfo).port);
    closed.close();
    await once(closed, 'close');
    for (const port of [9090, 9191]) {
      const res = await call(served.url, 'GET', proxied(port, '/'), auth);
      assert.equal(res.status, 502, res.body);
      assert.equal(JSON.parse(res.body).error.code, 'PORT_NOT_LISTENING');
    }
    const silent = await call(served.url, 'GET', proxied(8080, '/silent'), auth);
    assert.equal(silent.status, 504, silent.body);
    assert.equal(JSON.parse(silent.body).error.code, 'PORT_TIMEOUT');
  });

  test('bad ports are 400, another tenant 404, a stopped bunker 409; the bare port redirects', async () => {
    for (const port of ['0', '65536', 'abc', '080', '-1']) {
      const res = await call(served.url, 'GET', proxied(port, '/echo'), auth);
      assert.equal(res.status, 400, `${port}: ${res.body}`);
      assert.equal(JSON.parse(res.body).error.code, 'VALIDATION_FAILED');
    }
    const other = await call(served.url, 'GET', proxied(8080, '/echo'), otherAuth);
    assert.equal(other.status, 404);
    assert.equal(JSON.parse(other.body).error.code, 'BUNKER_NOT_FOUND');
    const stoppedRes = await call(served.url, 'GET', `${API}/bunkers/${stopped}/ports/8080/echo`, auth);
    assert.equal(stoppedRes.status, 409);
    assert.equal(JSON.parse(stoppedRes.body).error.code, 'BUNKER_NOT_RUNNING');
    const bare = await call(served.url, 'GET', `${proxied(8080, '')}?q=1`, auth);
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.location, `${proxied(8080, '/')}?q=1`);
    const anon = await call(served.url, 'GET', proxied(8080, '/echo'));
    assert.equal(anon.status, 401);
  });

  test('past the per-bunker cap a new connection is 429 TUNNEL_LIMIT until one closes', async () => {
    const held = [open(served.url, 'GET', proxied(8080, '/hold'), auth), open(served.url, 'GET', proxied(8080, '/hold'), auth)];
    for (const h of held) h.req.end();
    const answers = await Promise.all(held.map((h) => h.res));
    for (const a of answers) a.on('error', () => {});
    const refused = await call(served.url, 'GET', proxied(8080, '/echo'), auth);
    assert.equal(refused.status, 429, refused.body);
    assert.equal(JSON.parse(refused.body).error.code, 'TUNNEL_LIMIT');
    assert.equal(refused.headers['retry-after'], '1');
    const gone = new Promise((r) => answers[0]?.once('close', r));
    held[0]?.req.destroy();
    await gone;
    // The slot comes back when the controller's tunnel closes; the service sees that close.
    while (upstreamSockets.size > 1) await once([...upstreamSockets][0] as Socket, 'close');
    try {
      const again = await call(served.url, 'GET', proxied(8080, '/echo'), auth);
      assert.equal(again.status, 200, again.body);
    } finally {
      held[1]?.req.destroy();
      await new Promise((r) => (answers[1]?.closed ? r(null) : answers[1]?.once('close', r)));
    }
  });

  test("a bunker's bandwidth_mbit holds its tunnels back both ways, and the audit trail says for how long", async () => {
    const res = await call(
      served.url,
      'POST',
      `${API}/bunkers`,
      { ...auth, 'content-type': 'application/json' },
      '{"image":"minimal","bandwidth_mbit":1}',
    );
    assert.equal(res.status, 201, res.body);
    const capped = JSON.parse(res.body).id as string;
    try {
      // 1 Mbit/s is 125 kB/s with a 64 KiB burst: 300 kB cannot pass without being held.
      const down = await call(served.url, 'GET', `${API}/bunkers/${capped}/ports/8080/big`, auth);
      assert.equal(down.status, 200);
      assert.equal(down.body.length, 300_000);
      const up = await call(served.url, 'POST', `${API}/bunkers/${capped}/ports/8080/sink`, auth, 'x'.repeat(300_000));
      assert.equal(up.body, '300000');
      // A raw stream that the service ends: all of it arrives, held or not, then the end.
      const sender = net.createServer((sock) => sock.end(Buffer.alloc(200_000, 98)));
      sender.listen(0, '127.0.0.1');
      await once(sender, 'listening');
      served.worker.ports.set(7100, (sender.address() as AddressInfo).port);
      try {
        const fwd = http.request(new URL(`${API}/bunkers/${capped}/port-forward/7100`, served.url), {
          headers: { ...auth, connection: 'Upgrade', upgrade: 'scaibunker-tunnel' },
        });
        fwd.end();
        const [, socket, head] = (await once(fwd, 'upgrade')) as [IncomingMessage, Socket, Buffer];
        let got = head.length; // what came with the 101
        socket.on('data', (c: Buffer) => (got += c.length));
        await once(socket, 'end');
        socket.destroy();
        assert.equal(got, 200_000);
      } finally {
        sender.close();
      }
      const free = await call(served.url, 'GET', proxied(8080, '/big'), auth);
      assert.equal(free.body.length, 300_000);
      await served.controller.auditTrail.flush();
      const events = async (id: string) =>
        JSON.parse((await call(served.url, 'GET', `${API}/audit-events?action=port.request&bunker_id=${id}`, auth)).body).items as Array<{
          details: Record<string, unknown>;
        }>;
      const held = (await events(capped)).map((e) => [e.details.path, Number(e.details.bandwidth_held_ms) > 0]);
      assert.deepEqual(held.sort(), [
        ['/big', true],
        ['/sink', true],
      ]);
      const uncapped = (await events(bunkerId)).find((e) => e.details.path === '/big');
      assert.ok(uncapped);
      assert.equal(uncapped.details.bandwidth_held_ms, undefined, 'no cap, nothing held');
    } finally {
      await call(served.url, 'DELETE', `${API}/bunkers/${capped}`, auth);
    }
  });

  test('each proxied request is on the audit trail with status and bytes', async () => {
    const res = await call(served.url, 'POST', proxied(8080, '/echo/audited?secret=1'), { ...auth, 'content-type': 'text/plain' }, 'hello');
    assert.equal(res.status, 200);
    await served.controller.auditTrail.flush();
    const page = await call(served.url, 'GET', `${API}/audit-events?action=port.request&bunker_id=${bunkerId}`, auth);
    const events = JSON.parse(page.body).items as Array<{ actor: string; target_id: string; details: Record<string, unknown> }>;
    const e = events.find((x) => x.details.path === '/echo/audited');
    assert.ok(e, page.body);
    assert.equal(e.target_id, '8080');
    assert.equal(e.details.method, 'POST');
    assert.equal(e.details.status, 200);
    assert.equal(e.details.bytes_in, 5);
    assert.equal(e.details.bytes_out, Buffer.byteLength(res.body));
    assert.equal(typeof e.details.duration_ms, 'number');
  });

  test('port-forward: a scaibunker-tunnel upgrade is a raw TCP stream; refusals are plain HTTP errors', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    served.worker.ports.set(7000, (echo.address() as AddressInfo).port);
    try {
      const url = new URL(`${API}/bunkers/${bunkerId}/port-forward/7000`, served.url);
      const req = http.request(url, { headers: { ...auth, connection: 'Upgrade', upgrade: 'scaibunker-tunnel' } });
      req.end();
      const [res, socket] = (await once(req, 'upgrade')) as [IncomingMessage, Socket];
      assert.equal(res.statusCode, 101);
      assert.equal(res.headers.upgrade, 'scaibunker-tunnel');
      socket.write('raw bytes\x00\xff');
      assert.equal(String((await once(socket, 'data'))[0]), 'raw bytes\x00\xff');
      const closed = once(socket, 'close');
      socket.destroy();
      await closed;

      const plain = await call(served.url, 'GET', url.pathname, auth);
      assert.equal(plain.status, 400);
      assert.match(JSON.parse(plain.body).error.message, /scaibunker-tunnel/);
      const refused = http.request(new URL(`${API}/bunkers/${bunkerId}/port-forward/9191`, served.url), {
        headers: { ...auth, connection: 'Upgrade', upgrade: 'scaibunker-tunnel' },
      });
      refused.end();
      const [answer] = (await once(refused, 'response')) as [IncomingMessage];
      assert.equal(answer.statusCode, 502);
      let text = '';
      for await (const c of answer) text += c;
      assert.equal(JSON.parse(text).error.code, 'PORT_NOT_LISTENING');
    } finally {
      echo.close();
    }
    await served.controller.auditTrail.flush();
    const page = await call(served.url, 'GET', `${API}/audit-events?action=port.forward&bunker_id=${bunkerId}`, auth);
    const [event] = JSON.parse(page.body).items;
    assert.equal(event.details.port, 7000);
    assert.equal(event.details.bytes_in, Buffer.byteLength('raw bytes\x00\xff'));
    assert.equal(event.details.bytes_out, Buffer.byteLength('raw bytes\x00\xff'));
  });

  describe('previews', () => {
    const host = (port = 8080, id = bunkerId) => `${port}-${id.replace('_', '-')}.${DOMAIN}`;
    const createPreview = (body: object, who = auth, id = bunkerId) =>
      call(served.url, 'POST', `${API}/bunkers/${id}/previews`, { ...who, 'content-type': 'application/json' }, JSON.stringify(body));

    test('a token in the header reaches the port; without one, or a wrong one, 401', async () => {
      const created = await createPreview({ port: 8080, expires_in_s: 600 });
      assert.equal(created.status, 201, created.body);
      const p = JSON.parse(created.body);
      assert.equal(p.url, `https://${host()}/`);
      assert.match(p.token, /^sbpv_/);
      assert.equal(p.public, false);
      const ok = await call(served.url, 'GET', '/echo/x', { host: host(), 'x-scaibunker-preview-token': p.token });
      assert.equal(ok.status, 200, ok.body);
      const seen = JSON.parse(ok.body);
      assert.equal(seen.url, '/echo/x');
      assert.equal(seen.headers['x-scaibunker-preview-token'], undefined);
      assert.equal(ok.headers['content-security-policy'], undefined, 'a preview host is its own origin');
      for (const headers of [{ host: host() }, { host: host(), 'x-scaibunker-preview-token': 'sbpv_wrong' }] as Record<string, string>[]) {
        const res = await call(served.url, 'GET', '/echo/x', headers);
        assert.equal(res.status, 401);
        assert.equal(JSON.parse(res.body).error.code, 'UNAUTHENTICATED');
      }
      // The token is for port 8080 of this bunker only.
      for (const h of [host(8081), host(8080, stopped)]) {
        const res = await call(served.url, 'GET', '/echo/x', { host: h, 'x-scaibunker-preview-token': p.token });
        assert.equal(res.status, 401, h);
      }
      const junk = await call(served.url, 'GET', '/', { host: `nonsense.${DOMAIN}` });
      assert.equal(junk.status, 404);
    });

    test('a ?token= link sets a host cookie and redirects without the token; the cookie then works', async () => {
      const p = JSON.parse((await createPreview({ port: 8080 })).body);
      const link = await call(served.url, 'GET', `/echo/page?a=1&token=${p.token}`, { host: host() });
      assert.equal(link.status, 303, link.body);
      assert.equal(link.headers.location, '/echo/page?a=1');
      const cookie = String(link.headers['set-cookie']);
      assert.match(cookie, new RegExp(`^scaibunker_preview=${p.token}; Path=/; Max-Age=\\d+; HttpOnly; SameSite=Lax; Secure$`));
      assert.doesNotMatch(cookie, /Domain=/i);
      const res = await call(served.url, 'GET', '/echo/page?a=1', { host: host(), cookie: `scaibunker_preview=${p.token}; mine=1` });
      assert.equal(res.status, 200, res.body);
      assert.equal(JSON.parse(res.body).headers.cookie, 'mine=1', 'the preview cookie stays out of the bunker');
      const bad = await call(served.url, 'GET', '/?token=sbpv_nope', { host: host() });
      assert.equal(bad.status, 401);
    });

    test('revoked and expired tokens are 401 at once; listing shows them without tokens', async () => {
      const p = JSON.parse((await createPreview({ port: 8080 })).body);
      const withToken = { host: host(), 'x-scaibunker-preview-token': p.token };
      assert.equal((await call(served.url, 'GET', '/echo', withToken)).status, 200);
      assert.equal((await call(served.url, 'DELETE', `${API}/bunkers/${bunkerId}/previews/${p.id}`, auth)).status, 200);
      const revoked = await call(served.url, 'GET', '/echo', withToken);
      assert.equal(revoked.status, 401);
      assert.match(JSON.parse(revoked.body).error.message, /revoked/);
      const list = JSON.parse((await call(served.url, 'GET', `${API}/bunkers/${bunkerId}/previews`, auth)).body);
      const listed = list.items.find((x: { id: string }) => x.id === p.id);
      assert.ok(listed.revoked_at);
      assert.equal(listed.token, null);

      const q = JSON.parse((await createPreview({ port: 8080, expires_in_s: 60 })).body);
      await served.controller.store.db
        .updateTable('port_previews')
        .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
        .where('id', '=', q.id)
        .execute();
      const expired = await call(served.url, 'GET', '/echo', { host: host(), 'x-scaibunker-preview-token': q.token });
      assert.equal(expired.status, 401);
      assert.match(JSON.parse(expired.body).error.message, /expired/);
    });

    test('public previews need scaibunker:preview:public and then need no token', async () => {
      const denied = await createPreview({ port: 8080, public: true });
      assert.equal(denied.status, 403);
      const created = await createPreview({ port: 8080, public: true }, publicAuth);
      assert.equal(created.status, 201, created.body);
      const p = JSON.parse(created.body);
      assert.equal(p.token, null);
      assert.equal(p.public, true);
      assert.equal((await call(served.url, 'GET', '/echo', { host: host() })).status, 200);
      assert.equal((await call(served.url, 'DELETE', `${API}/bunkers/${bunkerId}/previews/${p.id}`, auth)).status, 200);
      assert.equal((await call(served.url, 'GET', '/echo', { host: host() })).status, 401);
    });

    test("E2B's getHost form reaches the port with the sandbox's traffic token, and with nothing else", async () => {
      const e2bHost = `8080-${bunkerId}.${DOMAIN}`;
      const c = served.controller;
      const keyOf = (h: Record<string, string>) => (h.authorization as string).slice('Bearer '.length);
      // For an API key the token carries the key's hash only: the principal minted with is not used.
      const principalOf = async (_h: Record<string, string>) => system;
      const token = c.e2b.tokens.mint(await principalOf(auth), bunkerId, keyOf(auth));
      const ok = await call(served.url, 'GET', '/echo/e2b', { host: e2bHost, 'e2b-traffic-access-token': token });
      assert.equal(ok.status, 200, ok.body);
      const seen = JSON.parse(ok.body);
      assert.equal(seen.url, '/echo/e2b');
      assert.equal(seen.headers['e2b-traffic-access-token'], undefined, 'the token stays out of the bunker');
      const none = await call(served.url, 'GET', '/echo/e2b', { host: e2bHost });
      assert.equal(none.status, 401);
      const forged = await call(served.url, 'GET', '/echo/e2b', { host: e2bHost, 'e2b-traffic-access-token': `${token}x` });
      assert.equal(forged.status, 401);
      const forOther = c.e2b.tokens.mint(await principalOf(auth), stopped, keyOf(auth));
      const wrong = await call(served.url, 'GET', '/echo/e2b', { host: e2bHost, 'e2b-traffic-access-token': forOther });
      assert.equal(wrong.status, 401, 'a token is for its own sandbox only');
      const otherTenant = c.e2b.tokens.mint(await principalOf(otherAuth), bunkerId, keyOf(otherAuth));
      const foreign = await call(served.url, 'GET', '/echo/e2b', { host: e2bHost, 'e2b-traffic-access-token': otherTenant });
      assert.equal(foreign.status, 404, "a token of another tenant's key finds no such bunker");
      const reader = {
        authorization: `Bearer ${(await c.services.tenants.createApiKey(system, aliceTenant, 'ro', ['scaibunker:read'])).key}`,
      };
      const readOnly = c.e2b.tokens.mint(await principalOf(reader), bunkerId, keyOf(reader));
      const denied = await call(served.url, 'GET', '/echo/e2b', { host: e2bHost, 'e2b-traffic-access-token': readOnly });
      assert.equal(denied.status, 403, denied.body);
    });

    test("bad bodies are 400; another tenant's bunker and previews are 404", async () => {
      for (const body of [
        {},
        { port: 0 },
        { port: 8080, expires_in_s: 59 },
        { port: 8080, expires_in_s: 7 * 86400 + 1 },
        { port: 8080, x: 1 },
      ]) {
        const res = await createPreview(body);
        assert.equal(res.status, 400, JSON.stringify(body));
      }
      const p = JSON.parse((await createPreview({ port: 8080 })).body);
      assert.equal((await createPreview({ port: 8080 }, otherAuth)).status, 404);
      assert.equal((await call(served.url, 'GET', `${API}/bunkers/${bunkerId}/previews`, otherAuth)).status, 404);
      assert.equal((await call(served.url, 'DELETE', `${API}/bunkers/${bunkerId}/previews/${p.id}`, otherAuth)).status, 404);
      const wrongBunker = await call(served.url, 'DELETE', `${API}/bunkers/${stopped}/previews/${p.id}`, auth);
      assert.equal(wrongBunker.status, 404);
      assert.equal(JSON.parse(wrongBunker.body).error.code, 'PREVIEW_NOT_FOUND');
    });
  });
});
