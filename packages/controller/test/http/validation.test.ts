import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { tenantWithKey, testController } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const FAKE_BUNKER = `bk_${'0'.repeat(20)}`;

describe('bad input gets a clear error with a stable code', () => {
  let ctl: Awaited<ReturnType<typeof testController>>;
  let auth: { authorization: string };

  before(async () => {
    ctl = await testController();
    const { key } = await tenantWithKey(ctl.controller, 'v', ['scaibunker:admin:tenant']);
    auth = { authorization: `Bearer ${key}` };
  });
  after(async () => ctl?.cleanup());

  const post = (url: string, payload: string, headers: Record<string, string> = {}) =>
    ctl.controller.http.inject({ method: 'POST', url, payload, headers: { ...auth, 'content-type': 'application/json', ...headers } });

  test('malformed JSON', async () => {
    const res = await post(`${API}/bunkers`, '{"image": "minimal",');
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'VALIDATION_FAILED');
    assert.match(res.json().error.message, /JSON/);
  });

  test('unknown field is rejected, not dropped', async () => {
    const res = await post(`${API}/bunkers`, JSON.stringify({ image: 'minimal', colour: 'red' }));
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'VALIDATION_FAILED');
    assert.match(res.json().error.message, /colour/);
  });

  test('out-of-range limits and wrong types', async () => {
    for (const body of [
      { image: 'minimal', memory_mb: 1 },
      { image: 'minimal', cpu_millicores: 10_000_000 },
      { image: 'minimal', disk_mb: '5' },
      {},
    ]) {
      const res = await post(`${API}/bunkers`, JSON.stringify(body));
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.equal(res.json().error.code, 'VALIDATION_FAILED');
      assert.ok(res.json().error.details.field, 'names the field');
    }
  });

  test('a transit create without interfaces and unknown profiles are refused clearly', async () => {
    const res = await post(`${API}/bunkers`, JSON.stringify({ image: 'minimal', network_profile: 'transit' }));
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'VALIDATION_FAILED');
    assert.match(res.json().error.message, /transit profile needs interfaces/);
    assert.equal(res.json().error.details.field, 'body/interfaces');
    const unknown = await post(`${API}/bunkers`, JSON.stringify({ image: 'minimal', network_profile: 'wide-open' }));
    assert.equal(unknown.statusCode, 400);
    assert.equal(unknown.json().error.details.field, 'body/network_profile');
  });

  test('unknown image', async () => {
    const res = await post(`${API}/bunkers`, JSON.stringify({ image: 'no-such-image' }));
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, 'IMAGE_NOT_FOUND');
  });

  test('a malformed bunker id is a validation error; an unknown one is 404', async () => {
    const bad = await ctl.controller.http.inject({ method: 'GET', url: `${API}/bunkers/nope`, headers: auth });
    assert.equal(bad.statusCode, 400);
    const missing = await ctl.controller.http.inject({ method: 'GET', url: `${API}/bunkers/${FAKE_BUNKER}`, headers: auth });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'BUNKER_NOT_FOUND');
  });

  test('file paths with .. or relative paths are rejected at the edge', async () => {
    for (const path of ['/etc/../../host', '..', 'relative/file', '/a/..', '/../x']) {
      const res = await ctl.controller.http.inject({
        method: 'GET',
        url: `${API}/bunkers/${FAKE_BUNKER}/files?path=${encodeURIComponent(path)}`,
        headers: auth,
      });
      assert.equal(res.statusCode, 400, path);
      assert.equal(res.json().error.code, 'VALIDATION_FAILED');
    }
    const ok = await ctl.controller.http.inject({
      method: 'GET',
      url: `${API}/bunkers/${FAKE_BUNKER}/files?path=/a/..b/c..`,
      headers: auth,
    });
    assert.equal(ok.statusCode, 404, 'names merely containing dots are fine');
  });

  test('exec body: empty argv, bad timeout', async () => {
    for (const body of [{ command: [] }, { command: '' }, { command: 'true', timeout_s: 0 }, { command: 'true', timeout_s: -1 }]) {
      const res = await post(`${API}/bunkers/${FAKE_BUNKER}/exec`, JSON.stringify(body));
      assert.equal(res.statusCode, 400, JSON.stringify(body));
    }
  });

  test('allowlisted labels: bad keys rejected', async () => {
    const res = await post(`${API}/bunkers`, JSON.stringify({ image: 'minimal', metadata: { 'Bad Key!': 'x' } }));
    assert.equal(res.statusCode, 400);
  });

  test('no worker online: WORKER_UNAVAILABLE, and the bunker row records provision_failed', async () => {
    await ctl.controller.store.images.upsertPlatform({
      id: 'im_test',
      tenant_id: null,
      name: 'minimal',
      scope: 'platform',
      state: 'ready',
      sha256: 'e'.repeat(64),
      size_bytes: 1,
      created_at: new Date().toISOString(),
    });
    const res = await post(`${API}/bunkers`, JSON.stringify({ image: 'minimal' }));
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().error.code, 'WORKER_UNAVAILABLE');
    const list = await ctl.controller.http.inject({ method: 'GET', url: `${API}/bunkers?state=failed`, headers: auth });
    const failed = list.json().items;
    assert.equal(failed.length, 1);
    assert.match(failed[0].termination_reason, /^provision_failed/);
  });

  test('unknown route is a NOT_FOUND error body', async () => {
    const res = await ctl.controller.http.inject({ method: 'GET', url: `${API}/nope`, headers: auth });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().error.code, 'NOT_FOUND');
  });

  test('list query: bad state and limit', async () => {
    for (const q of ['state=exploded', 'limit=0', 'limit=1000', 'cursor=%%%', 'label=noequals']) {
      const res = await ctl.controller.http.inject({ method: 'GET', url: `${API}/bunkers?${q}`, headers: auth });
      assert.equal(res.statusCode, 400, q);
      assert.equal(res.json().error.code, 'VALIDATION_FAILED');
    }
  });
});
