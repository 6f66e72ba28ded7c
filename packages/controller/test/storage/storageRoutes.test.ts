/**
 * The storage routes through the controller's HTTP server: the worker token and capability
 * tokens (prefix, verbs, expiry, signature), byte ranges, checksums verified before an object
 * appears, keys that can't leave `scaibunker/`, and API keys kept out.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { CapabilityTokens } from '../../src/storage/CapabilityTokens.js';
import { parseRange } from '../../src/storage/StorageService.js';
import { tenantWithKey, testController, WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const auth = (token: string) => ({ authorization: `Bearer ${token}` });
let ctx: Awaited<ReturnType<typeof testController>>;

before(async () => {
  ctx = await testController();
});
after(() => ctx.cleanup());

function put(key: string, body: Buffer | string, token = WORKER_TOKEN, extra: Record<string, string> = {}) {
  return ctx.controller.http.inject({
    method: 'PUT',
    url: `${API}/storage/${key}`,
    headers: { ...auth(token), 'content-type': 'application/octet-stream', ...extra },
    payload: body,
  });
}
function get(key: string, token = WORKER_TOKEN, extra: Record<string, string> = {}) {
  return ctx.controller.http.inject({ method: 'GET', url: `${API}/storage/${key}`, headers: { ...auth(token), ...extra } });
}
async function capability(prefix: string, verbs: string[], ttl_s = 60) {
  const res = await ctx.controller.http.inject({
    method: 'POST',
    url: `${API}/storage-capabilities`,
    headers: auth(ctx.adminKey),
    payload: { prefix, verbs, ttl_s },
  });
  assert.equal(res.statusCode, 201, res.body);
  return res.json() as { token: string; prefix: string; verbs: string[]; expires_at: string };
}

describe('with the worker token', () => {
  test('put, head, get, list and delete round-trip; the sha256 of what arrived is returned', async () => {
    const body = Buffer.from('hello storage proxy');
    const sha = createHash('sha256').update(body).digest('hex');
    const stored = await put('scaibunker/t/a.bin', body);
    assert.equal(stored.statusCode, 201, stored.body);
    assert.deepEqual(stored.json(), { key: 'scaibunker/t/a.bin', bytes: body.length, sha256: sha });

    const head = await ctx.controller.http.inject({
      method: 'HEAD',
      url: `${API}/storage/scaibunker/t/a.bin`,
      headers: auth(WORKER_TOKEN),
    });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(body.length));
    assert.equal(head.headers['x-scaibunker-sha256'], undefined, 'no checksum was declared');

    const got = await get('scaibunker/t/a.bin');
    assert.equal(got.statusCode, 200);
    assert.equal(got.body, body.toString());
    assert.equal(got.headers['accept-ranges'], 'bytes');

    await put('scaibunker/t/b.bin', 'bb');
    const list = await ctx.controller.http.inject({
      method: 'GET',
      url: `${API}/storage?prefix=scaibunker/t/&limit=1`,
      headers: auth(WORKER_TOKEN),
    });
    assert.deepEqual(list.json(), { items: [{ key: 'scaibunker/t/a.bin', bytes: body.length }], next_start_after: 'scaibunker/t/a.bin' });
    const next = await ctx.controller.http.inject({
      method: 'GET',
      url: `${API}/storage?prefix=scaibunker/t/&start_after=scaibunker/t/a.bin`,
      headers: auth(WORKER_TOKEN),
    });
    assert.deepEqual(next.json(), { items: [{ key: 'scaibunker/t/b.bin', bytes: 2 }], next_start_after: null });

    const del = await ctx.controller.http.inject({
      method: 'DELETE',
      url: `${API}/storage/scaibunker/t/a.bin`,
      headers: auth(WORKER_TOKEN),
    });
    assert.equal(del.statusCode, 204);
    const gone = await get('scaibunker/t/a.bin');
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().error.code, 'BLOB_NOT_FOUND');
    const again = await ctx.controller.http.inject({
      method: 'DELETE',
      url: `${API}/storage/scaibunker/t/a.bin`,
      headers: auth(WORKER_TOKEN),
    });
    assert.equal(again.statusCode, 204, 'delete is idempotent');
  });

  test('byte ranges: N-M, N-, -S give 206 with content-range; past the end is 416; several ranges are answered whole', async () => {
    await put('scaibunker/r/digits', '0123456789');
    const cases: Array<[string, string, string]> = [
      ['bytes=2-5', '2345', 'bytes 2-5/10'],
      ['bytes=7-', '789', 'bytes 7-9/10'],
      ['bytes=-3', '789', 'bytes 7-9/10'],
      ['bytes=8-100', '89', 'bytes 8-9/10'],
    ];
    for (const [range, body, contentRange] of cases) {
      const res = await get('scaibunker/r/digits', WORKER_TOKEN, { range });
      assert.equal(res.statusCode, 206, range);
      assert.equal(res.body, body, range);
      assert.equal(res.headers['content-range'], contentRange, range);
      assert.equal(res.headers['content-length'], String(body.length), range);
    }
    const past = await get('scaibunker/r/digits', WORKER_TOKEN, { range: 'bytes=10-' });
    assert.equal(past.statusCode, 416);
    assert.equal(past.json().error.code, 'RANGE_NOT_SATISFIABLE');
    const several = await get('scaibunker/r/digits', WORKER_TOKEN, { range: 'bytes=0-1,4-5' });
    assert.equal(several.statusCode, 200);
    assert.equal(several.body, '0123456789');
    const bad = await get('scaibunker/r/digits', WORKER_TOKEN, { range: 'lines=1-2' });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'VALIDATION_FAILED');
  });

  test('a declared sha256 is verified before the object appears, kept, and served back', async () => {
    const v1 = Buffer.from('version one');
    const sha1 = createHash('sha256').update(v1).digest('hex');
    assert.equal((await put('scaibunker/c/obj', v1, WORKER_TOKEN, { 'x-scaibunker-sha256': sha1 })).statusCode, 201);
    const wrong = await put('scaibunker/c/obj', 'version two', WORKER_TOKEN, { 'x-scaibunker-sha256': sha1 });
    assert.equal(wrong.statusCode, 400);
    assert.equal(wrong.json().error.code, 'CHECKSUM_MISMATCH');
    const still = await get('scaibunker/c/obj');
    assert.equal(still.body, 'version one', 'the failed upload left the old object whole');
    assert.equal(still.headers['x-scaibunker-sha256'], sha1);
    const fresh = await put('scaibunker/c/new', 'never stored', WORKER_TOKEN, { 'x-scaibunker-sha256': sha1 });
    assert.equal(fresh.statusCode, 400);
    assert.equal((await get('scaibunker/c/new')).statusCode, 404, 'a mismatched first upload leaves no object');
    const malformed = await put('scaibunker/c/obj', 'x', WORKER_TOKEN, { 'x-scaibunker-sha256': 'ABC' });
    assert.equal(malformed.json().error.code, 'VALIDATION_FAILED');
  });

  test('keys outside scaibunker/ or with dot segments are refused', async () => {
    for (const key of ['other/x', 'scaibunker/.meta/x', 'scaibunker/a/../../x', 'scaibunker//x', 'scaibunker/a%20b']) {
      const res = await put(key, 'x');
      assert.ok([400, 403].includes(res.statusCode), `${key}: ${res.statusCode}`);
      assert.ok(['VALIDATION_FAILED', 'PERMISSION_DENIED'].includes(res.json().error.code), key);
    }
    assert.equal((await put('other/x', 'x')).json().error.code, 'PERMISSION_DENIED');
    assert.equal((await put('scaibunker/.meta/x', 'x')).json().error.code, 'VALIDATION_FAILED');
  });
});

describe('capability tokens', () => {
  test('allow their verbs under their prefix and nothing else', async () => {
    await put('scaibunker/exports/t1/report.csv', 'a,b\n');
    await put('scaibunker/exports/t2/secret.csv', 'x,y\n');
    const cap = await capability('scaibunker/exports/t1/', ['get', 'list']);
    assert.deepEqual(cap.verbs, ['get', 'list']);
    assert.match(cap.token, /^sbcap_/);

    assert.equal((await get('scaibunker/exports/t1/report.csv', cap.token)).body, 'a,b\n');
    const listed = await ctx.controller.http.inject({
      method: 'GET',
      url: `${API}/storage?prefix=scaibunker/exports/t1/`,
      headers: auth(cap.token),
    });
    assert.equal(listed.json().items.length, 1);
    const outside = await get('scaibunker/exports/t2/secret.csv', cap.token);
    assert.equal(outside.statusCode, 403);
    assert.equal(outside.json().error.code, 'PERMISSION_DENIED');
    const listOutside = await ctx.controller.http.inject({
      method: 'GET',
      url: `${API}/storage?prefix=scaibunker/exports/`,
      headers: auth(cap.token),
    });
    assert.equal(listOutside.statusCode, 403, 'a wider prefix than granted');
    const write = await put('scaibunker/exports/t1/new.csv', 'z', cap.token);
    assert.equal(write.statusCode, 403, 'put was not granted');
    assert.equal((await get('scaibunker/exports/t1/new.csv')).statusCode, 404);
    const del = await ctx.controller.http.inject({
      method: 'DELETE',
      url: `${API}/storage/scaibunker/exports/t1/report.csv`,
      headers: auth(cap.token),
    });
    assert.equal(del.statusCode, 403);

    const writer = await capability('scaibunker/exports/t1/', ['put']);
    assert.equal((await put('scaibunker/exports/t1/new.csv', 'z', writer.token)).statusCode, 201);
  });

  test('forged, tampered and expired tokens are UNAUTHENTICATED', async () => {
    const cap = await capability('scaibunker/exports/t1/', ['get']);
    const [payload, sig] = cap.token.slice('sbcap_'.length).split('.') as [string, string];
    const widened = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), p: 'scaibunker/' })).toString(
      'base64url',
    );
    const forgedKey = new CapabilityTokens(Buffer.alloc(32, 7)).issue({ prefix: 'scaibunker/', verbs: ['get'], ttlS: 60 }).token;
    const expired = CapabilityTokens.fromWorkerToken(WORKER_TOKEN).issue({
      prefix: 'scaibunker/exports/t1/',
      verbs: ['get'],
      ttlS: 60,
      now: Date.now() - 3_600_000,
    }).token;
    for (const [what, token] of [
      ['a widened payload', `sbcap_${widened}.${sig}`],
      ['another key', forgedKey],
      ['an expired token', expired],
      ['garbage', 'sbcap_nope'],
    ] as const) {
      const res = await get('scaibunker/exports/t1/report.csv', token);
      assert.equal(res.statusCode, 401, what);
      assert.equal(res.json().error.code, 'UNAUTHENTICATED', what);
    }
    const fresh = CapabilityTokens.fromWorkerToken(WORKER_TOKEN).issue({ prefix: 'scaibunker/exports/t1/', verbs: ['get'], ttlS: 60 });
    assert.equal(
      (await get('scaibunker/exports/t1/report.csv', fresh.token)).statusCode,
      200,
      'same key, as another controller or proxy would derive it',
    );
  });

  test('only platform admins mint them, for prefixes under scaibunker/', async () => {
    const tenantAdmin = await tenantWithKey(ctx.controller, 'cap-tenant', ['scaibunker:admin:tenant']);
    const denied = await ctx.controller.http.inject({
      method: 'POST',
      url: `${API}/storage-capabilities`,
      headers: auth(tenantAdmin.key),
      payload: { prefix: 'scaibunker/x/', verbs: ['get'] },
    });
    assert.equal(denied.statusCode, 403);
    for (const prefix of ['elsewhere/', 'scaibunker/no-slash', 'scaibunker/../']) {
      const res = await ctx.controller.http.inject({
        method: 'POST',
        url: `${API}/storage-capabilities`,
        headers: auth(ctx.adminKey),
        payload: { prefix, verbs: ['get'] },
      });
      assert.equal(res.statusCode, 400, prefix);
      assert.equal(res.json().error.code, 'VALIDATION_FAILED', prefix);
    }
    const tooLong = await ctx.controller.http.inject({
      method: 'POST',
      url: `${API}/storage-capabilities`,
      headers: auth(ctx.adminKey),
      payload: { prefix: 'scaibunker/x/', verbs: ['get'], ttl_s: 86_401 },
    });
    assert.equal(tooLong.statusCode, 400);
  });
});

test("API keys never reach storage, even a platform admin's; no credentials is 401", async () => {
  await put('scaibunker/k/obj', 'x');
  const asAdmin = await get('scaibunker/k/obj', ctx.adminKey);
  assert.equal(asAdmin.statusCode, 403);
  assert.equal(asAdmin.json().error.code, 'PERMISSION_DENIED');
  const anon = await ctx.controller.http.inject({ method: 'GET', url: `${API}/storage/scaibunker/k/obj` });
  assert.equal(anon.statusCode, 401);
});

test('parseRange follows RFC 9110 for one range', () => {
  assert.equal(parseRange(undefined, 10), undefined);
  assert.deepEqual(parseRange('bytes=0-0', 10), { start: 0, end: 0 });
  assert.deepEqual(parseRange('bytes=-20', 10), { start: 0, end: 9 });
  assert.throws(() => parseRange('bytes=5-2', 10), /malformed/);
  assert.throws(() => parseRange('bytes=-0', 10), /outside/);
  assert.throws(() => parseRange('bytes=0-', 0), /outside/, 'an empty object has no satisfiable range');
});
