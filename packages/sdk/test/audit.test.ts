/** `client.audit.list` against a real controller (SQLite, the fake worker): filters and paging. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { AuthError, Bunker, NotFoundError, ScaiBunkerClient, ValidationError } from '../src/index.js';

describe('SDK audit events against a real controller', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let client: ScaiBunkerClient;
  let reader: ScaiBunkerClient;

  before(async () => {
    served = await servedController();
    const platform = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const tenantId = (await platform.admin.createTenant('acme')).id;
    const key = await platform.admin.createApiKey(tenantId, 'auditor', ['scaibunker:create', 'scaibunker:audit:read']);
    client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: key.key });
    const plain = await platform.admin.createApiKey(tenantId, 'reader', ['scaibunker:read']);
    reader = new ScaiBunkerClient({ baseUrl: served.url, apiKey: plain.key });
  });
  after(async () => served?.close());

  test('list: pages lazily, newest first, with filters; errors are typed', async () => {
    const bunkers = [];
    for (let i = 0; i < 3; i++) bunkers.push(await Bunker.create({ image: 'minimal' }, client));
    for (const b of bunkers) await b.terminate();
    await served.controller.auditTrail.flush();

    const all = await client.audit.list({ limit: 2 }).toArray();
    // The tenant's administrative events (written when it and its keys were made) are there too.
    assert.deepEqual(all.map((e) => e.action).sort(), [
      ...['api_key.create', 'api_key.create', 'bunker.create', 'bunker.create', 'bunker.create'],
      ...['bunker.terminate', 'bunker.terminate', 'bunker.terminate', 'tenant.create'],
    ]);
    for (let i = 1; i < all.length; i++) assert.ok((all[i - 1]?.created_at as string) >= (all[i]?.created_at as string), 'newest first');
    assert.equal(all[0]?.action, 'bunker.terminate');
    assert.equal(new Set(all.map((e) => e.id)).size, 9);
    const pages = [];
    for await (const p of client.audit.list({ limit: 4 }).pages()) pages.push(p.items.length);
    assert.deepEqual(pages, [4, 4, 1]);

    const one = await client.audit.list({ bunkerId: bunkers[1]?.id, action: 'bunker.create' }).page();
    assert.deepEqual(
      one.items.map((e) => [e.bunker_id, e.action]),
      [[bunkers[1]?.id, 'bunker.create']],
    );
    assert.equal(one.nextCursor, null);
    const future = await client.audit.list({ from: new Date(Date.now() + 60_000) }).toArray();
    assert.deepEqual(future, []);

    await assert.rejects(client.audit.list({ from: 'last week' }).page(), (err: unknown) => err instanceof ValidationError);
    await assert.rejects(client.audit.list({ bunkerId: 'bk_00000000000000000000' }).page(), (err: unknown) => err instanceof NotFoundError);
    await assert.rejects(reader.audit.list().page(), (err: unknown) => err instanceof AuthError);
  });
});
