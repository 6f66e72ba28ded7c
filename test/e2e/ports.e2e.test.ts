/**
 * Ports for real: `scaibunker serve` with a preview domain, an `isolated` bunker (no network
 * interface but loopback) running `python3 -m http.server`, reached through the path proxy and a
 * host-based preview — tunneled over the agent channel, with nothing listening on the worker or
 * in the bunker's namespace for the outside. A 100 MB download streams through; a closed port is
 * a prompt 502; preview tokens are checked; another tenant is not found.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, destroyLeftoverBunkers, eventually, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from './harness.js';

const API = '/v1/modules/scaibunker';
const DOMAIN = 'preview.test';

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
});
