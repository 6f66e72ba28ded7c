import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '@scaibunker/core';
import { Kysely, sql } from 'kysely';
import { Migrator } from 'kysely/migration';
import { InCodeMigrations } from '../../src/store/migrations.js';
import { dialectFor } from '../../src/store/openDatabase.js';
import { Store } from '../../src/store/Store.js';
import type { BunkerRow, ExecLogRow } from '../../src/store/schema.js';
import { DIALECTS, type TestDatabase } from '../helpers/databases.js';
import { execLogRow } from '../helpers/rows.js';

function bunkerRow(tenantId: string, createdAt: string, patch: Partial<BunkerRow> = {}): BunkerRow {
  return {
    id: newId('bk'),
    tenant_id: tenantId,
    created_by: 'key:test',
    image: 'minimal',
    image_sha256: 'a'.repeat(64),
    lifecycle: 'ephemeral',
    state: 'pending',
    termination_reason: null,
    worker_id: null,
    isolation: 'container',
    cpu_millicores: 500,
    memory_mb: 256,
    disk_mb: 512,
    gpu_count: 0,
    network_profile: 'isolated',
    network_allowlist: null,
    bandwidth_mbit: null,
    interfaces: null,
    idle_timeout_s: 300,
    max_lifetime_s: 3600,
    env: '{}',
    metadata: '{}',
    created_at: createdAt,
    started_at: null,
    last_activity_at: createdAt,
    ended_at: null,
    updated_at: createdAt,
    quota_charges: null,
    snapshot_id: null,
    recovered_from: null,
    auto_resume: 0,
    passivated: 0,
    ...patch,
  };
}

