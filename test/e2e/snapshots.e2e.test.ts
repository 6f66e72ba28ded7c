/**
 * Snapshots for real: `scaibunker controller` on an S3 blob store (s3rver) and two
 * `scaibunker worker` processes running crun bunkers (and a QEMU microVM where the workers
 * offer one). A bunker's files survive snapshot → terminate → restore byte for byte, a restore
 * lands on the other worker once the first is drained, forks are independent, a passivated
 * bunker is restored by its next exec, an archive altered in storage fails its restore, and a
 * worker killed mid-snapshot leaves no ready snapshot and its bunker running once it is back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { type S3rverServer, startS3rver } from '../../packages/controller/test/helpers/s3rver.js';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  eventually,
  FAST_INTERVALS,
  freePort,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
  tempDataDir,
} from './harness.js';

const BUCKET = 'snapshots-e2e';
const SMALL = { image: 'minimal', cpu_millicores: 250, memory_mb: 64, disk_mb: 128 } as const;
/** Files a test writes, and the listing that proves them: path, mode, size and sha256 of each. */
const WRITE = [
  'mkdir -p /srv/data/sub /srv/gone',
  'head -c 3000000 /dev/urandom > /srv/data/random.bin',
  'echo hello > /srv/data/sub/hello.txt',
  'chmod 0640 /srv/data/sub/hello.txt',
  'ln -s sub/hello.txt /srv/data/link',
  'ln /srv/data/random.bin /srv/data/hard.bin',
  'rm -f /etc/motd /etc/issue',
  'echo x > /srv/gone/x && rm -rf /srv/gone',
].join(' && ');
const LISTING =
  'cd /srv/data && find . | sort | while read f; do if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; elif [ -f "$f" ]; then echo "$f $(stat -c \'%a %s %h\' "$f") $(sha256sum < "$f" | cut -c1-64)"; else echo "$f/"; fi; done; ls /etc/motd /etc/issue /srv/gone 2>&1 | sort';

