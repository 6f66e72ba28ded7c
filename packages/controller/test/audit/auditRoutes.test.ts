/**
 * `GET /audit-events` through the HTTP server: execs, file changes and bunker create/terminate
 * leave events without the call waiting for them; a tenant sees only its own; the permission,
 * the filters' validation and the platform admin's `tenant_id`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiError } from '@scaibunker/core';
import { addFakeWorker } from '../helpers/fakeWorker.js';
import { tenantWithKey, testController } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';
const USER = ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read', 'scaibunker:audit:read'] as const;

describe('audit events API', () => {
  let ctx: Awaited<ReturnType<typeof testController>>;
  let worker: Awaited<ReturnType<typeof addFakeWorker>>;
  let a: { tenantId: string; key: string };
  let b: { tenantId: string; key: string };
  let bunkerA: string;
  let bunkerB: string;
  const written: string[] = [];

  // Events stamped in the same millisecond list in id order; the tests that check the order
  // space their calls out so each event has its own instant.
  const call = async (key: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) => {
    if (method !== 'GET') await new Promise((r) => setTimeout(r, 3));
    return ctx.controller.http.inject({
      method,
      url: `${API}${url}`,
      headers: {
        authorization: `Bearer ${key}`,
        ...(method === 'PUT' ? { 'content-type': 'application/octet-stream' } : {}),
      },
      ...(payload !== undefined ? { payload: payload as string } : {}),
    });
  };
  const events = async (key: string, query = '') => {
    await ctx.controller.auditTrail.flush();
    const res = await call(key, 'GET', `/audit-events${query}`);
    assert.equal(res.statusCode, 200, res.body);
    return res.json() as { items: Array<Record<string, any>>; next_cursor: string | null };
  };
  const create = async (key: string) => {
    const res = await call(key, 'POST', '/bunkers', { image: 'minimal' });
    assert.equal(res.statusCode, 201, res.body);
    return res.json().id as string;
  };

  before(async () => {
    ctx = await testController();
    worker = await addFakeWorker(ctx.controller);
    worker.api.exec = async (_id, _req, handlers) => {
      await handlers.onStdout?.(Buffer.from('ok\n'));
      return { exitCode: 0, signal: null, timedOut: false, durationMs: 1 };
    };
    worker.api.writeFile = async (_id, path, data) => {
      let bytes = 0;
      for await (const c of data) bytes += (c as Buffer).length;
      written.push(path);
      return { bytes };
    };
    worker.api.mkdir = async () => {};
    worker.api.remove = async () => {};
    a = await tenantWithKey(ctx.controller, 'audit-a', [...USER]);
    b = await tenantWithKey(ctx.controller, 'audit-b', [...USER]);
    bunkerA = await create(a.key);
    bunkerB = await create(b.key);
  });
  after(async () => ctx?.cleanup());

  test('an exec and each file change leave one event each, on the bunker, newest first', async () => {
    const exec = await call(a.key, 'POST', `/bunkers/${bunkerA}/exec`, { command: `echo ${'x'.repeat(3000)}` });
    assert.equal(exec.statusCode, 200, exec.body);
    const execId = exec.json().exec_id;
    assert.equal((await call(a.key, 'PUT', `/bunkers/${bunkerA}/files?path=/tmp/a.txt`, 'hello')).statusCode, 200);
    assert.equal((await call(a.key, 'POST', `/bunkers/${bunkerA}/files/mkdir`, { path: '/tmp/d', parents: true })).statusCode, 201);
    assert.equal((await call(a.key, 'DELETE', `/bunkers/${bunkerA}/files?path=/tmp/d&recursive=true`)).statusCode, 200);

    const page = await events(a.key, `?bunker_id=${bunkerA}`);
    assert.deepEqual(
      page.items.map((e) => e.action),
      ['file.delete', 'file.mkdir', 'file.write', 'exec.run', 'bunker.create'],
    );
    const [del, mkdir, write, run, created] = page.items;
    assert.equal(run?.target_type, 'exec');
    assert.equal(run?.target_id, execId);
    assert.equal(run?.bunker_id, bunkerA);
    assert.equal(run?.tenant_id, a.tenantId);
    assert.match(run?.actor, /^key:ak_/);
    assert.equal(run?.details.exec_id, execId);
    assert.equal(run?.details.command.length, 1024, 'the command is cut at 1 KiB');
    assert.equal(run?.details.command_truncated, true);
    assert.deepEqual(write?.details, { path: '/tmp/a.txt', bytes: 5 });
    assert.deepEqual(mkdir?.details, { path: '/tmp/d' });
    assert.deepEqual(del?.details, { path: '/tmp/d', recursive: true });
    assert.equal(created?.details.image, 'minimal');
    assert.equal(created?.details.network_profile, 'isolated');
    for (const e of page.items) assert.match(e.created_at, /^\d{4}-\d{2}-\d{2}T/);
  });

  test('exec and file calls do not wait for the audit write, and work through an audit-store outage', async () => {
    const audit = ctx.controller.store.audit;
    const real = audit.insertMany;
    const realInsert = audit.insert;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    // The database takes audit rows only when released, by either insert: the calls must answer
    // before that, even with a flush of their events under way.
    audit.insertMany = async (rows) => {
      await gate;
      return real.call(audit, rows);
    };
    audit.insert = async (row) => {
      await gate;
      return realInsert.call(audit, row);
    };
    try {
      const exec = await call(a.key, 'POST', `/bunkers/${bunkerA}/exec`, { command: 'true' });
      assert.equal(exec.statusCode, 200);
      const flushing = ctx.controller.auditTrail.flush();
      assert.equal((await call(a.key, 'PUT', `/bunkers/${bunkerA}/files?path=/tmp/held`, 'x')).statusCode, 200);
      release();
      await flushing;
    } finally {
      release();
      audit.insert = realInsert;
    }
    audit.insertMany = async () => {
      throw new ApiError('STORE_UNAVAILABLE', 'down');
    };
    try {
      assert.equal((await call(a.key, 'POST', `/bunkers/${bunkerA}/exec`, { command: 'during-outage' })).statusCode, 200);
      await ctx.controller.auditTrail.flush();
    } finally {
      audit.insertMany = real;
    }
    const page = await events(a.key, `?bunker_id=${bunkerA}&limit=3`);
    assert.deepEqual(
      page.items.map((e) => e.details.command ?? e.details.path),
      ['during-outage', '/tmp/held', 'true'],
      'kept through the outage and written once the store answered',
    );
  });

  test("a tenant sees only its own events; another tenant's bunker is BUNKER_NOT_FOUND", async () => {
    await call(b.key, 'POST', `/bunkers/${bunkerB}/exec`, { command: 'b-secret' });
    const mine = await events(a.key, '?limit=200');
    assert.ok(mine.items.length > 0);
    assert.ok(mine.items.every((e) => e.tenant_id === a.tenantId));
    assert.ok(!JSON.stringify(mine).includes('b-secret'));
    assert.ok(!mine.items.some((e) => e.bunker_id === bunkerB));
    const theirs = await call(a.key, 'GET', `/audit-events?bunker_id=${bunkerB}`);
    assert.equal(theirs.statusCode, 404);
    assert.equal(theirs.json().error.code, 'BUNKER_NOT_FOUND');
    const other = await call(a.key, 'GET', `/audit-events?tenant_id=${b.tenantId}`);
    assert.equal(other.statusCode, 404);
    assert.equal(other.json().error.code, 'TENANT_NOT_FOUND');
    const bs = await events(b.key, '?action=exec.run');
    assert.deepEqual(
      bs.items.map((e) => e.details.command),
      ['b-secret'],
    );
  });

  test("platform admins read another tenant's events with tenant_id", async () => {
    const page = await events(ctx.adminKey, `?tenant_id=${b.tenantId}&action=exec.run`);
    assert.deepEqual(
      page.items.map((e) => [e.tenant_id, e.details.command]),
      [[b.tenantId, 'b-secret']],
    );
  });

  test('terminate is recorded once (a repeat changes nothing); filters by action and actor; cursor paging', async () => {
    const id = await create(a.key);
    assert.equal((await call(a.key, 'DELETE', `/bunkers/${id}`)).statusCode, 200);
    assert.equal((await call(a.key, 'DELETE', `/bunkers/${id}`)).statusCode, 200);
    const page = await events(a.key, `?bunker_id=${id}`);
    assert.deepEqual(
      page.items.map((e) => e.action),
      ['bunker.terminate', 'bunker.create'],
    );
    const actor = page.items[0]?.actor as string;
    assert.equal((await events(a.key, `?actor=${encodeURIComponent('key:ak_nobody')}`)).items.length, 0);
    const all = await events(a.key, `?actor=${encodeURIComponent(actor)}&limit=200`);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const p = await events(a.key, `?actor=${encodeURIComponent(actor)}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...p.items.map((e) => e.id));
      cursor = p.next_cursor;
    } while (cursor);
    assert.deepEqual(
      seen,
      all.items.map((e) => e.id),
    );
    assert.ok(seen.length > 3);
  });

  test('from and to bound the events; a range in the future is empty', async () => {
    const now = new Date();
    const all = await events(a.key, '?limit=200');
    assert.equal((await events(a.key, `?from=${encodeURIComponent(new Date(now.getTime() + 60_000).toISOString())}`)).items.length, 0);
    const until = await events(
      a.key,
      `?from=2000-01-01&to=${encodeURIComponent(new Date(now.getTime() + 60_000).toISOString())}&limit=200`,
    );
    assert.equal(until.items.length, all.items.length);
    assert.equal((await events(a.key, '?to=2000-01-01')).items.length, 0);
  });

  test('invalid filters are VALIDATION_FAILED, never a 500', async () => {
    for (const q of [
      'bunker_id=nope',
      'action=Exec%20Run',
      'from=yesterday',
      'from=2025-02-30',
      'to=2025-13-01T00:00:00Z',
      'from=2025-05-02&to=2025-05-01',
      'limit=0',
      'limit=201',
      'limit=x',
      'cursor=garbage',
      `cursor=${Buffer.from('|x').toString('base64url')}`,
      'tenant_id=x',
      'unknown=1',
    ]) {
      const res = await call(a.key, 'GET', `/audit-events?${q}`);
      assert.equal(res.statusCode, 400, `${q}: ${res.body}`);
      assert.equal(res.json().error.code, 'VALIDATION_FAILED', q);
    }
  });

  test('reading the trail needs scaibunker:audit:read (tenant admins hold it); scaibunker:read is not enough', async () => {
    const reader = await tenantWithKey(ctx.controller, 'audit-reader', ['scaibunker:read', 'scaibunker:execute', 'scaibunker:create']);
    const res = await call(reader.key, 'GET', '/audit-events');
    assert.equal(res.statusCode, 403);
    assert.equal(res.json().error.code, 'PERMISSION_DENIED');
    const admin = await tenantWithKey(ctx.controller, 'audit-admin', ['scaibunker:admin:tenant']);
    assert.equal((await call(admin.key, 'GET', '/audit-events')).statusCode, 200);
  });
});
