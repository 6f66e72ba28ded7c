/**
 * `client.usage.get` against a real controller (SQLite, a fake worker whose readings the test
 * scripts; the usage ticker is run by hand).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { Bunker, ScaiBunkerClient, ValidationError } from '../src/index.js';

describe('SDK usage against a real controller', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let client: ScaiBunkerClient;

  before(async () => {
    served = await servedController();
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    const key = await platform.admin.createApiKey(tenantId, 'reader', ['scaibunker:create', 'scaibunker:read']);
    client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
  });
  after(async () => served?.close());

  test('get: sums per bunker over a range given as Dates; bad dates are ValidationError', async () => {
    const bunker = await Bunker.create({ image: 'minimal' }, client);
    const started = Date.parse(bunker.info.started_at as string);
    served.worker.readings.set(bunker.id, { cpuUsageNs: 1.5e9, memoryBytes: 64 * 1024 * 1024, pids: 2, diskUsedBytes: 0 });
    await served.controller.usageTicker.tick(new Date(started + 60_000));
    const report = await client.usage.get({ from: new Date(started - 3_600_000), to: new Date(started + 3_600_000), groupBy: 'bunker' });
    assert.equal(report.group_by, 'bunker');
    assert.equal(report.items.length, 1);
    const [item] = report.items;
    assert.equal(item?.key, bunker.id);
    assert.equal(item?.cpu_seconds, 1.5);
    assert.equal(item?.memory_mb_minutes, 64);
    assert.equal(item?.wall_seconds, 60);
    const total = await client.usage.get({ from: new Date(started - 3_600_000).toISOString(), to: new Date(started + 3_600_000) });
    assert.equal(total.group_by, 'none');
    assert.equal(total.items[0]?.key, null);
    await assert.rejects(client.usage.get({ from: 'last week' }), (err: unknown) => err instanceof ValidationError);
    await bunker.terminate();
  });
});
