/**
 * Ports for real: `scaibunker serve` with a preview domain, an `isolated` bunker (no network
 * interface but loopback) running `python3 -m http.server`, reached through the path proxy and a
 * host-based preview — tunneled over the agent channel, with nothing listening on the worker or
 * in the bunker's namespace for the outside. A 100 MB download streams through; a closed port is
 * a prompt 502; preview tokens are checked; another tenant is not found; a WebSocket echo server
 * in the bunker round-trips; the unmodified e2b SDK's `getHost(port)` names a preview host that
 * its sandbox's traffic access token opens.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { Sandbox } from 'e2b';
import WebSocket from 'ws';
import { adminKeyOf, destroyLeftoverBunkers, eventually, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from './harness.js';

const API = '/v1/modules/scaibunker';
const DOMAIN = 'preview.test';

/**
 * A WebSocket echo server with python's standard library only (the image has no websockets
 * package): the RFC 6455 handshake, then every text or binary message sent back, close answered.
 */
const WS_ECHO = `
import base64, hashlib, socket, threading
GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
def recvn(c, n):
    b = b''
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x: raise EOFError
        b += x
    return b
def serve(c):
    head = b''
    while b'\\r\\n\\r\\n' not in head:
        x = c.recv(4096)
        if not x: return c.close()
        head += x
    keys = [l.split(b':', 1)[1].strip() for l in head.split(b'\\r\\n') if l.lower().startswith(b'sec-websocket-key:')]
    if not keys:
        c.sendall(b'HTTP/1.1 400 Bad Request\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n')
        return c.close()
    accept = base64.b64encode(hashlib.sha1(keys[0] + GUID).digest())
    c.sendall(b'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + b'\\r\\n\\r\\n')
    try:
        while True:
            b0, b1 = recvn(c, 2)
            op, n = b0 & 15, b1 & 127
            if n == 126: n = int.from_bytes(recvn(c, 2), 'big')
            elif n == 127: n = int.from_bytes(recvn(c, 8), 'big')
            mask = recvn(c, 4) if b1 & 128 else b'\\0\\0\\0\\0'
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(recvn(c, n)))
            if op == 8:
                c.sendall(bytes([0x88, n]) + data)  # the close frame echoed: its status code too
                break
            if op in (1, 2):
                size = bytes([n]) if n < 126 else bytes([126]) + n.to_bytes(2, 'big') if n < 65536 else bytes([127]) + n.to_bytes(8, 'big')
                c.sendall(bytes([0x80 | op]) + size + data)
    except EOFError:
        pass
    c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8765))
s.listen()
while True:
    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()
`;

