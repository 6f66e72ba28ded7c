/**
 * `scaibunker bridge …` and `bunker create --interface`, run as real processes against a real
 * controller (SQLite, a fake worker that offers `transit` and records bridges and spawns).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NETWORK_PROFILES } from '@scaibunker/core';
import { FAKE_IMAGE_SHA, servedController } from '../../controller/test/helpers/fakeWorker.js';
import { type CliRun, runCli } from './support/runCli.js';

const cli = runCli;

const json = (run: CliRun): any => {
  assert.equal(run.code, 0, `exit 0 expected; stderr: ${run.stderr}`);
  return JSON.parse(run.stdout);
};

describe('scaibunker bridge', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let conn: string[];

  before(async () => {
    served = await servedController();
    conn = ['--url', served.url, '--api-key', served.adminKey];
    // The fake worker now offers transit (servedController registers it isolated-only).
    await served.controller.services.workers.heartbeat({
      worker_id: served.worker.id,
      name: 'fake',
      url: '',
      isolations: ['container'],
      network_profiles: [...NETWORK_PROFILES],
      capacity: { cpu_millicores: 100_000_000, memory_mb: 100_000_000, disk_mb: 100_000_000 },
      cached_images: [FAKE_IMAGE_SHA],
      bunkers: [],
    });
  });
  after(async () => served?.close());

  test('create, ls, get; a transit bunker on it; rm refused while attached, then done', async () => {
    const created = await cli(['bridge', 'create', 'lan', ...conn]);
    assert.equal(created.code, 0, created.stderr);
    const id = created.stdout.trim();
    assert.match(id, /^br_[0-9a-z]{20}$/);
    assert.equal(served.worker.bridges.has(id), true);
    const list = json(await cli(['bridge', 'ls', ...conn, '--json']));
    assert.deepEqual(
      list.map((b: { id: string; state: string }) => [b.id, b.state]),
      [[id, 'ready']],
    );
    const table = await cli(['bridge', 'ls', ...conn]);
    assert.match(table.stdout, /NAME/);
    assert.match(table.stdout, /lan/);
    assert.equal(json(await cli(['bridge', 'get', id, ...conn, '--json'])).name, 'lan');

    const bunker = json(
      await cli(['bunker', 'create', '--interface', id, '--interface', `${id},mac=02:00:00:00:00:02,spoof-guard=off`, ...conn, '--json']),
    );
    assert.equal(bunker.network_profile, 'transit');
    assert.equal(bunker.interfaces[1].mac, '02:00:00:00:00:02');
    assert.equal(bunker.interfaces[1].spoof_guard, false);
    assert.equal(served.worker.spawns.at(-1)?.interfaces?.length, 2);

    const refused = await cli(['bridge', 'rm', id, ...conn]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /BRIDGE_CONFLICT/);
    assert.equal((await cli(['bunker', 'rm', bunker.id, ...conn])).code, 0);
    const removed = await cli(['bridge', 'rm', id, ...conn]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(served.worker.bridges.has(id), false);
    const missing = await cli(['bridge', 'get', id, ...conn]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /BRIDGE_NOT_FOUND/);
  });
});
