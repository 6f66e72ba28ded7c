/**
 * `scaibunker usage`, run as a real process against a real controller (SQLite, a fake worker
 * whose readings the test scripts; the usage ticker is run by hand).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ScaiBunkerClient } from '@scaibunker/sdk';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { runCli } from './support/runCli.js';

const cli = runCli;

describe('scaibunker usage', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let auth: string[];
  let bunkerId: string;
  const day = '2031-05-01';

  before(async () => {
    served = await servedController();
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    const key = await platform.admin.createApiKey(tenantId, 'reader', ['scaibunker:create', 'scaibunker:read']);
    auth = ['--url', served.url, '--api-key', key.key];
    const client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
    const created = await client.transport.json('post', '/v1/modules/scaibunker/bunkers', { body: { image: 'minimal' } });
    bunkerId = created.id;
    const start = Date.parse(`${day}T10:00:00Z`);
    await served.controller.store.bunkers.update(bunkerId, { started_at: new Date(start).toISOString() });
    served.worker.readings.set(bunkerId, { cpuUsageNs: 2.5e9, memoryBytes: 100 * 1024 * 1024, pids: 1, diskUsedBytes: 10 * 1024 * 1024 });
    await served.controller.usageTicker.tick(new Date(start + 120_000));
  });
  after(async () => served?.close());

  test('--group-by bunker prints a table; --json the report; a bad --group-by exits 2, a bad date 1', async () => {
    const table = await cli(['usage', '--from', day, '--to', '2031-05-02', '--group-by', 'bunker', ...auth]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^BUNKER\s+CPU-SECONDS\s+MEMORY-MB-MINUTES\s+DISK-MB-MINUTES\s+WALL-SECONDS$/);
    assert.match(lines[1] ?? '', new RegExp(`^${bunkerId}\\s+2\\.5\\s+200\\s+20\\s+120$`));
    assert.match(table.stderr, /usage from 2031-05-01T00:00:00.000Z to 2031-05-02T00:00:00.000Z/);

    const report = JSON.parse((await cli(['usage', '--from', day, '--to', '2031-05-02', '--group-by', 'day', '--json', ...auth])).stdout);
    assert.deepEqual(report, {
      items: [{ key: day, cpu_seconds: 2.5, memory_mb_minutes: 200, disk_mb_minutes: 20, wall_seconds: 120 }],
      from: '2031-05-01T00:00:00.000Z',
      to: '2031-05-02T00:00:00.000Z',
      group_by: 'day',
      // The tenant's exec output kept in the blob store now (none: no exec spilled).
      stored_output_bytes: 0,
      snapshot_bytes: 0,
    });

    const badGroup = await cli(['usage', '--group-by', 'user', ...auth]);
    assert.equal(badGroup.code, 2);
    assert.match(badGroup.stderr, /--group-by/);
    const badDate = await cli(['usage', '--from', 'yesterday', ...auth]);
    assert.equal(badDate.code, 1);
    assert.match(badDate.stderr, /^scaibunker: VALIDATION_FAILED: /);
  });
});
