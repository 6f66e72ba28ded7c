/** `audit_events` listing on every dialect: filters, newest first, keyset paging, one tenant only. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '@scaibunker/core';
import { Store } from '../../src/store/Store.js';
import type { AuditEventRow } from '../../src/store/schema.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';

function event(tenantId: string, at: string, patch: Partial<AuditEventRow> = {}): AuditEventRow {
  return {
    id: newId('ev'),
    tenant_id: tenantId,
    actor: 'key:a',
    action: 'exec.run',
    target_type: 'exec',
    target_id: newId('ex'),
    bunker_id: null,
    details: '{}',
    created_at: at,
    ...patch,
  };
}

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();

for (const dialect of DIALECTS) {
  describe(`audit store on ${dialect.name}`, () => {
    let db: TestDatabase;
    let store: Store;
    const tenantA = newId('tn');
    const tenantB = newId('tn');
    const bunker1 = newId('bk');
    const bunker2 = newId('bk');
    const rowsA: AuditEventRow[] = [];

    before(async () => {
      db = await dialect.create();
      store = await Store.open(db.url);
      // 10 events of A in minutes 0..9 (bunker1 for even minutes, bunker2 for odd; actor b from
      // minute 6), and B's events at the same times, with A's bunker ids and actor.
      for (let m = 0; m < 10; m++) {
        rowsA.push(
          event(tenantA, at(m), {
            bunker_id: m % 2 === 0 ? bunker1 : bunker2,
            action: m % 3 === 0 ? 'file.write' : 'exec.run',
            actor: m >= 6 ? 'key:b' : 'key:a',
          }),
        );
      }
      const rowsB = rowsA.map((r) => event(tenantB, r.created_at, { bunker_id: r.bunker_id, action: r.action, actor: r.actor }));
      // One statement for several rows, and a retried batch skips the rows already there.
      await store.audit.insertMany([...rowsA.slice(0, 5), ...rowsB]);
      await store.audit.insertMany(rowsA);
    });
    after(async () => {
      await store?.close();
      await db?.cleanup();
    });

    const ids = (rows: AuditEventRow[]) => rows.map((r) => r.id);
    const newestFirst = (rows: AuditEventRow[]) => ids([...rows].reverse());

    test('a tenant sees only its own events, newest first', async () => {
      const page = await store.audit.list({ tenantId: tenantA, limit: 50 });
      assert.deepEqual(ids(page.items), newestFirst(rowsA));
      assert.equal(page.nextCursor, null);
      const b = await store.audit.list({ tenantId: tenantB, bunkerId: bunker1, limit: 50 });
      assert.ok(b.items.every((r) => r.tenant_id === tenantB));
      assert.equal(b.items.length, 5);
      assert.deepEqual(await store.audit.list({ tenantId: newId('tn'), limit: 50 }), { items: [], nextCursor: null });
    });

    test('filters: bunker, action, actor, from (inclusive), to (exclusive), combined', async () => {
      const only = (pred: (r: AuditEventRow) => boolean) => newestFirst(rowsA.filter(pred));
      const list = async (f: Record<string, string>) => ids((await store.audit.list({ tenantId: tenantA, limit: 50, ...f })).items);
      assert.deepEqual(
        await list({ bunkerId: bunker2 }),
        only((r) => r.bunker_id === bunker2),
      );
      assert.deepEqual(
        await list({ action: 'file.write' }),
        only((r) => r.action === 'file.write'),
      );
      assert.deepEqual(
        await list({ actor: 'key:b' }),
        only((r) => r.actor === 'key:b'),
      );
      assert.deepEqual(
        await list({ from: at(3), to: at(7) }),
        only((r) => r.created_at >= at(3) && r.created_at < at(7)),
      );
      assert.deepEqual(
        await list({ bunkerId: bunker1, action: 'file.write', actor: 'key:b' }),
        only((r) => r.bunker_id === bunker1 && r.action === 'file.write' && r.actor === 'key:b'),
      );
      assert.equal((await list({ bunkerId: bunker1, action: 'file.write', actor: 'key:b' })).length, 1, 'minute 6 only');
      assert.deepEqual(await list({ action: 'file.delete' }), []);
    });

    test('cursor pages cover every event once, in order, with the filters kept', async () => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.audit.list({ tenantId: tenantA, bunkerId: bunker1, limit: 2, cursor });
        assert.ok(page.items.length <= 2);
        seen.push(...ids(page.items));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor);
      assert.deepEqual(seen, newestFirst(rowsA.filter((r) => r.bunker_id === bunker1)));
      assert.equal(pages, 3);
    });

    test('events at the same instant page by id, none lost or repeated', async () => {
      const tenant = newId('tn');
      const same = Array.from({ length: 7 }, () => event(tenant, at(30)));
      await store.audit.insertMany(same);
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.audit.list({ tenantId: tenant, limit: 3, cursor });
        seen.push(...ids(page.items));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      assert.deepEqual(seen, ids(same).sort().reverse());
    });

    test("another tenant's cursor still answers only the caller's events; a forged cursor is VALIDATION_FAILED", async () => {
      const a = await store.audit.list({ tenantId: tenantA, limit: 2 });
      const b = await store.audit.list({ tenantId: tenantB, limit: 50, cursor: a.nextCursor as string });
      assert.ok(b.items.length > 0 && b.items.every((r) => r.tenant_id === tenantB));
      await assert.rejects(store.audit.list({ tenantId: tenantA, limit: 2, cursor: 'not-a-cursor' }), { code: 'VALIDATION_FAILED' });
    });

    test('a batch of any size in one statement; NUL and lone surrogates are stored as U+FFFD, not dropped', async () => {
      const tenant = newId('tn');
      const many = Array.from({ length: 600 }, (_, i) => event(tenant, at(40), { details: JSON.stringify({ i }) }));
      const odd = event(tenant, at(41), { target_id: 'a\0b', details: '{"command":"echo \ud800"}' });
      await store.audit.insertMany([...many, odd]);
      const all = (await store.audit.list({ tenantId: tenant, limit: 1000 })).items;
      assert.equal(all.length, 601);
      const got = all.find((r) => r.id === odd.id);
      assert.deepEqual([got?.target_id, got?.details], ['a\uFFFDb', '{"command":"echo \uFFFD"}']);
      assert.equal(all.find((r) => r.id === many[599]?.id)?.details, '{"i":599}');
    });
  });
}
