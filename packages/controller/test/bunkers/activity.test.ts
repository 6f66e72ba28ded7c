import assert from 'node:assert/strict';
import { test } from 'node:test';
import { servedController } from '../helpers/fakeWorker.js';
import { tenantWithKey } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';

test('activity of many bunkers is written in one statement, stamped with the first activity, never for an ended bunker', async () => {
  const served = await servedController();
  try {
    served.worker.api.exec = async () => ({ exitCode: 0, signal: null, timedOut: false, durationMs: 1 });
    const t = await tenantWithKey(served.controller, 'act', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read']);
    const h = { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${served.url}${API}/bunkers`, { method: 'POST', headers: h, body: JSON.stringify({ image: 'minimal' }) });
      assert.equal(r.status, 201, await r.clone().text());
      ids.push(((await r.json()) as { id: string }).id);
    }
    const service = served.controller.services.bunkers;
    await service.writeActivity(); // whatever the creates left
    const store = served.controller.store.bunkers;
    const realTouch = store.touch.bind(store);
    const writes: Array<{ ids: string[]; at: string }> = [];
    store.touch = (touched, at) => {
      writes.push({ ids: [...touched].sort(), at });
      return realTouch(touched, at);
    };

    const before = new Date().toISOString();
    for (const id of ids)
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${served.url}${API}/bunkers/${id}/exec`, {
          method: 'POST',
          headers: h,
          body: JSON.stringify({ command: 'true' }),
        });
        assert.equal(r.status, 200);
      }
    const ended = ids[2] as string;
    assert.equal(
      (await fetch(`${served.url}${API}/bunkers/${ended}`, { method: 'DELETE', headers: { authorization: h.authorization } })).status,
      200,
    );
    assert.equal(writes.length, 0, 'nothing written while the second runs');
    await service.writeActivity();

    assert.equal(writes.length, 1, 'one statement for every bunker');
    assert.deepEqual(writes[0]?.ids, ids.slice(0, 2).sort(), 'the ended bunker is left out');
    const at = writes[0]?.at as string;
    assert.ok(at >= before, 'stamped with the first activity of the second');
    for (const id of ids.slice(0, 2)) assert.equal((await store.getById(id))?.last_activity_at, at);
    await service.writeActivity();
    assert.equal(writes.length, 1, 'nothing more to write');
  } finally {
    await served.close();
  }
});
