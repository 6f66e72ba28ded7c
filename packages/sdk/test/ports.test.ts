/** `bunker.ports` against a real controller (SQLite, the fake worker tunnelling to a local server). */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { Bunker, NotFoundError, ScaiBunkerClient, UnavailableError } from '../src/index.js';

describe('SDK ports and previews', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let upstream: http.Server;
  let client: ScaiBunkerClient;
  let apiKey: string;

  before(async () => {
    upstream = http.createServer((req, res) => res.end(`hello ${req.url}`));
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    served = await servedController({
      config: { monitorIntervalMs: 3_600_000, sweepIntervalMs: 3_600_000, usageIntervalMs: 3_600_000, previewDomain: 'p.test' },
    });
    served.worker.ports.set(3000, (upstream.address() as AddressInfo).port);
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    apiKey = (await platform.admin.createApiKey(tenantId, 'dev', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read'])).key;
    client = new ScaiBunkerClient({ baseUrl: served.url, apiKey });
  });
  after(async () => {
    upstream?.close();
    await served?.close();
  });

  test('url() reaches the port with the API key; previews are made, listed and revoked', async () => {
    const bunker = await Bunker.create({ image: 'minimal' }, client);
    const url = bunker.ports.url(3000, '/x?y=1');
    assert.equal(url, `${served.url}/v1/modules/scaibunker/bunkers/${bunker.id}/ports/3000/x?y=1`);
    const res = await fetch(url, { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(await res.text(), 'hello /x?y=1');

    const p = await bunker.ports.preview(3000, { expiresInS: 120 });
    assert.equal(p.url, `https://3000-${bunker.id.replace('_', '-')}.p.test/`);
    assert.match(p.token ?? '', /^sbpv_/);
    assert.deepEqual(
      (await bunker.ports.previews()).map((x) => [x.id, x.token]),
      [[p.id, null]],
    );
    await bunker.ports.revoke(p.id);
    assert.ok((await bunker.ports.previews())[0]?.revoked_at);
    await assert.rejects(bunker.ports.revoke('pv_00000000000000000000'), NotFoundError);

    const closed = await fetch(bunker.ports.url(4000), { headers: { authorization: `Bearer ${apiKey}` } });
    assert.equal(closed.status, 502);
    assert.equal(((await closed.json()) as { error: { code: string } }).error.code, 'PORT_NOT_LISTENING');
    await assert.rejects(
      bunker.ports.connect(4000),
      (err: unknown) => err instanceof UnavailableError && err.code === 'PORT_NOT_LISTENING',
    );
    const socket = await bunker.ports.connect(3000);
    socket.write('GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    let raw = '';
    for await (const c of socket) raw += c;
    assert.match(raw, /^HTTP\/1\.1 200 OK\r\n[\s\S]*hello \/raw$/);
  });
});
