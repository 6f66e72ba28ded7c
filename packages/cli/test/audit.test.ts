/**
 * `scaibunker audit`, run as a real process against a real controller (SQLite, the fake worker
 * answering execs).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { runCli } from './support/runCli.js';

const cli = runCli;

describe('scaibunker audit', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let auth: string[];
  let bunker: Bunker;
  let keyId: string;

  before(async () => {
    served = await servedController();
    served.worker.api.exec = async () => ({ exitCode: 0, signal: null, timedOut: false, durationMs: 1 });
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    const key = await platform.admin.createApiKey(tenantId, 'auditor', [
      'scaibunker:create',
      'scaibunker:execute',
      'scaibunker:audit:read',
    ]);
    keyId = key.id;
    auth = ['--url', served.url, '--api-key', key.key];
    const client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
    bunker = await Bunker.create({ image: 'minimal' }, client);
    for (const n of [1, 2, 3]) {
      await new Promise((r) => setTimeout(r, 3));
      await bunker.exec(`echo ${n}`);
    }
    await served.controller.auditTrail.flush();
  });
  after(async () => served?.close());

  test('filters by bunker and action; --limit; --json prints the events', async () => {
    const table = await cli(['audit', '--bunker', bunker.id, ...auth]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^TIME\s+ACTOR\s+ACTION\s+BUNKER\s+TARGET\s+DETAILS$/);
    assert.equal(lines.length, 5, 'the header, three execs and the create');
    assert.match(lines[1] ?? '', new RegExp(`key:${keyId}\\s+exec\\.run\\s+${bunker.id}\\s+exec:ex_\\S+\\s+.*"command":"echo 3"`));
    assert.match(lines[4] ?? '', /bunker\.create/);

    const json = await cli(['audit', '--bunker', bunker.id, '--action', 'exec.run', '--limit', '2', '--json', ...auth]);
    assert.equal(json.code, 0, json.stderr);
    const events = JSON.parse(json.stdout) as Array<{ action: string; details: { command: string }; bunker_id: string }>;
    assert.deepEqual(
      events.map((e) => e.details.command),
      ['echo 3', 'echo 2'],
    );
    assert.ok(events.every((e) => e.action === 'exec.run' && e.bunker_id === bunker.id));

    const none = await cli(['audit', '--actor', 'key:ak_nobody', ...auth]);
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /no audit events match/);
  });

  test('a bad --limit exits 2; a bad date or a foreign bunker exits 1 with the code', async () => {
    const badLimit = await cli(['audit', '--limit', '0', ...auth]);
    assert.equal(badLimit.code, 2);
    assert.match(badLimit.stderr, /--limit/);
    const badDate = await cli(['audit', '--from', 'yesterday', ...auth]);
    assert.equal(badDate.code, 1);
    assert.match(badDate.stderr, /^scaibunker: VALIDATION_FAILED: /);
    const missing = await cli(['audit', '--bunker', 'bk_00000000000000000000', ...auth]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^scaibunker: BUNKER_NOT_FOUND: /);
  });
});