describe('ports: path proxy and previews through the agent tunnel', () => {
  const data = tempDataDir();
  let server: ServerProcess;
  let aliceKey = '';
  let bobKey = '';
  let bunker: Bunker;

  before(async () => {
    server = await ServerProcess.start([
      'serve',
      '--port',
      String(await freePort()),
      '--data-dir',
      data.dir,
      '--image-dir',
      IMAGE_DIR,
      '--preview-domain',
      DOMAIN,
      '--preview-scheme',
      'http',
    ]);
    const admin = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
    const keyFor = async (name: string) => {
      const t = await admin.admin.createTenant(name);
      return (await admin.admin.createApiKey(t.id, `${name}-key`, ['scaibunker:admin:tenant'])).key;
    };
    aliceKey = await keyFor('alice');
    bobKey = await keyFor('bob');
    const alice = new ScaiBunkerClient({ baseUrl: server.url, apiKey: aliceKey });
    bunker = await Bunker.create({ image: 'python', network_profile: 'isolated', memory_mb: 256, disk_mb: 512 }, alice);
    await bunker.exec([
      'sh',
      '-c',
      'mkdir -p /srv && echo hello-from-the-bunker > /srv/hello.txt && head -c 100000000 /dev/zero > /srv/big.bin',
    ]);
    await bunker.processes.start(['python3', '-m', 'http.server', '8000', '--bind', '127.0.0.1', '--directory', '/srv'], { tag: 'web' });
    // Nothing announces that the server listens: poll the proxy until it answers.
    await eventually('the web server answers through the proxy', async () =>
      (await get(`/bunkers/${bunker.id}/ports/8000/hello.txt`)).status === 200 ? true : undefined,
    );
  });

  after(async () => {
    await bunker?.terminate().catch(() => undefined);
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(`${data.dir}/worker`);
    data.remove();
    assert.deepEqual(orphans, []);
  });

  async function get(path: string, opts: { key?: string | null; headers?: Record<string, string> } = {}) {
    const key = opts.key === undefined ? aliceKey : opts.key;
    const res = await fetch(`${server.url}${API}${path}`, {
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...opts.headers },
      redirect: 'manual',
    });
    return { status: res.status, text: await res.text(), headers: res.headers };
  }

  /** A request with a chosen Host header (fetch does not allow setting it). */
  function viaHost(
    host: string,
    path: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
    const url = new URL(server.url);
    return new Promise((resolve, reject) => {
      const req = request({ host: url.hostname, port: url.port, path, headers: { host, ...headers }, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('the path proxy reaches a server on 127.0.0.1 inside an isolated bunker', async () => {
    const r = await get(`/bunkers/${bunker.id}/ports/8000/hello.txt`);
    assert.equal(r.status, 200);
    assert.equal(r.text, 'hello-from-the-bunker\n');
    const listing = await get(`/bunkers/${bunker.id}/ports/8000/`);
    assert.match(listing.text, /hello\.txt/);
    // The bunker really has no way out: only loopback.
    const ifaces = await bunker.exec(['sh', '-c', 'ls /sys/class/net']);
    assert.deepEqual(ifaces.stdout.trim().split(/\s+/), ['lo']);
  });

  test('a 100 MB download streams through the tunnel whole', async () => {
    const res = await fetch(`${server.url}${API}/bunkers/${bunker.id}/ports/8000/big.bin`, {
      headers: { authorization: `Bearer ${aliceKey}` },
    });
    assert.equal(res.status, 200);
    let bytes = 0;
    let nonZero = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      for (const b of chunk) if (b !== 0) nonZero++;
    }
    assert.equal(bytes, 100_000_000);
    assert.equal(nonZero, 0);
  });

  test('a closed port is a prompt 502 PORT_NOT_LISTENING; a bad port 400; another tenant 404', async () => {
    const closed = await get(`/bunkers/${bunker.id}/ports/8001/`);
    assert.equal(closed.status, 502);
    assert.equal(JSON.parse(closed.text).error.code, 'PORT_NOT_LISTENING');
    assert.equal((await get(`/bunkers/${bunker.id}/ports/70000/`)).status, 400);
    const other = await get(`/bunkers/${bunker.id}/ports/8000/hello.txt`, { key: bobKey });
    assert.equal(other.status, 404);
    assert.equal((await get(`/bunkers/${bunker.id}/ports/8000/hello.txt`, { key: null })).status, 401);
  });

  test('a host-based preview answers with its token, not without, and not once revoked', async () => {
    const preview = await bunker.ports.preview(8000, { expiresInS: 600 });
    assert.ok(preview.token);
    const host = `8000-${bunker.id.replace('_', '-')}.${DOMAIN}`;
    assert.ok(preview.url.includes(host), preview.url);
    const ok = await viaHost(host, '/hello.txt', { 'x-scaibunker-preview-token': preview.token as string });
    assert.equal(ok.status, 200);
    assert.equal(ok.text, 'hello-from-the-bunker\n');
    assert.equal((await viaHost(host, '/hello.txt')).status, 401);
    assert.equal((await viaHost(host, '/hello.txt', { 'x-scaibunker-preview-token': 'nope' })).status, 401);
    await bunker.ports.revoke(preview.id);
    assert.equal((await viaHost(host, '/hello.txt', { 'x-scaibunker-preview-token': preview.token as string })).status, 401);
  });

  test('a WebSocket echo server in the bunker round-trips text and binary messages through the path proxy', async () => {
    await bunker.files.write('/srv/ws_echo.py', WS_ECHO);
    await bunker.processes.start(['python3', '/srv/ws_echo.py'], { tag: 'ws' });
    const url = `${server.url.replace(/^http/, 'ws')}${API}/bunkers/${bunker.id}/ports/8765/echo`;
    const connect = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(url, { headers: { authorization: `Bearer ${aliceKey}` } });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    // Nothing announces that the server listens: try until the upgrade goes through.
    const ws = await eventually('the WebSocket server accepts', () => connect().catch(() => undefined));
    try {
      ws.send('ping through the tunnel');
      const [text, isBinary] = (await once(ws, 'message')) as [Buffer, boolean];
      assert.equal(isBinary, false);
      assert.equal(text.toString(), 'ping through the tunnel');
      const blob = Buffer.alloc(200_000);
      for (let i = 0; i < blob.length; i++) blob[i] = (i * 7) % 256;
      ws.send(blob);
      const [echoed, binary] = (await once(ws, 'message')) as [Buffer, boolean];
      assert.equal(binary, true);
      assert.ok(blob.equals(echoed), 'a 200 kB binary message comes back byte for byte');
      const closed = once(ws, 'close');
      ws.close(1000);
      assert.equal((await closed)[0], 1000);
    } finally {
      ws.terminate();
    }
  });

  test("E2B's getHost(port) names this bunker's preview host; the sandbox's traffic token opens it, nothing else does", async () => {
    process.env.E2B_API_URL = server.url;
    process.env.E2B_SANDBOX_URL = server.url;
    const small = { 'scaibunker.memory_mb': '128', 'scaibunker.cpu_millicores': '500', 'scaibunker.disk_mb': '64' };
    const sbx = await Sandbox.create('python', { apiKey: aliceKey, metadata: small, timeoutMs: 300_000 });
    try {
      await sbx.files.write('/tmp/www/hi.txt', 'hi from an e2b sandbox');
      await sbx.commands.run('python3 -m http.server 8000 --bind 127.0.0.1 --directory /tmp/www', { background: true });
      const host = sbx.getHost(8000);
      assert.equal(host, `8000-${sbx.sandboxId}.${DOMAIN}`);
      const token = { 'e2b-traffic-access-token': sbx.trafficAccessToken as string };
      const ok = await eventually('the sandbox server answers on its host', async () => {
        const r = await viaHost(host, '/hi.txt', token);
        return r.status === 200 ? r : undefined;
      });
      assert.equal(ok.text, 'hi from an e2b sandbox');
      assert.equal((await viaHost(host, '/hi.txt')).status, 401, 'no token: closed');
      // envd on its E2B host name (the SDK without E2B_SANDBOX_URL) is the API's envd, not a tunnel
      // (its access token is the traffic token here).
      const envdHost = `49983-${sbx.sandboxId}.${DOMAIN}`;
      const envd = { 'e2b-sandbox-id': sbx.sandboxId, 'e2b-sandbox-port': '49983', 'x-access-token': sbx.trafficAccessToken as string };
      assert.equal((await viaHost(envdHost, '/health', envd)).status, 204);
      assert.equal(
        (await viaHost(envdHost, '/health', { 'x-access-token': sbx.trafficAccessToken as string })).status,
        401,
        'without the sandbox header: a preview host like any other',
      );
      assert.equal((await viaHost(host, '/hi.txt', { 'e2b-traffic-access-token': 'e2bat_nope.nope' })).status, 401);
      // Bob's own sandbox token names his sandbox, not Alice's.
      const bobs = await Sandbox.create('minimal', { apiKey: bobKey, metadata: small, timeoutMs: 120_000 });
      try {
        const wrong = await viaHost(host, '/hi.txt', { 'e2b-traffic-access-token': bobs.trafficAccessToken as string });
        assert.equal(wrong.status, 401);
      } finally {
        await bobs.kill();
      }
    } finally {
      await sbx.kill();
    }
  });
});
