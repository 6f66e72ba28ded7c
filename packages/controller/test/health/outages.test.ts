/**
 * Each backing service failing under its client, for real: PostgreSQL connections killed and a
 * server that is not there, Redis killed and restarted empty, s3rver stopped, a local disk that
 * fills. Every failure is an error with its code; none takes the process down (a crash would end
 * this test file).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ApiError, newId } from '@scaibunker/core';
import pg from 'pg';
import { PrivateRedis } from '../../../../test/e2e/cluster.js';
import { eventually } from '../../../../test/e2e/harness.js';
import { GuardedBlobStore } from '../../src/blobs/GuardedBlobStore.js';
import { LocalDirBlobStore } from '../../src/blobs/LocalDirBlobStore.js';
import { S3BlobStore } from '../../src/blobs/S3BlobStore.js';
import { DependencyState } from '../../src/health/DependencyState.js';
import { RedisQuotaCounters } from '../../src/quotas/RedisQuotaCounters.js';
import { Store } from '../../src/store/Store.js';
import { DIALECTS } from '../helpers/databases.js';
import { startS3rver } from '../helpers/s3rver.js';

const withCode = (code: string) => (e: unknown) => e instanceof ApiError && e.code === code;

test('PostgreSQL: connections terminated under the pool cost one failed query at most, never the process', async () => {
  const postgres = DIALECTS.find((d) => d.name === 'postgres');
  assert.ok(postgres);
  const db = await postgres.create();
  const store = await Store.open(db.url);
  try {
    await store.tenants.insert({ id: newId('tn'), name: 'before', created_at: new Date().toISOString() });
    const name = new URL(db.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: process.env.SCAIBUNKER_TEST_PG_URL });
    await admin.connect();
    try {
      // What a restart, a failover or pg_terminate_backend does to every pooled connection.
      const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
      assert.ok(killed.rowCount && killed.rowCount > 0, 'the pool had connections to kill');
    } finally {
      await admin.end();
    }
    await eventually('the store answers again', async () => {
      try {
        await store.ping();
        return true;
      } catch (err) {
        assert.ok(withCode('STORE_UNAVAILABLE')(err), `an outage code, not ${String(err)}`);
        return undefined;
      }
    });
    assert.equal(store.health.available, true);
    await store.tenants.insert({ id: newId('tn'), name: 'after', created_at: new Date().toISOString() });
    assert.ok(await store.tenants.findByName('after'));
  } finally {
    await store.close();
    await db.cleanup();
  }
});

test('PostgreSQL: a server that does not answer fails the open with STORE_UNAVAILABLE', async () => {
  await assert.rejects(Store.open('postgres://scaibunker@127.0.0.1:1/none'), withCode('STORE_UNAVAILABLE'));
});

test('MariaDB: a server that does not answer fails the open with STORE_UNAVAILABLE (the password never in the error)', async () => {
  await assert.rejects(Store.open('mysql://scaibunker:s3cret@127.0.0.1:1/none'), (err: Error) => {
    assert.ok(withCode('STORE_UNAVAILABLE')(err), String(err));
    assert.ok(!err.message.includes('s3cret'));
    return true;
  });
});

test('Redis: killed, every counter call is LIVE_STATE_UNAVAILABLE at once; restarted empty, counters work again', async () => {
  const redis = await PrivateRedis.start();
  const state = new DependencyState('redis', () => undefined);
  let counters: RedisQuotaCounters | undefined;
  try {
    counters = await RedisQuotaCounters.connect(redis.url, { state, log: () => undefined });
    await counters.rebuild([]);
    assert.deepEqual(await counters.tryCharge('bk_1', [{ key: 'k', amount: 1, cap: 5 }]), { status: 'ok' });
    await redis.kill();
    const started = Date.now();
    await assert.rejects(counters.tryCharge('bk_2', [{ key: 'k', amount: 1, cap: 5 }]), withCode('LIVE_STATE_UNAVAILABLE'));
    await assert.rejects(counters.usage(['k']), withCode('LIVE_STATE_UNAVAILABLE'));
    assert.ok(Date.now() - started < 5000, 'answered without waiting out a retry budget');
    assert.equal(state.available, false);
    await redis.startProcess();
    const c = counters;
    await eventually('Redis is back', async () => ((await c.isReady().catch(() => undefined)) === false ? true : undefined));
    assert.equal(state.available, true);
    assert.deepEqual(await c.tryCharge('bk_2', [{ key: 'k', amount: 1, cap: 5 }]), { status: 'not_ready' }, 'empty: rebuild first');
  } finally {
    await counters?.close();
    await redis.kill();
  }
});

test('S3: with s3rver stopped, puts and reads are BLOB_STORE_UNAVAILABLE', async () => {
  const s3 = await startS3rver();
  const state = new DependencyState('blob_store', () => undefined);
  const inner = new S3BlobStore({
    bucket: 'outage',
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  const blobs = new GuardedBlobStore(inner, state);
  try {
    const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
    await inner.client.send(new CreateBucketCommand({ Bucket: 'outage' }));
    await blobs.put('scaibunker/x', Buffer.from('kept'));
    await s3.stop();
    await assert.rejects(blobs.put('scaibunker/y', Buffer.from('lost')), withCode('BLOB_STORE_UNAVAILABLE'));
    await assert.rejects(blobs.get('scaibunker/x'), withCode('BLOB_STORE_UNAVAILABLE'));
    assert.equal(state.available, false);
  } finally {
    inner.destroy();
    await s3.stop();
  }
});

test('a local blob directory that fills: INSUFFICIENT_STORAGE, and no partial file left behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]);
  try {
    const blobs = new GuardedBlobStore(new LocalDirBlobStore(dir), new DependencyState('blob_store', () => undefined));
    await assert.rejects(blobs.put('scaibunker/big', Buffer.alloc(4 * 1024 * 1024, 1)), withCode('INSUFFICIENT_STORAGE'));
    assert.deepEqual(readdirSync(join(dir, 'scaibunker')), [], 'the partial temp file is removed');
    await blobs.put('scaibunker/small', Buffer.from('fits'));
    assert.ok(existsSync(join(dir, 'scaibunker', 'small')));
  } finally {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});
