/**
 * Bunker snapshots, worker side, against the real providers (crun; QEMU when this host can run
 * microVMs) and a temp-dir snapshot storage behind the ControllerLink: a bunker's writable layer
 * is archived, stored, and laid back under a new bunker byte for byte; every failure path
 * (corrupt, missing, mismatched, too big, storage failing mid-stream, paused/unknown/concurrent)
 * leaves nothing behind and the source bunker running.
 *
 *   node --import tsx --test --test-concurrency=1 packages/worker/test/snapshots/snapshots.test.ts
 *
 * Needs root and the `minimal` image. Everything lives under a throwaway /tmp dir; the after
 * hook destroys every bunker and removes it, even when a test fails.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { constants as zlibConst, zstdCompressSync } from 'node:zlib';
import { newId } from '@scaibunker/core';
import { Worker } from '../../src/daemon/Worker.js';
import { ContainerProvider } from '../../src/providers/container/ContainerProvider.js';
import { HostMounts } from '../../src/providers/container/HostMounts.js';
import { MicrovmProvider } from '../../src/providers/microvm/MicrovmProvider.js';
import type { Provider } from '../../src/providers/Provider.js';
import type { ControllerLink, Heartbeat, SnapshotRef, SpawnRequest, WorkerErrorCode } from '../../src/WorkerApi.js';
import { WorkerError } from '../../src/WorkerApi.js';
import { type CatalogEntry, isRoot, microvmSkipReason, minimalImage } from '../providers/support.js';
import { DirSnapshotStore } from './support.js';

const TEST = { timeout: 240_000 };
const MICROVM_SKIP = microvmSkipReason();

class SnapshotLink implements ControllerLink {
  constructor(readonly store: DirSnapshotStore) {}
  async heartbeat(_hb: Heartbeat) {
    return { ok: true, heartbeat_interval_s: 3600, unknown_bunkers: [] };
  }
  async putAuditBatch(): Promise<void> {}
  async imagePeers() {
    return [];
  }
  async openImage(sha256: string): Promise<never> {
    throw new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is not in storage`);
  }
  putSnapshot = (id: string, archive: import('node:stream').Readable) => this.store.putSnapshot(id, archive);
  openSnapshot = (id: string) => this.store.openSnapshot(id);
}

async function errorOf(p: Promise<unknown>): Promise<WorkerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkerError, `expected a WorkerError, got ${String((err as Error)?.stack ?? err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

async function code(p: Promise<unknown>): Promise<WorkerErrorCode> {
  return (await errorOf(p)).code;
}

function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Every path of the bunker's / (its own mounts pruned) with type, mode, owner, links, size, mtime (not dirs), link target, content hash. */
const LISTING = [
  'find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /tmp -o -path /.scaibunker -o -path /lost+found',
  '-o -path /etc/machine-id -o -path /etc/hostname \\) -prune -o -print | sort | while read -r f; do',
  'if [ -L "$f" ]; then t="-> $(readlink "$f")"; elif [ -f "$f" ]; then t=$(sha256sum < "$f" | cut -c1-64); else t=-; fi;',
  'if [ -d "$f" ] && [ ! -L "$f" ]; then m=-; else m=$(stat -c %Y "$f"); fi;',
  'echo "$f $(stat -c "%A %u:%g %h %s" "$f") $m $t"; done',
].join(' ');

/** Files of every kind a writable layer holds, plus a deletion (whiteout) and a replaced image dir (opaque). */
const WRITE_LAYER = [
  'set -e',
  'mkdir -p /data/sub /data/private',
  'echo hello > /data/sub/a',
  'chmod 640 /data/sub/a',
  'chown 1234:5678 /data/sub/a',
  'chmod 700 /data/private',
  'chown 42:43 /data/private',
  'ln /data/sub/a /data/hard',
  'ln -s ../data/sub/a /data/sym',
  'ln -s /nowhere /data/dangling',
  'printf "#!/bin/sh\\necho suid\\n" > /data/suid && chmod 4755 /data/suid',
  'mkfifo /data/fifo',
  'touch -d "2001-02-03 04:05:06" /data/sub/a',
  'head -c 20971520 /dev/urandom > /data/rand',
  'dd if=/dev/zero of=/data/sparse bs=1 count=1 seek=8388607 2>/dev/null',
  'rm /etc/profile',
  'rm -rf /usr/sbin && mkdir /usr/sbin && echo only > /usr/sbin/only',
  'echo changed >> /etc/hosts',
  'sync',
].join('\n');

