/**
 * Flow-audit batches through the HTTP API: only the worker token stores them, only the bunker's
 * tenant lists and reads them, names are validated at the edge, and pages follow time order.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { addFakeWorker } from '../helpers/fakeWorker.js';
import { tenantWithKey, testController, WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
let ctx: Awaited<ReturnType<typeof testController>>;
let owner: { tenantId: string; key: string };
let other: { tenantId: string; key: string };
let bunkerId: string;

const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const name = (tsUs: number) => `${String(tsUs).padStart(16, '0')}-42.ndjson`;

function put(bunker: string, batch: string, body: string, token = WORKER_TOKEN) {
  return ctx.controller.http.inject({
    method: 'PUT',
    url: `${API}/storage/scaibunker/audit/${bunker}/${batch}`,
    headers: { ...auth(token), 'content-type': 'application/octet-stream' },
    payload: body,
  });
}

before(async () => {
  ctx = await testController();
  await addFakeWorker(ctx.controller, ['minimal'], ['isolated', 'unrestricted']);
  owner = await tenantWithKey(ctx.controller, 'owner', ['scaibunker:admin:tenant']);
  other = await tenantWithKey(ctx.controller, 'other', ['scaibunker:admin:tenant']);
  const created = await ctx.controller.http.inject({
    method: 'POST',
    url: `${API}/bunkers`,
    headers: auth(owner.key),
    payload: { image: 'minimal', network_profile: 'unrestricted' },
  });
  assert.equal(created.statusCode, 201, created.body);
  bunkerId = created.json().id;
});
after(() => ctx.cleanup());

test('the worker stores batches; the tenant lists them oldest first, page by page, and reads each', async () => {
  for (const ts of [3_000_000, 1_000_000, 2_000_000]) {
    const res = await put(bunkerId, name(ts), `{"dst":"198.19.1.${ts / 1_000_000}"}\n`);
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().key, `scaibunker/audit/${bunkerId}/${name(ts)}`);
  }
  const list = (query: string) =>
    ctx.controller.http.inject({ method: 'GET', url: `${API}/bunkers/${bunkerId}/audit-batches${query}`, headers: auth(owner.key) });
  const first = (await list('?limit=2')).json();
  assert.deepEqual(
    first.items.map((b: { name: string; ts_us: string }) => [b.name, b.ts_us]),
    [
      [name(1_000_000), '1000000'],
      [name(2_000_000), '2000000'],
    ],
  );
  assert.ok(first.next_continuation_token);
  const second = (await list(`?limit=2&continuation_token=${first.next_continuation_token}`)).json();
  assert.deepEqual(
    second.items.map((b: { name: string }) => b.name),
    [name(3_000_000)],
  );
  assert.equal(second.next_continuation_token, null);
  const since = (await list('?since_us=2000000')).json();
  assert.deepEqual(
    since.items.map((b: { name: string }) => b.name),
    [name(2_000_000), name(3_000_000)],
  );
  const one = await ctx.controller.http.inject({
    method: 'GET',
    url: `${API}/bunkers/${bunkerId}/audit-batches/${name(2_000_000)}`,
    headers: auth(owner.key),
  });
  assert.equal(one.statusCode, 200);
  assert.equal(one.headers['content-type'], 'application/x-ndjson');
  assert.equal(one.body, '{"dst":"198.19.1.2"}\n');
  const missing = await ctx.controller.http.inject({
    method: 'GET',
    url: `${API}/bunkers/${bunkerId}/audit-batches/${name(9)}`,
    headers: auth(owner.key),
  });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().error.code, 'AUDIT_BATCH_NOT_FOUND');
});

test("another tenant can neither list nor read a bunker's batches: it is not found", async () => {
  for (const url of [`${API}/bunkers/${bunkerId}/audit-batches`, `${API}/bunkers/${bunkerId}/audit-batches/${name(1_000_000)}`]) {
    const res = await ctx.controller.http.inject({ method: 'GET', url, headers: auth(other.key) });
    assert.equal(res.statusCode, 404, url);
    assert.equal(res.json().error.code, 'BUNKER_NOT_FOUND');
  }
});

test('only the worker token stores; objects under the prefix that are not batches are not listed; bad tokens are refused', async () => {
  const asTenant = await put(bunkerId, name(5), '{}\n', owner.key);
  assert.equal(asTenant.statusCode, 403);
  // The storage proxy keeps no bunker rows; the listing is what filters.
  assert.equal((await put(bunkerId, 'not-a-batch.txt', 'x')).statusCode, 201);
  const listed = await ctx.controller.http.inject({
    method: 'GET',
    url: `${API}/bunkers/${bunkerId}/audit-batches`,
    headers: auth(owner.key),
  });
  assert.ok(!listed.json().items.some((i: { name: string }) => i.name === 'not-a-batch.txt'));
  const token = await ctx.controller.http.inject({
    method: 'GET',
    url: `${API}/bunkers/${bunkerId}/audit-batches?continuation_token=Li4vZXRj`,
    headers: auth(owner.key),
  });
  assert.equal(token.statusCode, 400);
  assert.equal(token.json().error.code, 'VALIDATION_FAILED');
});
