/**
 * The console's routes: the static files under /console/ (public, confined to their directory,
 * with a strict CSP) and the dashboard's `GET /v1/scaibunker/bunkers`, which answers exactly as
 * `GET /v1/modules/scaibunker/bunkers` (same permission, same tenant scoping).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildHttpServer } from '../../src/http/HttpServer.js';
import { consoleRoutes } from '../../src/http/routes/consoleRoutes.js';
import { addFakeWorker } from '../helpers/fakeWorker.js';
import { tenantWithKey, testController } from '../helpers/testController.js';

describe('console static files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-console-'));
  const outside = `${dir}-secret.txt`;
  const app = buildHttpServer({ authenticator: {} as never, routes: consoleRoutes(join(dir, 'dist')) });

  before(() => {
    mkdirSync(join(dir, 'dist/assets'), { recursive: true });
    writeFileSync(join(dir, 'dist/index.html'), '<!doctype html><title>console</title>');
    writeFileSync(join(dir, 'dist/console.js'), 'console.log(1)');
    writeFileSync(join(dir, 'dist/assets/a.css'), 'body{}');
    writeFileSync(outside, 'secret');
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(outside, { force: true });
  });

  test('the page, at /console and /console/, and for any app path without an extension', async () => {
    for (const url of ['/console', '/console/', '/console/bunkers', '/console/bunkers/bk_x']) {
      const res = await app.inject({ url });
      assert.equal(res.statusCode, 200, url);
      assert.match(res.headers['content-type'] as string, /^text\/html/);
      assert.equal(res.body, '<!doctype html><title>console</title>');
      assert.match(res.headers['content-security-policy'] as string, /script-src 'self'/);
      assert.match(res.headers['content-security-policy'] as string, /frame-ancestors 'none'/);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
    }
  });

  test('its files with their types; a missing file is 404', async () => {
    const js = await app.inject({ url: '/console/console.js' });
    assert.equal(js.statusCode, 200);
    assert.match(js.headers['content-type'] as string, /^text\/javascript/);
    const css = await app.inject({ url: '/console/assets/a.css' });
    assert.match(css.headers['content-type'] as string, /^text\/css/);
    const missing = await app.inject({ url: '/console/nope.js' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'NOT_FOUND');
  });

  test('nothing outside its directory', async () => {
    for (const url of [
      `/console/../${join(dir, '').split('/').pop()}-secret.txt`,
      '/console/%2e%2e/%2e%2e/etc/passwd',
      '/console/..%2f..%2fetc%2fpasswd',
      '/console/assets/../../dist-secret.txt',
    ]) {
      const res = await app.inject({ url });
      assert.notEqual(res.body, 'secret', url);
      assert.doesNotMatch(res.body, /root:/, url);
    }
  });

  test('an unbuilt console answers a page that says how to build it', async () => {
    const bare = buildHttpServer({ authenticator: {} as never, routes: consoleRoutes(join(dir, 'missing')) });
    const res = await bare.inject({ url: '/console/' });
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /build-console/);
    await bare.close();
  });
});

describe('GET /v1/scaibunker/bunkers (the dashboard path)', () => {
  let ctl: Awaited<ReturnType<typeof testController>>;
  before(async () => {
    ctl = await testController();
    await addFakeWorker(ctl.controller);
  });
  after(async () => ctl?.cleanup());

  test('answers as GET /v1/modules/scaibunker/bunkers, scoped to the tenant, with the same permission', async () => {
    const { controller } = ctl;
    const a = await tenantWithKey(controller, 'dash-a', ['scaibunker:read', 'scaibunker:create']);
    const b = await tenantWithKey(controller, 'dash-b', ['scaibunker:read', 'scaibunker:create']);
    const noRead = await tenantWithKey(controller, 'dash-c', ['scaibunker:execute']);
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    for (let i = 0; i < 2; i++) {
      const res = await controller.http.inject({
        method: 'POST',
        url: '/v1/modules/scaibunker/bunkers',
        headers: as(a.key),
        payload: { image: 'minimal', metadata: { n: String(i) } },
      });
      assert.equal(res.statusCode, 201, res.body);
    }
    const modules = await controller.http.inject({ url: '/v1/modules/scaibunker/bunkers?label=n=1', headers: as(a.key) });
    const dashboard = await controller.http.inject({ url: '/v1/scaibunker/bunkers?label=n=1', headers: as(a.key) });
    assert.equal(dashboard.statusCode, 200);
    assert.deepEqual(dashboard.json(), modules.json());
    assert.equal(dashboard.json().items.length, 1);
    const all = await controller.http.inject({ url: '/v1/scaibunker/bunkers', headers: as(a.key) });
    assert.equal(all.json().items.length, 2);
    const other = await controller.http.inject({ url: '/v1/scaibunker/bunkers', headers: as(b.key) });
    assert.deepEqual(other.json().items, []);
    const denied = await controller.http.inject({ url: '/v1/scaibunker/bunkers', headers: as(noRead.key) });
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.json().error.details.needed, 'scaibunker:read');
    assert.equal((await controller.http.inject({ url: '/v1/scaibunker/bunkers' })).statusCode, 401);
  });
});