describe('snapshots (controller on S3 + two workers)', () => {
  const data = tempDataDir();
  const token = randomBytes(24).toString('hex');
  let s3: S3rverServer;
  let controller: ServerProcess;
  const workers = new Map<string, { proc: ServerProcess; args: string[] }>();
  let alice: ScaiBunkerClient;
  let bob: ScaiBunkerClient;
  let admin: ScaiBunkerClient;
  const created: Bunker[] = [];

  const startWorker = async (name: string, port: number) => {
    const args = [
      'worker',
      '--controller',
      controller.url,
      '--port',
      String(port),
      '--data-dir',
      join(data.dir, name),
      '--image-dir',
      IMAGE_DIR,
      '--heartbeat-interval-ms',
      '200',
    ];
    const proc = await ServerProcess.start(args, { SCAIBUNKER_WORKER_TOKEN: token }, /worker (wk_\w+) at/);
    const id = /worker (wk_\w+) at/.exec(proc.output())?.[1] as string;
    workers.set(id, { proc, args });
    return id;
  };

  before(async () => {
    s3 = await startS3rver();
    const client = new S3Client({
      region: 'us-east-1',
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
    client.destroy();
    controller = await ServerProcess.start(
      [
        'controller',
        '--port',
        String(await freePort()),
        '--data-dir',
        join(data.dir, 'c'),
        '--image-dir',
        IMAGE_DIR,
        // A killed worker is unreachable for the test's whole run, never lost.
        '--worker-lost-after',
        '10m',
        ...FAST_INTERVALS,
      ],
      {
        SCAIBUNKER_WORKER_TOKEN: token,
        SCAIBUNKER_BLOB_STORE: `s3://${BUCKET}/deploy/?endpoint=${encodeURIComponent(s3.endpoint)}&force_path_style=1`,
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
      },
    );
    await startWorker('w1', await freePort());
    await startWorker('w2', await freePort());
    admin = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: adminKeyOf(join(data.dir, 'c')) });
    const keyFor = async (name: string) => {
      const t = await admin.admin.createTenant(name);
      return (await admin.admin.createApiKey(t.id, `${name}-key`, ['scaibunker:admin:tenant'])).key;
    };
    alice = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: await keyFor('alice') });
    bob = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: await keyFor('bob') });
    await eventually('both workers online', async () =>
      (await admin.workers.list()).filter((w) => w.state === 'online').length === 2 ? true : undefined,
    );
  });

  afterEach(async () => {
    for (const b of created.splice(0)) await b.terminate().catch(() => undefined);
    for (const id of workers.keys()) await admin.workers.resume(id).catch(() => undefined);
  });

  after(async () => {
    for (const w of workers.values()) await w.proc.kill();
    await controller?.kill();
    await s3?.stop();
    const orphans = [...(await destroyLeftoverBunkers(join(data.dir, 'w1'))), ...(await destroyLeftoverBunkers(join(data.dir, 'w2')))];
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  const track = (...bunkers: Bunker[]) => {
    created.push(...bunkers);
    return bunkers[0] as Bunker;
  };
  const run = async (b: Bunker, command: string) => {
    const r = await b.exec(command, { timeoutS: 60 });
    assert.equal(r.exit_code, 0, `${command}: ${r.stderr}`);
    return r.stdout;
  };

  test('snapshot → terminate → restore: the files come back byte for byte, deletions stay deleted', async () => {
    const source = track(await Bunker.create(SMALL, alice));
    await run(source, WRITE);
    const before = await run(source, LISTING);
    assert.match(before, /random\.bin 644 3000000 2 [0-9a-f]{64}/);
    assert.match(before, /No such file or directory/);
    const snap = await source.snapshot({ name: 'e2e' });
    assert.equal(snap.state, 'ready');
    assert.ok(snap.size_bytes > 3_000_000 * 0.9, `the random file is in the archive (${snap.size_bytes} bytes)`);
    assert.equal((await source.refresh()).state, 'running');
    await source.terminate();
    // The archive is in S3, whole.
    const objects = readdirSync(join(s3.dir, BUCKET, 'deploy', 'scaibunker', 'snapshots'));
    assert.ok(objects.some((f) => f.startsWith(snap.id)));

    const restored = track(await Bunker.create({ snapshot_id: snap.id, cpu_millicores: 250, memory_mb: 64 }, alice));
    assert.equal(restored.info.snapshot_id, snap.id);
    assert.equal(restored.info.disk_mb, SMALL.disk_mb);
    assert.equal(await run(restored, LISTING), before);
    // Another tenant sees none of it.
    await assert.rejects(bob.snapshots.get(snap.id), /SNAPSHOT_NOT_FOUND|no snapshot/);
    await assert.rejects(Bunker.create({ snapshot_id: snap.id }, bob), /SNAPSHOT_NOT_FOUND|no snapshot/);
  });

  test('a restore lands on the other worker once the first is drained', async () => {
    const source = track(await Bunker.create(SMALL, alice));
    await run(source, WRITE);
    const before = await run(source, LISTING);
    const snap = await source.snapshot();
    await admin.workers.drain(source.info.worker_id as string);
    const moved = track(await Bunker.create({ snapshot_id: snap.id, ...SMALL }, alice));
    assert.notEqual(moved.info.worker_id, source.info.worker_id);
    assert.equal(await run(moved, LISTING), before);
  });

  test('fork: independent bunkers from one snapshot', async () => {
    const source = track(await Bunker.create(SMALL, alice));
    await run(source, 'mkdir -p /srv && echo origin > /srv/who');
    const forks = await source.fork(3);
    track(...forks);
    assert.equal(new Set(forks.map((f) => f.id)).size, 3);
    for (const [i, f] of forks.entries()) {
      assert.equal((await run(f, 'cat /srv/who')).trim(), 'origin');
      await run(f, `echo fork-${i} > /srv/who`);
    }
    for (const [i, f] of forks.entries()) assert.equal((await run(f, 'cat /srv/who')).trim(), `fork-${i}`);
    assert.equal((await run(source, 'cat /srv/who')).trim(), 'origin');
  });

  test('passivation releases the worker; the next exec resumes the bunker with its files (auto_resume)', async () => {
    const b = track(await Bunker.create({ ...SMALL, lifecycle: 'persistent', auto_resume: true }, alice));
    await run(b, 'mkdir -p /srv && echo kept > /srv/state');
    const workerId = b.info.worker_id as string;
    const p = await b.pause({ passivate: true });
    assert.equal(p.state, 'paused');
    assert.equal(p.passivated, true);
    assert.equal(p.worker_id, null);
    // Its worker no longer runs it: the worker's own bunker directory is gone.
    const workerDir = join(data.dir, [...workers.entries()].findIndex(([id]) => id === workerId) === 0 ? 'w1' : 'w2');
    await eventually('the worker dropped the passivated bunker', async () =>
      mountsUnder(workerDir).some((m) => m.includes(b.id)) ? undefined : true,
    );
    assert.equal((await run(b, 'cat /srv/state')).trim(), 'kept');
    const resumed = await b.refresh();
    assert.equal(resumed.state, 'running');
    assert.equal(resumed.passivated, false);
    assert.equal(resumed.snapshot_id, p.snapshot_id);
  });

  test('an archive altered in storage fails its restore with SNAPSHOT_CORRUPT and leaves nothing running', async () => {
    const source = track(await Bunker.create(SMALL, alice));
    await run(source, 'mkdir -p /srv && echo original > /srv/f');
    const snap = await source.snapshot();
    const dir = join(s3.dir, BUCKET, 'deploy', 'scaibunker', 'snapshots');
    const file = join(dir, readdirSync(dir).find((f) => f.startsWith(snap.id) && f.endsWith('._S3rver_object')) as string);
    const bytes = readFileSync(file);
    bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
    writeFileSync(file, bytes);
    await assert.rejects(Bunker.create({ snapshot_id: snap.id, ...SMALL }, alice), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'SNAPSHOT_CORRUPT', err.message);
      return true;
    });
    const failed = (await alice.transport.json('get', '/v1/modules/scaibunker/bunkers', { query: { state: 'failed' } })).items.find(
      (x) => x.snapshot_id === snap.id,
    );
    assert.ok(failed, 'the refused create left a failed row');
    assert.match(failed.termination_reason ?? '', /sha256|corrupt/i);
  });

  test('a worker killed mid-snapshot: the snapshot fails, nothing ready is kept, the bunker runs on once the worker is back', async () => {
    const b = track(await Bunker.create({ ...SMALL, disk_mb: 512, memory_mb: 512 }, alice));
    await run(b, 'mkdir -p /srv && head -c 200000000 /dev/urandom > /srv/big && echo alive > /srv/small');
    const workerId = b.info.worker_id as string;
    const w = workers.get(workerId) as { proc: ServerProcess; args: string[] };
    const pending = await b.snapshot({ wait: false });
    await w.proc.kill('SIGKILL');
    const failed = await eventually('the snapshot failed', async () => {
      const s = await alice.snapshots.get(pending.id);
      return s.state === 'failed' ? s : s.state === 'ready' ? s : undefined;
    });
    // The kill may come after the archive was stored: then the snapshot is whole (ready), never partial.
    if (failed.state === 'failed') assert.match(failed.error ?? '', /WORKER_UNAVAILABLE|SNAPSHOT_FAILED|socket|closed|unreachable/i);
    assert.equal((await b.refresh()).state, 'running');
    workers.set(workerId, {
      proc: await ServerProcess.start(w.args, { SCAIBUNKER_WORKER_TOKEN: token }, /worker (wk_\w+) at/),
      args: w.args,
    });
    await eventually('the worker is back', async () => ((await b.refresh()).worker_reachable ? true : undefined));
    assert.equal((await run(b, 'cat /srv/small')).trim(), 'alive');
  });

  test('a microVM bunker: its disk changes come back byte for byte', async (t) => {
    const offered = (await admin.workers.list()).some((w) => w.isolations.includes('microvm'));
    if (!offered) return t.skip('no worker offers microvm isolation on this host');
    const vm = { image: 'minimal', isolation: 'microvm', cpu_millicores: 1000, memory_mb: 256, disk_mb: 256 } as const;
    const source = track(await Bunker.create(vm, alice));
    await run(source, 'mkdir -p /srv && head -c 2000000 /dev/urandom > /srv/r.bin && rm -f /etc/motd');
    const before = await run(source, 'sha256sum /srv/r.bin; ls /etc/motd 2>&1 | sort');
    const snap = await source.snapshot();
    assert.equal(snap.isolation, 'microvm');
    await source.terminate();
    const restored = track(await Bunker.create({ snapshot_id: snap.id, memory_mb: 256 }, alice));
    assert.equal(restored.info.isolation, 'microvm');
    assert.equal(await run(restored, 'sha256sum /srv/r.bin; ls /etc/motd 2>&1 | sort'), before);
  });
});