describe('bunker snapshots (worker side)', { skip: isRoot ? false : 'needs root', timeout: 900_000 }, () => {
  let tmp = '';
  let image: CatalogEntry;
  let store: DirSnapshotStore;
  let worker: Worker;
  let container: ContainerProvider;
  let microvm: MicrovmProvider | undefined;
  const created = new Set<string>();

  const providers = (): Provider[] => [container, ...(microvm ? [microvm] : [])];

  function request(over: Partial<SpawnRequest> = {}): SpawnRequest {
    const bunkerId = over.bunkerId ?? newId('bk');
    created.add(bunkerId);
    return {
      bunkerId,
      imageSha256: image.sha256,
      isolation: 'container',
      cpuMillicores: 1000,
      memoryMb: 256,
      diskMb: 64,
      networkProfile: 'isolated',
      hostname: 'snap',
      ...over,
    };
  }

  async function sh(id: string, script: string, timeoutMs = 60_000): Promise<string> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const r = await worker.exec(
      id,
      { argv: ['/bin/sh', '-c', script], timeoutMs },
      { onStdout: (c) => void out.push(c), onStderr: (c) => void err.push(c) },
    );
    assert.equal(r.exitCode, 0, `${script.slice(0, 80)}…: ${Buffer.concat(err).toString()}`);
    return Buffer.concat(out).toString();
  }

  /** Nothing of a bunker left: no dir, no mount, no restore temp file, not tracked. */
  async function assertNothingLeft(id: string) {
    assert.equal(existsSync(container.bunkerDir(id)), false, 'no container dir');
    if (microvm) assert.equal(existsSync(microvm.paths(id).dir), false, 'no VM dir');
    assert.deepEqual(await HostMounts.mountsUnder(container.bunkerDir(id)), [], 'no mounts');
    for (const d of container.cgroupDirs(id)) assert.equal(existsSync(d), false, `cgroup ${d} removed`);
    const restores = existsSync(worker.restoresDir) ? readdirSync(worker.restoresDir) : [];
    assert.deepEqual(restores, [], 'no restore temp file');
    const hb = await worker.buildHeartbeat();
    assert.equal(
      hb.bunkers.some((b) => b.id === id),
      false,
      'not tracked',
    );
  }

  /** Stores `bytes` as a snapshot object directly (for corrupt-archive cases). */
  function storeRaw(bytes: Buffer, format: SnapshotRef['format'] = 'container-tar'): SnapshotRef {
    const snapshotId = `sn_raw${randomBytes(6).toString('hex')}`;
    writeFileSync(store.path(snapshotId), bytes);
    return { snapshotId, sha256: sha256(bytes), sizeBytes: bytes.length, format };
  }

  before(
    async () => {
      image = minimalImage();
      tmp = await mkdtemp('/tmp/sbs-');
      mkdirSync(join(tmp, 'store'));
      store = new DirSnapshotStore(join(tmp, 'store'));
      container = new ContainerProvider({ dataDir: join(tmp, 'p'), keepIdleImages: false });
      if (!MICROVM_SKIP)
        microvm = new MicrovmProvider({ dataDir: join(tmp, 'p'), snapshots: 'manual', logger: { info: () => {}, warn: () => {} } });
      worker = new Worker({
        dataDir: join(tmp, 'w'),
        imageDir: process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images',
        providers: providers(),
        controller: new SnapshotLink(store),
        name: 'snapshot-test',
        url: '',
        logger: { info: () => {}, warn: (m) => console.error(`[worker] ${m}`) },
      });
      await worker.start();
    },
    { timeout: 300_000 },
  );

  after(
    async () => {
      await worker?.stop().catch(() => {});
      for (const p of providers()) {
        const again = p instanceof ContainerProvider ? new ContainerProvider({ dataDir: join(tmp, 'p'), keepIdleImages: false }) : p;
        await again.init().catch(() => {});
        const ids = new Set([...created, ...(await again.list().catch(() => [])).map((b) => b.id)]);
        for (const id of ids) await again.destroy(id).catch((err) => console.error(`cleanup ${id}:`, err));
        if (again instanceof ContainerProvider) {
          await again.unmountIdleImages().catch(() => {});
          again.close();
        }
        await p.shutdown().catch(() => {});
      }
      if ((await HostMounts.mountsUnder(tmp)).length === 0) await rm(tmp, { recursive: true, force: true });
      else console.error(`[snapshots] mounts left under ${tmp}: not removing it`);
    },
    { timeout: 120_000 },
  );

  test('container: the writable layer comes back byte for byte (whiteout, opaque dir, links, modes, owners, 20 MB)', TEST, async () => {
    const a = request();
    await worker.spawn(a);
    await sh(a.bunkerId, WRITE_LAYER);
    const listing = await sh(a.bunkerId, LISTING);
    assert.match(listing, /\/data\/rand /);
    const t0 = performance.now();
    const snap = await worker.snapshot(a.bunkerId, { snapshotId: `sn_c${randomBytes(6).toString('hex')}` });
    const tSnap = performance.now() - t0;
    assert.equal(snap.format, 'container-tar');
    const stored = readFileSync(store.path(snap.snapshotId));
    assert.equal(snap.sizeBytes, stored.length);
    assert.equal(snap.sha256, sha256(stored));
    assert.equal(await container.isPaused(a.bunkerId), false, 'thawed after the snapshot');
    assert.equal(await sh(a.bunkerId, 'echo alive'), 'alive\n');
    await worker.destroy(a.bunkerId);

    const b = request({ restore: snap });
    const t1 = performance.now();
    await worker.spawn(b);
    const tRestore = performance.now() - t1;
    const restored = await sh(b.bunkerId, LISTING);
    assert.equal(restored, listing);
    assert.equal(await sh(b.bunkerId, '[ ! -e /etc/profile ] && ls /usr/sbin && /data/suid && cat /data/sub/a'), 'only\nsuid\nhello\n');
    // whiteouts and the opaque dir are in the upper dir as overlay wrote them
    const upper = join(container.bunkerDir(b.bunkerId), 'upper', 'u');
    assert.equal(existsSync(join(upper, 'etc', 'profile')), true, 'the whiteout is in the upper dir');
    assert.deepEqual(readdirSync(join(tmp, 'w', 'restores')), [], 'the unpacked archive was removed');
    console.log(`[snapshots] container: ${snap.sizeBytes} bytes stored in ${tSnap.toFixed(0)} ms, restored in ${tRestore.toFixed(0)} ms`);
    await worker.destroy(b.bunkerId);
  });

  test('snapshot refuses unknown, paused and already-snapshotting bunkers; the bunker runs on', TEST, async () => {
    assert.equal(await code(worker.snapshot(newId('bk'), { snapshotId: 'sn_nobody' })), 'BUNKER_NOT_FOUND');
    const a = request();
    await worker.spawn(a);
    await sh(a.bunkerId, 'head -c 4194304 /dev/urandom > /root/r');
    await worker.pause(a.bunkerId);
    assert.equal(await code(worker.snapshot(a.bunkerId, { snapshotId: 'sn_paused' })), 'INVALID_STATE');
    await worker.resume(a.bunkerId);
    const first = worker.snapshot(a.bunkerId, { snapshotId: 'sn_first' });
    assert.equal(await code(worker.snapshot(a.bunkerId, { snapshotId: 'sn_second' })), 'INVALID_STATE');
    // a pause asked while the snapshot runs waits for it, so the snapshot's thaw cannot undo it
    const paused = worker.pause(a.bunkerId);
    assert.equal((await first).snapshotId, 'sn_first');
    await paused;
    assert.equal(await container.isPaused(a.bunkerId), true, 'paused after the snapshot finished');
    await worker.resume(a.bunkerId);
    assert.equal(await sh(a.bunkerId, 'echo alive'), 'alive\n');
    assert.equal(existsSync(store.path('sn_second')), false);
    await worker.destroy(a.bunkerId);
  });

  test('storage failing mid-stream: SNAPSHOT_FAILED, nothing stored, the bunker thawed and running', TEST, async () => {
    const a = request();
    await worker.spawn(a);
    await sh(a.bunkerId, 'head -c 8388608 /dev/urandom > /root/r');
    store.failPutAfterBytes = 256 * 1024;
    const err = await errorOf(worker.snapshot(a.bunkerId, { snapshotId: 'sn_failing' }));
    assert.equal(err.code, 'SNAPSHOT_FAILED');
    assert.match(err.message, /storage went away/);
    assert.deepEqual(
      store.list().filter((n) => n.startsWith('sn_failing')),
      [],
      'nothing stored',
    );
    assert.equal(await container.isPaused(a.bunkerId), false, 'thawed');
    assert.equal(await sh(a.bunkerId, 'echo alive'), 'alive\n');
    // and the next snapshot works
    const ok = await worker.snapshot(a.bunkerId, { snapshotId: 'sn_after' });
    assert.ok(ok.sizeBytes > 8_000_000);
    await worker.destroy(a.bunkerId);
  });

  test('destroying a bunker while it is snapshotted aborts the snapshot (nothing stored) and destroys it', TEST, async () => {
    const a = request();
    await worker.spawn(a);
    await sh(a.bunkerId, 'head -c 33554432 /dev/urandom > /root/r');
    const failed = errorOf(worker.snapshot(a.bunkerId, { snapshotId: 'sn_destroyed' }));
    await new Promise((r) => setTimeout(r, 50));
    await worker.destroy(a.bunkerId);
    const err = await failed;
    assert.ok(['SNAPSHOT_FAILED', 'BUNKER_NOT_FOUND'].includes(err.code), err.message);
    assert.deepEqual(
      store.list().filter((n) => n.startsWith('sn_destroyed')),
      [],
    );
    await assertNothingLeft(a.bunkerId);
  });

  test(
    'restore: wrong sha256 or size → SNAPSHOT_CORRUPT, missing → SNAPSHOT_NOT_FOUND, wrong format → SNAPSHOT_CORRUPT; nothing left',
    TEST,
    async () => {
      const a = request();
      await worker.spawn(a);
      await sh(a.bunkerId, 'echo x > /root/x');
      const snap = await worker.snapshot(a.bunkerId, { snapshotId: `sn_v${randomBytes(6).toString('hex')}` });
      await worker.destroy(a.bunkerId);

      const cases: Array<[string, SnapshotRef, WorkerErrorCode]> = [
        ['sha256', { ...snap, sha256: 'f'.repeat(64) }, 'SNAPSHOT_CORRUPT'],
        ['size (shorter)', { ...snap, sizeBytes: snap.sizeBytes - 1 }, 'SNAPSHOT_CORRUPT'],
        ['size (longer)', { ...snap, sizeBytes: snap.sizeBytes + 1 }, 'SNAPSHOT_CORRUPT'],
        ['missing', { ...snap, snapshotId: 'sn_missing' }, 'SNAPSHOT_NOT_FOUND'],
        ['format', { ...snap, format: 'microvm-qcow2' }, 'SNAPSHOT_CORRUPT'],
        ['not zstd', storeRaw(randomBytes(4096)), 'SNAPSHOT_CORRUPT'],
        ['zstd of no tar', storeRaw(zstdCompressSync(randomBytes(100_000))), 'SNAPSHOT_CORRUPT'],
      ];
      for (const [what, ref, want] of cases) {
        const b = request({ restore: ref });
        const err = await errorOf(worker.spawn(b));
        assert.equal(err.code, want, `${what}: ${err.message}`);
        await assertNothingLeft(b.bunkerId);
      }
      // the real one still restores
      const ok = request({ restore: snap });
      await worker.spawn(ok);
      assert.equal(await sh(ok.bunkerId, 'cat /root/x'), 'x\n');
      await worker.destroy(ok.bunkerId);
    },
  );

  test('restore: an archive bigger than the disk fails the spawn cleanly (no space), nothing left', TEST, async () => {
    const a = request({ diskMb: 64 });
    await worker.spawn(a);
    await sh(a.bunkerId, 'head -c 25165824 /dev/urandom > /root/big');
    const snap = await worker.snapshot(a.bunkerId, { snapshotId: `sn_big${randomBytes(6).toString('hex')}` });
    await worker.destroy(a.bunkerId);
    const b = request({ diskMb: 16, restore: snap });
    const err = await errorOf(worker.spawn(b));
    assert.equal(err.code, 'SPAWN_FAILED', err.message);
    assert.match(err.message, /does not fit the bunker's disk/);
    await assertNothingLeft(b.bunkerId);
  });

  describe('microvm', { skip: MICROVM_SKIP }, () => {
    test('the disk delta of a VM started on a memory snapshot comes back byte for byte on a cold boot', TEST, async () => {
      const vm = microvm as MicrovmProvider;
      const shape = {
        imageSha256: image.sha256,
        imagePath: join(process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images', image.file),
        cpus: 1,
        memoryMb: 256,
        diskMb: 128,
      };
      assert.ok(await vm.snapshots.ensure(vm.snapshotKey(shape), shape), 'memory snapshot of the shape');
      const a = request({ isolation: 'microvm', diskMb: 128 });
      await worker.spawn(a);
      const metaA = JSON.parse(readFileSync(vm.paths(a.bunkerId).meta, 'utf8')) as { snapshot: string | null };
      assert.ok(metaA.snapshot, 'the source VM runs on the memory snapshot (overlay → snapshot disk → image)');
      await sh(a.bunkerId, WRITE_LAYER, 180_000);
      const listing = await sh(a.bunkerId, LISTING, 180_000);
      const t0 = performance.now();
      const snap = await worker.snapshot(a.bunkerId, { snapshotId: `sn_m${randomBytes(6).toString('hex')}` });
      const tSnap = performance.now() - t0;
      assert.equal(snap.format, 'microvm-qcow2');
      assert.equal(await vm.isPaused(a.bunkerId), false, 'running after the snapshot');
      assert.equal(await sh(a.bunkerId, 'echo alive'), 'alive\n');
      assert.deepEqual(
        readdirSync(vm.paths(a.bunkerId).dir).filter((n) => n.startsWith('layer-')),
        [],
        'no copy left in the VM dir',
      );
      await worker.destroy(a.bunkerId);

      const b = request({ isolation: 'microvm', diskMb: 128, restore: snap });
      const t1 = performance.now();
      await worker.spawn(b);
      const tRestore = performance.now() - t1;
      const metaB = JSON.parse(readFileSync(vm.paths(b.bunkerId).meta, 'utf8')) as { snapshot: string | null };
      assert.equal(metaB.snapshot, null, 'a restored VM boots cold');
      assert.equal(await sh(b.bunkerId, LISTING, 180_000), listing);
      assert.equal(await sh(b.bunkerId, '[ ! -e /etc/profile ] && ls /usr/sbin && cat /data/sub/a'), 'only\nhello\n');
      console.log(
        `[snapshots] microvm: ${snap.sizeBytes} bytes stored in ${tSnap.toFixed(0)} ms, restored (cold boot) in ${tRestore.toFixed(0)} ms`,
      );
      await worker.destroy(b.bunkerId);

      // a container's archive is no disk delta, and the other way round
      for (const [isolation, ref] of [
        ['microvm', storeRaw(zstdCompressSync(Buffer.alloc(4096)), 'container-tar')],
        [
          'microvm',
          storeRaw(zstdCompressSync(randomBytes(65536), { params: { [zlibConst.ZSTD_c_compressionLevel]: 1 } }), 'microvm-qcow2'),
        ],
        ['container', snap],
      ] as const) {
        const c = request({ isolation, diskMb: 128, restore: ref });
        const err = await errorOf(worker.spawn(c));
        assert.equal(err.code, 'SNAPSHOT_CORRUPT', err.message);
        await assertNothingLeft(c.bunkerId);
      }
    });
  });
});
