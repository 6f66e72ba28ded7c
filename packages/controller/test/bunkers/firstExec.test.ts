import assert from 'node:assert/strict';
import { test } from 'node:test';
import { servedController } from '../helpers/fakeWorker.js';
import { tenantWithKey } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';

test('a create leaves its running row in the running-bunker cache: the first exec reads no row, a change to the row drops it', async () => {
  const served = await servedController();
  try {
    served.worker.api.exec = async () => ({ exitCode: 0, signal: null, timedOut: false, durationMs: 1 });
    const t = await tenantWithKey(served.controller, 'first', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read']);
    const h = { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' };
    const created = await fetch(`${served.url}${API}/bunkers`, { method: 'POST', headers: h, body: JSON.stringify({ image: 'minimal' }) });
    assert.equal(created.status, 201, await created.clone().text());
    const { id } = (await created.json()) as { id: string };

    const store = served.controller.store.bunkers;
    const realGet = store.get.bind(store);
    const reads: string[] = [];
    store.get = (tenantId, bunkerId) => {
      reads.push(bunkerId);
      return realGet(tenantId, bunkerId);
    };
    const exec = () =>
      fetch(`${served.url}${API}/bunkers/${id}/exec`, { method: 'POST', headers: h, body: JSON.stringify({ command: 'true' }) });
    assert.equal((await exec()).status, 200);
    assert.deepEqual(reads, [], 'the first exec was served from the cache');

    // Any committed change to the row drops the entry: the next exec reads it.
    await store.update(id, { metadata: '{"changed":"yes"}' });
    assert.equal((await exec()).status, 200);
    assert.deepEqual(reads, [id]);
  } finally {
    await served.close();
  }
});
