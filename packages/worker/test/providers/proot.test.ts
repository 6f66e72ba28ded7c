/**
 * ProotProvider's own promises beyond the conformance suite: no network (the nonet seccomp
 * filter) and only the isolated profile, a uid of its own per bunker without capabilities,
 * no snapshots, a bad image failing cleanly, and a destroy that cannot finish reporting what is
 * left (the shared BunkerLifecycle semantics) and finishing when called again.
 *
 *   node --import tsx --test packages/worker/test/providers/proot.test.ts
 *
 * Needs root, proot and the `minimal` image (built by the suite, cached). Every bunker lives
 * under a throwaway /tmp/sbp-XXXXXX dataDir that the after hook destroys, unmounts and removes
 * even when a test fails.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { AgentClient } from '../../src/agent/AgentClient.js';
import { BunkerDestroyError } from '../../src/providers/BunkerDestroyError.js';
import { HostMounts } from '../../src/providers/container/HostMounts.js';
import { AUTO_ISOLATIONS, createProviders, parseIsolations } from '../../src/providers/createProviders.js';
import { type BunkerSpec, ProviderError } from '../../src/providers/Provider.js';
import { ProotProvider } from '../../src/providers/proot/ProotProvider.js';
import { type CatalogEntry, minimalImage, pidAlive, prootSkipReason, sh, specFactory } from './support.js';

/** A host process's real uid and effective capabilities, from /proc. */
function hostIdentity(pid: number): { uid: number; capEff: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]),
    capEff: BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? 'ffff'}`),
  };
}

describe('ProotProvider', { skip: prootSkipReason() }, () => {
  let dataDir = '';
  let provider: ProotProvider;
  let image: CatalogEntry;
  let server: Server | undefined;
  const clients: AgentClient[] = [];
  const spawned = new Set<string>();

  const spec = specFactory('pt', () => image, { cpuMillicores: 500, memoryMb: 128, diskMb: 64 });

  async function spawn(over: Partial<BunkerSpec> = {}) {
    const s = spec(over);
    spawned.add(s.id);
    const b = await provider.spawn(s);
    const c = await AgentClient.connect(b.agentSocketPath, { awaitHello: true });
    clients.push(c);
    return { b, c, s };
  }

  async function assertNothingOf(id: string) {
    assert.equal(existsSync(provider.bunkerDir(id)), false, 'no bunker dir');
    for (const d of provider.cgroupDirs(id)) assert.equal(existsSync(d), false, `no cgroup ${d}`);
  }

  before(async () => {
    image = minimalImage();
    dataDir = mkdtempSync('/tmp/sbp-');
    provider = new ProotProvider({ dataDir });
    await provider.init();
  });

  after(async () => {
    for (const c of clients) c.close();
    server?.close();
    for (const id of spawned) await provider.destroy(id).catch(() => {});
    const again = new ProotProvider({ dataDir });
    for (const b of await again.list().catch(() => [])) await again.destroy(b.id).catch(() => {});
    await provider.shutdown();
    await again.shutdown();
    if ((await HostMounts.mountsUnder(dataDir)).length === 0) rmSync(dataDir, { recursive: true, force: true });
    else console.error(`[proot.test] mounts left under ${dataDir}: not removing it`);
  });

  test('--isolations: proot only when named (never by auto); a worker naming it gets a ProotProvider', async () => {
    assert.equal(AUTO_ISOLATIONS.includes('proot'), false);
    assert.deepEqual(parseIsolations('container, proot'), ['container', 'proot']);
    assert.throws(() => parseIsolations('container,gvisor'), /a list of container, microvm, proot/);
    const dir = mkdtempSync('/tmp/sbp-');
    const providers = await createProviders({ dataDir: dir, isolations: 'proot', log: () => {} });
    try {
      assert.deepEqual(
        providers.map((p) => [p.isolation, p instanceof ProotProvider]),
        [['proot', true]],
      );
      assert.equal((await providers[0]?.health())?.ok, true);
    } finally {
      for (const p of providers) await p.shutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('init refuses a data dir its bunker uids cannot reach, naming the directory to open', async () => {
    const closed = mkdtempSync('/tmp/sbp-'); // 0700, as the operator left it
    try {
      const p = new ProotProvider({ dataDir: join(closed, 'worker') });
      await assert.rejects(
        p.init(),
        (e: unknown) => e instanceof ProviderError && e.code === 'RUNTIME_UNAVAILABLE' && e.message.includes(`cannot traverse ${closed} `),
      );
      await p.shutdown();
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  });

  test('health names proot and says plainly that there is no kernel isolation', async () => {
    const h = await provider.health();
    assert.equal(h.ok, true, JSON.stringify(h));
    assert.match(h.runtime, /^proot \d+\.\d+\.\d+$/);
    assert.match(h.details ?? '', /NO kernel isolation/);
  });

  test('no network: a TCP connect to a host listener fails with EAFNOSUPPORT and never arrives', async () => {
    let accepted = 0;
    server = createServer((sock) => {
      accepted++;
      sock.destroy();
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const { c } = await spawn();
    const r = await sh(c, `nc 127.0.0.1 ${port} </dev/null; echo rc=$?; nc -u 127.0.0.1 ${port} </dev/null; echo rc=$?`);
    assert.match(r.err + r.out, /Address family not supported/);
    assert.doesNotMatch(r.out, /rc=0/);
    assert.equal(accepted, 0, 'nothing reached the host listener');
    // the agent's own AF_UNIX channel is unaffected: this very exec came over it
    assert.equal((await sh(c, 'echo ok')).out, 'ok\n');
  });

  test('network profiles other than isolated are refused before anything is created', async () => {
    const s = spec({ networkProfile: 'unrestricted' });
    await assert.rejects(
      provider.spawn(s),
      (e: unknown) => e instanceof ProviderError && e.code === 'SPAWN_FAILED' && /network profile unrestricted/.test(e.message),
    );
    await assertNothingOf(s.id);
  });

  test('each bunker runs as a uid of its own without capabilities, root only inside; one cannot read the other', async () => {
    const one = await spawn();
    const two = await spawn();
    const a = hostIdentity(one.b.pid);
    const b = hostIdentity(two.b.pid);
    assert.notEqual(a.uid, 0);
    assert.notEqual(b.uid, 0);
    assert.notEqual(a.uid, b.uid, 'a uid per bunker');
    assert.equal(a.capEff, 0n, 'no effective capabilities');
    assert.equal((await sh(one.c, 'id -u')).out, '0\n', 'proot -0: root inside');
    const peek = await sh(one.c, `cat /proc/${two.b.pid}/environ >/dev/null; echo rc=$?`);
    assert.match(peek.out, /rc=1/, JSON.stringify(peek));
    assert.match(peek.err, /Permission denied/);
  });

  test('the image copy is charged to memory_mb: a memory_mb that cannot hold it is LIMIT_INVALID, and nothing is left', async () => {
    const s = spec({ memoryMb: 16 });
    await assert.rejects(
      provider.spawn(s),
      (e: unknown) => e instanceof ProviderError && e.code === 'LIMIT_INVALID' && /cannot hold this image/.test(e.message),
    );
    await assertNothingOf(s.id);
    const { s: fits } = await spawn({ memoryMb: 48 });
    const mem = provider.cgroupDir(fits.id, 'memory') as string;
    const charged = Number(readFileSync(join(mem, provider.cgroupLayout === 'v2' ? 'memory.current' : 'memory.usage_in_bytes'), 'utf8'));
    const stat = readFileSync(join(mem, 'memory.stat'), 'utf8');
    const shmem = Number(/^(?:shmem|total_shmem) (\d+)$/m.exec(stat)?.[1] ?? 0);
    assert.ok(shmem >= 1048576, `the tmpfs copy (shmem ${shmem}) is charged to the bunker's cgroup (usage ${charged})`);
  });

  test('destroy leaves none of the files proot keeps in /tmp, also when paused with processes running', async () => {
    const { b, c, s } = await spawn();
    await sh(c, 'sleep 1000 >/dev/null 2>&1 & sleep 1000 >/dev/null 2>&1 & echo started');
    const prootPid = Number(readFileSync(join(provider.bunkerDir(s.id), 'proot.pid'), 'utf8'));
    const { uid } = JSON.parse(readFileSync(join(provider.bunkerDir(s.id), 'bunker.json'), 'utf8')) as { uid: number };
    // this proot's: its pid (a reused pid of an earlier proot are told apart by the bunker's uid)
    const temps = () =>
      readdirSync('/tmp').filter(
        (n) =>
          (n.startsWith(`proot-${prootPid}-`) || n.startsWith(`prooted-${prootPid}-`)) &&
          statSync(join('/tmp', n), { throwIfNoEntry: false })?.uid === uid,
      );
    assert.ok(temps().length > 0, 'proot keeps its loader in /tmp while it runs');
    await provider.pause(s.id);
    await provider.destroy(s.id);
    assert.deepEqual(temps(), []);
    assert.equal(pidAlive(b.pid), false, 'the agent is gone');
    await assertNothingOf(s.id);
  });

  test('a destroy that cannot remove a file still runs the steps before it, rejects DESTROY_INCOMPLETE naming that step, and finishes when called again', async (t) => {
    const { b, s } = await spawn();
    const dir = provider.bunkerDir(s.id);
    const meta = join(dir, 'bunker.json');
    // an immutable file: not even root can unlink it, so the files step cannot remove the bunker's dir
    const pinned = spawnSync('chattr', ['+i', meta], { encoding: 'utf8' });
    if (pinned.status !== 0) return t.skip(`chattr +i does not take on ${dir}: ${pinned.stderr.trim()}`);
    try {
      const err = await provider.destroy(s.id).then(
        () => assert.fail('destroy should have failed'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BunkerDestroyError, String(err));
      assert.equal(err.code, 'DESTROY_INCOMPLETE');
      assert.deepEqual(
        err.failures.map((f) => f.step),
        ['files'],
      );
      assert.equal(pidAlive(b.pid), false, 'the agent is gone');
      for (const d of provider.cgroupDirs(s.id)) assert.equal(existsSync(d), false, `no cgroup ${d}`);
      assert.deepEqual(await HostMounts.mountsUnder(dir), [], 'the disk tmpfs is unmounted');
      assert.equal(existsSync(meta), true, 'what the failed step could not remove is still there');
    } finally {
      spawnSync('chattr', ['-i', meta]);
    }
    await provider.destroy(s.id);
    await assertNothingOf(s.id);
  });

  test('no snapshots: a restore is SNAPSHOT_CORRUPT before anything is made, writeLayer is RUNTIME_UNAVAILABLE', async () => {
    const archive = join(dataDir, 'layer.tar');
    writeFileSync(archive, '');
    const s = spec({ restore: { archivePath: archive, format: 'container-tar' } });
    await assert.rejects(provider.spawn(s), (e: unknown) => e instanceof ProviderError && e.code === 'SNAPSHOT_CORRUPT');
    await assertNothingOf(s.id);
    rmSync(archive);
    const { s: live } = await spawn();
    await assert.rejects(
      provider.writeLayer(live.id, new PassThrough()),
      (e: unknown) => e instanceof ProviderError && e.code === 'RUNTIME_UNAVAILABLE',
    );
    await assert.rejects(
      provider.writeLayer('no-such-bunker', new PassThrough()),
      (e: unknown) => e instanceof ProviderError && e.code === 'NOT_FOUND',
    );
  });

  test("an image file that is no ext4 fails the spawn with debugfs's complaint and leaves nothing", async () => {
    const bogus = join(dataDir, 'bogus.ext4');
    writeFileSync(bogus, randomBytes(1 << 20));
    const s = spec({ imageSha256: randomBytes(32).toString('hex'), imagePath: bogus });
    await assert.rejects(
      provider.spawn(s),
      (e: unknown) => e instanceof ProviderError && e.code === 'SPAWN_FAILED' && /extracting image/.test(e.message) && !!e.details,
    );
    await assertNothingOf(s.id);
    assert.equal(existsSync(join(provider.baseDir, 'images', s.imageSha256)), false, 'no half-extracted tree kept');
    rmSync(bogus);
  });
});