for (const dialect of DIALECTS) {
  describe(`store on ${dialect.name}`, () => {
    let db: TestDatabase;
    let store: Store;
    const tenantA = newId('tn');
    const tenantB = newId('tn');

    before(async () => {
      db = await dialect.create();
      store = await Store.open(db.url);
      const now = new Date().toISOString();
      await store.tenants.insert({ id: tenantA, name: 'a', created_at: now });
      await store.tenants.insert({ id: tenantB, name: 'b', created_at: now });
    });
    after(async () => {
      await store?.close();
      await db?.cleanup();
    });

    test('migrations are idempotent: reopening an existing database works', async () => {
      const again = await Store.open(db.url);
      assert.equal((await again.tenants.get(tenantA))?.name, 'a');
      await again.close();
    });

    test('ids are case-sensitive and compared byte for byte (MySQL: a binary no-pad collation)', async () => {
      const lower = `${newId('tn')}_abc`;
      const upper = lower.toUpperCase();
      const now = new Date().toISOString();
      await store.tenants.insert({ id: lower, name: 'lower', created_at: now });
      await store.tenants.insert({ id: upper, name: 'upper', created_at: now });
      assert.equal((await store.tenants.get(lower))?.name, 'lower');
      assert.equal((await store.tenants.get(upper))?.name, 'upper');
      assert.equal(await store.tenants.get(`${lower} `), undefined, 'a trailing space is another id');
      // Names and JSON keep any character (utf8mb4, not MySQL's 3-byte utf8).
      await store.tenants.insert({ id: newId('tn'), name: 'émoji 🚀', created_at: now });
      assert.equal((await store.tenants.findByName('émoji 🚀'))?.name, 'émoji 🚀');
      assert.equal(await store.tenants.findByName('EMOJI 🚀'), undefined);
    });

    test('api keys are found by hash only while not revoked', async () => {
      const id = newId('ak');
      await store.tenants.insertApiKey({
        id,
        tenant_id: tenantA,
        user_id: null,
        identity_user_id: null,
        identity_groups: '[]',
        name: 'k',
        key_hash: 'h'.repeat(64),
        permissions: '["scaibunker:read"]',
        created_at: new Date().toISOString(),
        revoked_at: null,
      });
      assert.equal((await store.tenants.findApiKeyByHash('h'.repeat(64)))?.id, id);
      assert.equal(await store.tenants.findApiKeyByHash('x'.repeat(64)), undefined);
      await store.db.updateTable('api_keys').set({ revoked_at: new Date().toISOString() }).where('id', '=', id).execute();
      assert.equal(await store.tenants.findApiKeyByHash('h'.repeat(64)), undefined);
    });

    test('0003_quotas upgrades a database with rows: keys get no identity and no groups, bunkers 0 GPUs and no charge', async () => {
      const old = await dialect.create();
      const { dialect: d } = dialectFor(old.url);
      const raw = new Kysely<any>({ dialect: d });
      try {
        const migrator = new Migrator({ db: raw, provider: new InCodeMigrations() });
        assert.equal((await migrator.migrateTo('0002_job_leases')).error, undefined);
        const now = new Date().toISOString();
        const tenant = newId('tn');
        await raw.insertInto('tenants').values({ id: tenant, name: 'old', created_at: now }).execute();
        const key = {
          id: newId('ak'),
          tenant_id: tenant,
          user_id: null,
          name: 'k',
          key_hash: 'o'.repeat(64),
          permissions: '[]',
          created_at: now,
        };
        await raw
          .insertInto('api_keys')
          .values({ ...key, revoked_at: null })
          .execute();
        const {
          gpu_count: _g,
          quota_charges: _q,
          network_allowlist: _a,
          bandwidth_mbit: _b,
          interfaces: _i,
          snapshot_id: _s,
          recovered_from: _r,
          auto_resume: _ar,
          passivated: _p,
          ...oldBunker
        } = bunkerRow(tenant, now);
        await raw.insertInto('bunkers').values(oldBunker).execute();
        assert.equal((await migrator.migrateToLatest()).error, undefined);
        const k = await raw.selectFrom('api_keys').selectAll().where('id', '=', key.id).executeTakeFirstOrThrow();
        assert.equal(k.identity_user_id, null);
        assert.equal(k.identity_groups, '[]');
        const b = await raw.selectFrom('bunkers').selectAll().where('id', '=', oldBunker.id).executeTakeFirstOrThrow();
        assert.equal(Number(b.gpu_count), 0);
        assert.equal(b.quota_charges, null);
      } finally {
        await raw.destroy();
        await old.cleanup();
      }
    });

    test('0005_network_profiles upgrades a database with rows: bunkers get no allowlist nor bandwidth, workers offer isolated', async () => {
      const old = await dialect.create();
      const { dialect: d } = dialectFor(old.url);
      const raw = new Kysely<any>({ dialect: d });
      try {
        const migrator = new Migrator({ db: raw, provider: new InCodeMigrations() });
        assert.equal((await migrator.migrateTo('0004_usage')).error, undefined);
        const now = new Date().toISOString();
        const tenant = newId('tn');
        await raw.insertInto('tenants').values({ id: tenant, name: 'old', created_at: now }).execute();
        const worker = newId('wk');
        await raw
          .insertInto('workers')
          .values({
            id: worker,
            name: 'w',
            url: '',
            state: 'online',
            isolations: '["container"]',
            capacity_cpu_millicores: 1000,
            capacity_memory_mb: 1024,
            capacity_disk_mb: 1024,
            cached_images: '[]',
            last_heartbeat_at: now,
            created_at: now,
          })
          .execute();
        const {
          network_allowlist: _a,
          bandwidth_mbit: _b,
          interfaces: _i,
          snapshot_id: _s,
          recovered_from: _r,
          auto_resume: _ar,
          passivated: _p,
          ...oldBunker
        } = bunkerRow(tenant, now);
        await raw.insertInto('bunkers').values(oldBunker).execute();
        assert.equal((await migrator.migrateToLatest()).error, undefined);
        const b = await raw.selectFrom('bunkers').selectAll().where('id', '=', oldBunker.id).executeTakeFirstOrThrow();
        assert.equal(b.network_allowlist, null);
        assert.equal(b.bandwidth_mbit, null);
        // 0012_snapshots: an old bunker was not restored, is not passivated, does not auto-resume.
        assert.equal(b.snapshot_id, null);
        assert.equal(Number(b.passivated), 0);
        assert.equal(Number(b.auto_resume), 0);
        const w = await raw.selectFrom('workers').selectAll().where('id', '=', worker).executeTakeFirstOrThrow();
        assert.deepEqual(JSON.parse(w.network_profiles), ['isolated']);
      } finally {
        await raw.destroy();
        await old.cleanup();
      }
    });

    test('a bunker keeps its network allowlist and bandwidth cap', async () => {
      const row = bunkerRow(newId('tn'), new Date().toISOString(), {
        network_profile: 'allowlisted',
        network_allowlist: JSON.stringify(['pypi.org', '*.example.com']),
        bandwidth_mbit: 250,
      });
      await store.tenants.insert({ id: row.tenant_id, name: 'net', created_at: row.created_at });
      await store.bunkers.insert(row, {});
      const got = await store.bunkers.get(row.tenant_id, row.id);
      assert.equal(got?.network_profile, 'allowlisted');
      assert.deepEqual(JSON.parse(got?.network_allowlist ?? 'null'), ['pypi.org', '*.example.com']);
      assert.equal(got?.bandwidth_mbit, 250);
    });

    test('api keys keep the identity (user id, groups) they were created with', async () => {
      const id = newId('ak');
      await store.tenants.insertApiKey({
        id,
        tenant_id: tenantA,
        user_id: null,
        identity_user_id: 'alice',
        identity_groups: '["ml"]',
        name: 'alice',
        key_hash: 'i'.repeat(64),
        permissions: '["scaibunker:read"]',
        created_at: new Date().toISOString(),
        revoked_at: null,
      });
      const row = await store.tenants.findApiKeyByHash('i'.repeat(64));
      assert.equal(row?.identity_user_id, 'alice');
      assert.equal(row?.identity_groups, '["ml"]');
    });

    test('quota profiles: names unique per tenant, assignments unique per profile, applicable by user and groups', async () => {
      const now = new Date().toISOString();
      const profile = (tenant_id: string, name: string) => ({
        id: newId('qp'),
        tenant_id,
        name,
        max_bunkers: 3,
        max_cpu_millicores: null,
        max_memory_mb: 1_000_000_000,
        max_disk_mb: null,
        max_gpu_count: null,
        max_snapshot_bytes: null,
        allowed_lifecycles: null,
        allowed_images: '["minimal"]',
        allowed_network_profiles: null,
        created_at: now,
        updated_at: now,
      });
      const p1 = profile(tenantA, 'small');
      assert.equal(await store.quotas.insertProfile(p1), true);
      assert.equal(await store.quotas.insertProfile(profile(tenantA, 'small')), false, 'same name, same tenant');
      assert.equal(await store.quotas.insertProfile(profile(tenantB, 'small')), true, 'same name, another tenant');
      assert.equal((await store.quotas.getProfile(p1.id, tenantB)) === undefined, true);
      assert.equal((await store.quotas.getProfile(p1.id, null))?.max_memory_mb, 1_000_000_000);
      const assignment = (kind: 'user' | 'group' | 'group_per_user', subject: string) => ({
        id: newId('qa'),
        tenant_id: tenantA,
        profile_id: p1.id,
        kind,
        subject,
        created_at: now,
      });
      assert.equal(await store.quotas.insertAssignment(assignment('user', 'alice')), true);
      assert.equal(await store.quotas.insertAssignment(assignment('user', 'alice')), false);
      assert.equal(await store.quotas.insertAssignment(assignment('group', 'ml')), true);
      assert.equal(await store.quotas.insertAssignment(assignment('group_per_user', 'ops')), true);
      assert.equal(await store.quotas.insertAssignment(assignment('user', 'ml')), true);
      const kinds = async (user: string, groups: string[]) =>
        (await store.quotas.applicable(tenantA, user, groups)).map((a) => `${a.assignment.kind}:${a.assignment.subject}`).sort();
      assert.deepEqual(await kinds('alice', []), ['user:alice']);
      assert.deepEqual(await kinds('bob', ['ml', 'ops']), ['group:ml', 'group_per_user:ops']);
      assert.deepEqual(await kinds('ml', []), ['user:ml'], 'a user named like a group is only that user');
      assert.deepEqual(await store.quotas.applicable(tenantB, 'alice', ['ml']), []);
      await store.quotas.deleteProfile(p1.id);
      assert.deepEqual(await kinds('alice', ['ml']), []);
    });

    test('bunkers are tenant-scoped: another tenant reads nothing', async () => {
      const row = bunkerRow(tenantA, new Date().toISOString());
      await store.bunkers.insert(row, {});
      assert.equal((await store.bunkers.get(tenantA, row.id))?.id, row.id);
      assert.equal(await store.bunkers.get(tenantB, row.id), undefined);
      const listB = await store.bunkers.list({ tenantId: tenantB, limit: 100 });
      assert.ok(!listB.items.some((b) => b.id === row.id));
    });

    test('list paginates newest first with a cursor, filters by state and labels', async () => {
      const t = newId('tn');
      await store.tenants.insert({ id: t, name: 'pager', created_at: new Date().toISOString() });
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) {
        // Same timestamp for some rows: the id breaks ties, so no row is skipped or repeated.
        const at = new Date(Date.UTC(2026, 0, 1, 0, 0, Math.floor(i / 2))).toISOString();
        const row = bunkerRow(t, at, { state: i % 2 ? 'running' : 'pending' });
        await store.bunkers.insert(row, { team: i < 3 ? 'red' : 'blue', n: String(i) });
        ids.push(row.id);
      }
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await store.bunkers.list({ tenantId: t, limit: 3, ...(cursor ? { cursor } : {}) });
        assert.ok(page.items.length <= 3);
        seen.push(...page.items.map((b) => b.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      assert.equal(seen.length, 7);
      assert.deepEqual(new Set(seen), new Set(ids));
      const running = await store.bunkers.list({ tenantId: t, state: 'running', limit: 50 });
      assert.equal(running.items.length, 3);
      const red = await store.bunkers.list({ tenantId: t, labels: [['team', 'red']], limit: 50 });
      assert.equal(red.items.length, 3);
      const redOne = await store.bunkers.list({
        tenantId: t,
        labels: [
          ['team', 'red'],
          ['n', '1'],
        ],
        limit: 50,
      });
      assert.deepEqual(
        redOne.items.map((b) => b.id),
        [ids[1]],
      );
    });

    test('job leases: one holder at a time, renewable, taken over once lapsed, released on stop', async () => {
      const t0 = new Date('2030-01-01T00:00:00Z');
      const later = (ms: number) => new Date(t0.getTime() + ms);
      assert.equal(await store.leases.claim('sweep', 'ctl_a', 1000, t0), true);
      assert.equal(await store.leases.claim('sweep', 'ctl_b', 1000, later(10)), false, 'held by a');
      assert.equal(await store.leases.claim('sweep', 'ctl_a', 1000, later(500)), true, 'a renews');
      assert.equal(await store.leases.claim('sweep', 'ctl_b', 1000, later(1400)), false, 'the renewal moved the expiry');
      assert.equal(await store.leases.claim('sweep', 'ctl_b', 1000, later(1600)), true, 'lapsed: b takes over');
      assert.equal(await store.leases.claim('sweep', 'ctl_a', 1000, later(1700)), false);
      assert.equal(await store.leases.claim('monitor', 'ctl_a', 1000, later(1700)), true, 'leases are per job');
      await store.leases.release('sweep', 'ctl_b');
      assert.equal(await store.leases.claim('sweep', 'ctl_a', 1000, later(1800)), true, 'released: free at once');
    });

    test('two tickers on one database: each tick runs on one of them only', async () => {
      const { Ticker } = await import('../../src/jobs/Ticker.js');
      let runs = 0;
      const job = async () => {
        runs++;
      };
      const a = new Ticker(`job-${dialect.name}`, 60_000, job, { store: store.leases, holder: 'ctl_a' });
      const b = new Ticker(`job-${dialect.name}`, 60_000, job, { store: store.leases, holder: 'ctl_b' });
      for (let i = 0; i < 5; i++) {
        const ran = await Promise.all([a.tick(), b.tick()]);
        assert.equal(ran.filter(Boolean).length, 1, `tick ${i} ran exactly once`);
      }
      assert.equal(runs, 5);
      await a.stop();
      await b.stop();
    });

    test('job leases: concurrent claims from two controllers (two connection pools) have one winner per round', async () => {
      const other = await Store.open(db.url);
      try {
        const t0 = new Date('2031-01-01T00:00:00Z');
        for (let round = 0; round < 10; round++) {
          // Each round starts after the previous lease lapsed; eight holders race for it.
          const at = new Date(t0.getTime() + round * 10_000);
          const claims = await Promise.all(
            Array.from({ length: 8 }, (_, i) => (i % 2 ? other : store).leases.claim('race', `ctl_${round}_${i}`, 5000, at)),
          );
          assert.equal(claims.filter(Boolean).length, 1, `round ${round}: exactly one holder`);
        }
      } finally {
        await other.close();
      }
    });

    test('a tick that outlasts its lease keeps it: the holder renews while the job runs', async () => {
      const { Ticker } = await import('../../src/jobs/Ticker.js');
      let release!: () => void;
      const blocked = new Promise<void>((r) => {
        release = r;
      });
      let runs = 0;
      const job = async () => {
        runs++;
        await blocked;
      };
      const a = new Ticker(`long-${dialect.name}`, 100, job, { store: store.leases, holder: 'ctl_a' });
      const b = new Ticker(`long-${dialect.name}`, 100, job, { store: store.leases, holder: 'ctl_b' });
      const first = a.tick();
      // Well past the 150 ms lease: b still cannot take the job while a's tick runs.
      for (let i = 0; i < 6; i++) {
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(await b.tick(), false, `b stays out (${(i + 1) * 100} ms)`);
      }
      release();
      assert.equal(await first, true);
      assert.equal(runs, 1);
      await a.stop();
      assert.equal(await b.tick(), true, 'released on stop: b takes over');
      await b.stop();
    });

    test('named locks: two controllers never hold one at the same time', async (t) => {
      if (dialect.name === 'sqlite') {
        t.skip('SQLite serves one controller: its locks are per process (the scheduler serializes in-process)');
        return;
      }
      const other = await Store.open(db.url);
      try {
        let inside = 0;
        let most = 0;
        const section = async () => {
          inside++;
          most = Math.max(most, inside);
          await new Promise((r) => setTimeout(r, 5));
          inside--;
        };
        await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? other : store).locks.with('test', section)));
        assert.equal(most, 1, 'one holder at a time');
        // Different names do not block each other.
        let release: (() => void) | undefined;
        let acquired!: () => void;
        const holding = new Promise<void>((r) => (acquired = r));
        const held = store.locks.with(
          'held',
          () =>
            new Promise<void>((r) => {
              release = r;
              acquired();
            }),
        );
        try {
          // The holder must have the lock before the others ask (the race a loaded machine loses).
          await holding;
          await other.locks.with('free', async () => undefined);
          // And a holder that never lets go turns the wait into an error, not a hang.
          await assert.rejects(
            other.locks.with('held', async () => undefined, 200),
            /lock timeout/,
          );
        } finally {
          // Even when an assertion failed: a holder left waiting keeps a pool connection, and
          // closing the store would then wait for it forever.
          release?.();
          await held;
        }
      } finally {
        await other.close();
      }
    });

    test('exec logs: upsertMany inserts new rows and completes existing ones in one statement', async () => {
      const row = bunkerRow(tenantA, new Date().toISOString(), { state: 'running' });
      await store.bunkers.insert(row, {});
      const log = (id: string, patch: Record<string, unknown> = {}) => ({
        id,
        bunker_id: row.id,
        tenant_id: tenantA,
        caller: 'key:x',
        command: 'true',
        exit_code: null,
        signal: null,
        timed_out: 0,
        duration_ms: null,
        stdout_preview: '',
        stderr_preview: '',
        truncated: 0,
        full_output_ref: null,
        started_at: new Date().toISOString(),
        finished_at: null,
        output_store: 'inline',
        output_bytes: 0,
        state: null,
        tag: null,
        background: 0,
        pid: null,
        end_reason: null,
        pty: 0,
        ...patch,
      });
      const [a, b] = [newId('ex'), newId('ex')];
      await store.execLogs.upsertMany([log(a)]);
      await store.execLogs.upsertMany([log(a, { exit_code: 3, duration_ms: 7, stdout_preview: 'out', finished_at: 'x' }), log(b)]);
      const got = await store.execLogs.get(tenantA, row.id, a);
      assert.equal(got?.exit_code, 3);
      assert.equal(got?.stdout_preview, 'out');
      assert.equal(got?.command, 'true');
      assert.equal((await store.execLogs.get(tenantA, row.id, b))?.exit_code, null);
      // The statements are compiled once per batch size: a second batch of the same size binds its own rows.
      const c = newId('ex');
      await store.execLogs.upsertMany([log(b, { exit_code: 0, finished_at: 'y', stderr_preview: 'e' }), log(c, { command: 'ls' })]);
      assert.equal((await store.execLogs.get(tenantA, row.id, b))?.stderr_preview, 'e');
      assert.equal((await store.execLogs.get(tenantA, row.id, c))?.command, 'ls');
      // A finished row is final: a late start (or completion) of it changes nothing.
      await store.execLogs.upsertMany([log(a, { exit_code: 9, stdout_preview: 'late' })]);
      const final = await store.execLogs.get(tenantA, row.id, a);
      assert.deepEqual([final?.exit_code, final?.stdout_preview, final?.finished_at], [3, 'out', 'x']);
    });

    test('exec logs: a batch of any size in one statement; NUL and lone surrogates are stored as U+FFFD', async () => {
      const bunker = bunkerRow(tenantA, new Date().toISOString(), { state: 'running' });
      await store.bunkers.insert(bunker, {});
      const log = (id: string, patch: Partial<ExecLogRow> = {}): ExecLogRow => ({
        ...execLogRow(id, { bunker_id: bunker.id, tenant_id: tenantA, started_at: new Date().toISOString() }),
        ...patch,
      });
      // 40 rows: past the 10 whose parameters a per-size statement may hold prepared on PostgreSQL.
      const ids = Array.from({ length: 40 }, () => newId('ex'));
      await store.execLogs.upsertMany(ids.map((id, i) => log(id, { exit_code: i, duration_ms: i * 2, output_bytes: 2 ** 40 + i })));
      for (const [i, id] of ids.entries()) {
        const got = await store.execLogs.get(tenantA, bunker.id, id);
        assert.deepEqual([got?.exit_code, got?.duration_ms, Number(got?.output_bytes)], [i, i * 2, 2 ** 40 + i]);
      }
      const odd = newId('ex');
      await store.execLogs.upsertMany([
        log(odd, { command: 'echo \ud800 x', stdout_preview: 'a\0b', stderr_preview: 'ok', finished_at: 'y' }),
      ]);
      const got = await store.execLogs.get(tenantA, bunker.id, odd);
      assert.deepEqual([got?.command, got?.stdout_preview, got?.stderr_preview], ['echo \uFFFD x', 'a\uFFFDb', 'ok']);
    });

    test('0015_exec_log_partial_indexes upgrades a database with rows: stored output and unfinished background execs are still found', async () => {
      const old = await dialect.create();
      const { dialect: d } = dialectFor(old.url);
      const raw = new Kysely<any>({ dialect: d });
      let upgraded: Store | undefined;
      try {
        const migrator = new Migrator({ db: raw, provider: new InCodeMigrations() });
        assert.equal((await migrator.migrateTo('0014_tenant_availability_groups')).error, undefined);
        const tenant = newId('tn');
        await raw.insertInto('tenants').values({ id: tenant, name: 'old', created_at: new Date().toISOString() }).execute();
        const bunker = bunkerRow(tenant, new Date().toISOString(), { state: 'running' });
        await raw.insertInto('bunkers').values(bunker).execute();
        const log = (patch: Partial<ExecLogRow>): ExecLogRow => ({
          ...execLogRow(newId('ex'), { bunker_id: bunker.id, tenant_id: tenant, started_at: '2000-01-01T00:00:00.000Z' }),
          ...patch,
        });
        const stored = log({ output_bytes: 100, finished_at: 'x' });
        const inline = log({ output_bytes: 0, finished_at: 'x' });
        const running = log({ background: 1, finished_at: null });
        const ended = log({ background: 1, finished_at: 'x' });
        const blocking = log({ background: 0, finished_at: null });
        await raw.insertInto('exec_logs').values([stored, inline, running, ended, blocking]).execute();
        assert.equal((await migrator.migrateToLatest()).error, undefined);

        upgraded = await Store.open(old.url);
        const logs = upgraded.execLogs;
        assert.equal(await logs.storedOutputBytes(tenant), 100);
        assert.deepEqual(
          (await logs.withOutputBefore('2000-01-02', 10)).map((r) => r.id),
          [stored.id],
        );
        assert.deepEqual(
          (await logs.unfinishedBackground(10)).map((r) => r.id),
          [running.id],
        );
        // A row leaves a partial index when an update takes it out of the predicate; a new one enters.
        const later = log({ background: 1, finished_at: null, output_bytes: 7 });
        await logs.upsertMany([{ ...running, finished_at: 'y' }, later]);
        assert.deepEqual(
          (await logs.unfinishedBackground(10)).map((r) => r.id),
          [later.id],
        );
        await logs.markOutputExpired([stored.id]);
        assert.equal(await logs.storedOutputBytes(tenant), 7);

        const definitions = {
          sqlite: sql<{ d: string }>`select sql as d from sqlite_master where name like 'exec_logs_%'`,
          postgres: sql<{ d: string }>`select indexdef as d from pg_indexes where indexname like 'exec_logs_%'`,
          mariadb: undefined,
        }[dialect.name];
        if (definitions) {
          const partial = (await definitions.execute(raw)).rows.map((r) => r.d).filter((def) => / where /i.test(def));
          assert.equal(partial.length, 3, `three partial exec-log indexes: ${partial.join('; ')}`);
        }
      } finally {
        await upgraded?.close();
        await raw.destroy();
        await old.cleanup();
      }
    });

    test('getByIds reads any number of ids, in chunks', async () => {
      const at = new Date().toISOString();
      const rows = Array.from({ length: 3 }, () => bunkerRow(tenantA, at));
      for (const r of rows) await store.bunkers.insert(r, {});
      const ids = [...rows.map((r) => r.id), ...Array.from({ length: 1200 }, () => newId('bk'))];
      const found = await store.bunkers.getByIds(ids);
      assert.deepEqual(found.map((r) => r.id).sort(), rows.map((r) => r.id).sort());
    });

    test('transition is compare-and-set: only one of two racing moves wins', async () => {
      const row = bunkerRow(tenantA, new Date().toISOString(), { state: 'running' });
      await store.bunkers.insert(row, {});
      const [a, b] = await Promise.all([
        store.bunkers.transition(row.id, ['running'], 'terminated', { termination_reason: 'user' }),
        store.bunkers.transition(row.id, ['running'], 'failed', { termination_reason: 'worker_lost' }),
      ]);
      assert.equal([a, b].filter(Boolean).length, 1);
      const final = await store.bunkers.getById(row.id);
      assert.ok(final?.state === 'terminated' || final?.state === 'failed');
      assert.equal(await store.bunkers.transition(row.id, ['running'], 'paused'), undefined);
    });

    test('allocations sum active bunkers per worker only', async () => {
      const wid = newId('wk');
      const now = new Date().toISOString();
      await store.workers.upsertFromHeartbeat({
        id: wid,
        name: 'w',
        url: '',
        state: 'online',
        isolations: '["container"]',
        network_profiles: '["isolated"]',
        capacity_cpu_millicores: 4000,
        capacity_memory_mb: 4096,
        capacity_disk_mb: 10000,
        cached_images: '[]',
        bridges: '[]',
        last_heartbeat_at: now,
        created_at: now,
      });
      await store.bunkers.insert(bunkerRow(tenantA, now, { worker_id: wid, state: 'running' }), {});
      await store.bunkers.insert(bunkerRow(tenantA, now, { worker_id: wid, state: 'paused' }), {});
      await store.bunkers.insert(bunkerRow(tenantA, now, { worker_id: wid, state: 'terminated' }), {});
      const alloc = (await store.bunkers.allocationsByWorker()).get(wid);
      assert.deepEqual(alloc, { cpu: 1000, memory: 512, disk: 1024, count: 2 });
    });

    test('draining survives heartbeats; stale workers go offline', async () => {
      const wid = newId('wk');
      const old = new Date(Date.now() - 3_600_000).toISOString();
      const base = {
        id: wid,
        name: 'w2',
        url: '',
        state: 'online' as const,
        isolations: '["container"]',
        network_profiles: '["isolated"]',
        capacity_cpu_millicores: 1000,
        capacity_memory_mb: 1024,
        capacity_disk_mb: 1024,
        cached_images: '[]',
        bridges: '[]',
        last_heartbeat_at: old,
        created_at: old,
      };
      await store.workers.upsertFromHeartbeat(base);
      await store.workers.setState(wid, 'draining');
      const after = await store.workers.upsertFromHeartbeat(base);
      assert.equal(after.state, 'draining');
      // Compare-and-set on the heartbeat time: a row read before a newer heartbeat is not marked.
      assert.equal(await store.workers.markOffline(wid, new Date(0).toISOString()), false);
      assert.equal(await store.workers.markOffline(wid, old), true);
      assert.equal(await store.workers.markOffline(wid, old), false, 'already offline');
      assert.equal((await store.workers.get(wid))?.state, 'offline');
    });

    test('exec logs page newest first and stay scoped to tenant and bunker', async () => {
      const row = bunkerRow(tenantA, new Date().toISOString(), { state: 'running' });
      await store.bunkers.insert(row, {});
      for (let i = 0; i < 5; i++) {
        await store.execLogs.insert({
          id: newId('ex'),
          bunker_id: row.id,
          tenant_id: tenantA,
          caller: 'key:x',
          command: `echo ${i}`,
          exit_code: 0,
          signal: null,
          timed_out: 0,
          duration_ms: 1,
          stdout_preview: String(i),
          stderr_preview: '',
          truncated: 0,
          full_output_ref: null,
          started_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
          finished_at: null,
          output_store: 'inline',
          output_bytes: 0,
          state: null,
          tag: null,
          background: 0,
          pid: null,
          end_reason: null,
          pty: 0,
        });
      }
      const p1 = await store.execLogs.list(tenantA, row.id, 2);
      assert.deepEqual(
        p1.items.map((l) => l.command),
        ['echo 4', 'echo 3'],
      );
      const p2 = await store.execLogs.list(tenantA, row.id, 10, p1.nextCursor ?? undefined);
      assert.deepEqual(
        p2.items.map((l) => l.command),
        ['echo 2', 'echo 1', 'echo 0'],
      );
      assert.equal(p2.nextCursor, null);
      assert.equal((await store.execLogs.list(tenantB, row.id, 10)).items.length, 0);
    });

    test('platform images are visible to every tenant; tenant images only to their owner', async () => {
      const now = new Date().toISOString();
      await store.images.upsertPlatform({
        id: newId('im'),
        tenant_id: null,
        name: 'minimal',
        scope: 'platform',
        state: 'ready',
        sha256: 'b'.repeat(64),
        size_bytes: 10,
        created_at: now,
      });
      await store.images.upsertPlatform({
        id: newId('im'),
        tenant_id: null,
        name: 'minimal',
        scope: 'platform',
        state: 'ready',
        sha256: 'c'.repeat(64),
        size_bytes: 11,
        created_at: now,
      });
      await store.db
        .insertInto('images')
        .values({
          id: newId('im'),
          tenant_id: tenantA,
          name: 'mine',
          scope: 'tenant',
          state: 'ready',
          sha256: 'd'.repeat(64),
          size_bytes: 1,
          created_at: now,
        })
        .execute();
      assert.equal((await store.images.findVisible(tenantB, 'minimal'))?.sha256, 'c'.repeat(64));
      assert.equal((await store.images.findVisible(tenantA, 'mine'))?.name, 'mine');
      assert.equal(await store.images.findVisible(tenantB, 'mine'), undefined);
      assert.equal((await store.images.listVisible(tenantB)).filter((i) => i.name === 'minimal').length, 1);
    });
  });
}
