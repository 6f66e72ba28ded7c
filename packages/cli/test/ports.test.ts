/**
 * `scaibunker bunker preview|previews|preview-rm`, run as a real process against a real
 * controller (SQLite, the fake worker).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ScaiBunkerClient } from '@scaibunker/sdk';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { BIN, REPO, runCli } from './support/runCli.js';

const cli = runCli;

describe('scaibunker bunker preview', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let auth: string[];
  let bunkerId: string;

  before(async () => {
    served = await servedController({
      config: { monitorIntervalMs: 3_600_000, sweepIntervalMs: 3_600_000, usageIntervalMs: 3_600_000, previewDomain: 'p.test' },
    });
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    const key = await platform.admin.createApiKey(tenantId, 'dev', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read']);
    auth = ['--url', served.url, '--api-key', key.key];
    const client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
    bunkerId = (await client.transport.json('post', '/v1/modules/scaibunker/bunkers', { body: { image: 'minimal' } })).id;
  });
  after(async () => served?.close());

  test('preview prints the URL, token and link; previews lists it; preview-rm revokes it; bad input exits 2 or 1', async () => {
    const made = await cli(['bunker', 'preview', bunkerId, '8080', '--expires', '2h', ...auth]);
    assert.equal(made.code, 0, made.stderr);
    const fields = Object.fromEntries(
      made.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string]),
    );
    const host = `8080-${bunkerId.replace('_', '-')}.p.test`;
    assert.equal(fields.url, `https://${host}/`);
    assert.match(fields.token ?? '', /^sbpv_/);
    assert.equal(fields.link, `https://${host}/?token=${fields.token}`);
    assert.ok(Math.abs(Date.parse(fields.expires ?? '') - Date.now() - 7_200_000) < 60_000);

    const listed = await cli(['bunker', 'previews', bunkerId, ...auth]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^ID\\s+PORT\\s+STATE\\s+EXPIRES\\s+URL\\n${fields.id}\\t8080\\ttoken\\t`));

    const rm = await cli(['bunker', 'preview-rm', bunkerId, fields.id as string, ...auth]);
    assert.equal(rm.code, 0, rm.stderr);
    const json = JSON.parse((await cli(['bunker', 'previews', bunkerId, '--json', ...auth])).stdout);
    assert.ok(json[0].revoked_at);

    assert.equal((await cli(['bunker', 'preview', bunkerId, '70000', ...auth])).code, 2);
    assert.equal((await cli(['bunker', 'preview', bunkerId, '80', '--expires', 'soon', ...auth])).code, 2);
    const denied = await cli(['bunker', 'preview', bunkerId, '80', '--public', ...auth]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /PERMISSION_DENIED/);
  });
});

describe('scaibunker bunker port-forward', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let echo: Server;
  let auth: string[];
  let bunkerId: string;

  before(async () => {
    echo = createServer((s) => s.pipe(s));
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    served = await servedController();
    served.worker.ports.set(5432, (echo.address() as AddressInfo).port);
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    const key = await platform.admin.createApiKey(tenantId, 'dev', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read']);
    auth = ['--url', served.url, '--api-key', key.key];
    const client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
    bunkerId = (await client.transport.json('post', '/v1/modules/scaibunker/bunkers', { body: { image: 'minimal' } })).id;
  });
  after(async () => {
    echo?.close();
    await served?.close();
  });

  test('each local connection is a raw stream to the port; ^C stops it with exit 0', async () => {
    const env: Record<string, string | undefined> = { ...process.env, SCAIBUNKER_URL: undefined, SCAIBUNKER_API_KEY: undefined };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    const child = spawn(process.execPath, [BIN, 'bunker', 'port-forward', bunkerId, '0:5432', '--json', ...auth], {
      cwd: REPO,
      env: env as NodeJS.ProcessEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const { port } = JSON.parse(String(line));
      for (const text of ['first connection', 'second connection']) {
        const socket = connect(port, '127.0.0.1');
        socket.write(text);
        assert.equal(String((await once(socket, 'data'))[0]), text);
        socket.destroy();
      }
      const exited = once(child, 'close');
      child.kill('SIGINT');
      assert.equal((await exited)[0], 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
