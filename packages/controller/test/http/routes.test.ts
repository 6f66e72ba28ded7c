import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PERMISSIONS, type Permission } from '@scaibunker/core';
import type { Controller } from '../../src/Controller.js';
import { buildHttpServer } from '../../src/http/HttpServer.js';
import type { RouteDef } from '../../src/http/Route.js';
import { tenantWithKey, testController, WORKER_TOKEN } from '../helpers/testController.js';

/** A concrete URL for a route pattern, with ids that match the param schemas. */
function concreteUrl(url: string): string {
  return url
    .replace(':exec_id', `ex_${'0'.repeat(20)}`)
    .replace(':assignment_id', `qa_${'0'.repeat(20)}`)
    .replace(/\/quota-profiles\/:id/, `/quota-profiles/qp_${'0'.repeat(20)}`)
    .replace(/\/tenants\/:id/, `/tenants/tn_${'0'.repeat(20)}`)
    .replace(/\/workers\/:id/, `/workers/wk_${'0'.repeat(20)}`)
    .replace(':id', `bk_${'0'.repeat(20)}`);
}

/** A permission that does NOT grant `needed` (nor imply it). */
function insufficientFor(needed: Permission): Permission[] {
  if (needed === 'scaibunker:admin') return ['scaibunker:admin:tenant'];
  if (needed === 'scaibunker:admin:tenant') return ['scaibunker:read', 'scaibunker:create', 'scaibunker:execute'];
  return PERMISSIONS.filter((p) => p !== needed && !p.startsWith('scaibunker:admin'));
}

describe('every route declares auth and is tested for it', () => {
  let ctl: Awaited<ReturnType<typeof testController>>;
  let controller: Controller;

  before(async () => {
    ctl = await testController();
    controller = ctl.controller;
  });
  after(async () => ctl?.cleanup());

  test('a route without an auth declaration cannot be registered', () => {
    const bad = { ...controller.routes[0], auth: undefined } as unknown as RouteDef;
    assert.throws(() => buildHttpServer({ authenticator: {} as never, routes: [bad] }), /declares no auth/);
  });

  test('every route in the OpenAPI document carries its auth declaration', () => {
    const doc = controller.openapi as { paths: Record<string, Record<string, { 'x-scaibunker-auth'?: string }>> };
    let n = 0;
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        assert.ok(op['x-scaibunker-auth'], 'operation without auth');
        n++;
      }
    }
    assert.equal(n, controller.routes.length);
  });

  test('each protected route refuses no credentials (401), a wrong permission (403) and the wrong kind of caller (403)', async () => {
    const checked: string[] = [];
    for (const r of controller.routes) {
      if (r.auth === 'public') continue;
      const url = concreteUrl(r.url);
      const anon = await controller.http.inject({ method: r.method, url });
      assert.equal(anon.statusCode, 401, `${r.method} ${r.url} without credentials`);
      if (r.method !== 'HEAD') assert.equal(anon.json().error.code, 'UNAUTHENTICATED');
      const bogus = await controller.http.inject({ method: r.method, url, headers: { authorization: 'Bearer sbk_not-a-real-key' } });
      assert.equal(bogus.statusCode, 401, `${r.method} ${r.url} with an unknown key`);
      if (r.auth === 'worker' || r.auth === 'storage') {
        // Storage routes also take capability tokens; test/storage/storageRoutes.test.ts covers those.
        const { key } = await tenantWithKey(controller, `w-${checked.length}`, [...PERMISSIONS]);
        const res = await controller.http.inject({ method: r.method, url, headers: { authorization: `Bearer ${key}` } });
        assert.equal(res.statusCode, 403, `${r.method} ${r.url} with an API key instead of the worker token`);
      } else {
        const { key } = await tenantWithKey(controller, `p-${checked.length}`, insufficientFor(r.auth as Permission));
        const res = await controller.http.inject({ method: r.method, url, headers: { authorization: `Bearer ${key}` } });
        assert.equal(res.statusCode, 403, `${r.method} ${r.url} without ${r.auth}`);
        // A HEAD answer has no body to read the code from.
        if (r.method !== 'HEAD') assert.equal(res.json().error.code, 'PERMISSION_DENIED');
        const asWorker = await controller.http.inject({ method: r.method, url, headers: { authorization: `Bearer ${WORKER_TOKEN}` } });
        assert.equal(asWorker.statusCode, 403, `${r.method} ${r.url} with the worker token`);
      }
      checked.push(`${r.method} ${r.url}`);
    }
    const protectedRoutes = controller.routes.filter((r) => r.auth !== 'public').length;
    assert.equal(checked.length, protectedRoutes);
    assert.ok(protectedRoutes >= 15, `expected the full API, found ${protectedRoutes} protected routes`);
  });

  test('public routes answer without credentials', async () => {
    for (const r of controller.routes.filter((x) => x.auth === 'public')) {
      const res = await controller.http.inject({ method: r.method, url: r.url });
      assert.equal(res.statusCode, 200, r.url);
    }
  });
});
