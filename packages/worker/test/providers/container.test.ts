/**
 * ContainerProvider against the real OCI runtime (crun, runc fallback) on this host.
 *
 *   node --import tsx --test packages/worker/test/providers/container.test.ts
 *
 * Needs root, an OCI runtime and the `minimal` image: the suite runs
 * scripts/build-images.sh minimal itself (cached: < 1 s when nothing changed; the agent is
 * built with `make -C packages/agent` when missing). Image dir: $SCAIBUNKER_IMAGE_DIR or
 * /var/lib/scaibunker/images. SCAIBUNKER_TEST_RUNTIME=runc forces the fallback runtime. Every bunker lives under a throwaway /tmp/sbt-XXXXXX dataDir
 * that the after hooks destroy, unmount and remove even when a test fails.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn as spawnChild } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { AgentClient } from '../../src/agent/AgentClient.js';
import { ContainerProvider } from '../../src/providers/container/ContainerProvider.js';
import { HostMounts } from '../../src/providers/container/HostMounts.js';
import { type BunkerSpec, ProviderError } from '../../src/providers/Provider.js';
import { type CatalogEntry, isRoot, makeImage, minimalImage, pidAlive, sh, specFactory } from './support.js';

/** Force a runtime (crun | runc) for the whole suite; default: the provider's own choice. */
const RUNTIME = process.env.SCAIBUNKER_TEST_RUNTIME as 'crun' | 'runc' | undefined;

describe('ContainerProvider', { skip: isRoot ? false : 'needs root' }, () => {
  let dataDir = '';
  let provider: ContainerProvider;
  let image: CatalogEntry;
  const clients: AgentClient[] = [];
  const spawned = new Set<string>();

  const spec = specFactory('t', () => image, { cpuMillicores: 500, memoryMb: 128, diskMb: 64 });

  async function spawn(over: Partial<BunkerSpec> = {}) {
    const s = spec(over);
    spawned.add(s.id);
    const b = await provider.spawn(s);
    const c = await AgentClient.connect(b.agentSocketPath);
    clients.push(c);
    return { b, c, s };
  }

  async function assertGone(id: string, pid?: number) {
    const dir = provider.bunkerDir(id);
    assert.deepEqual(await HostMounts.mountsUnder(dir), [], 'no mount left under the bunker dir');
    assert.equal(existsSync(dir), false, 'bunker dir removed');
    for (const d of provider.cgroupDirs(id)) assert.equal(existsSync(d), false, `cgroup ${d} removed`);
    if (pid) assert.equal(pidAlive(pid), false, 'agent process gone');
    assert.equal(existsSync(join(provider.stateDir, provider.runtimeName ?? 'crun', id)), false, 'runtime state removed');
  }

  before(async () => {
    image = minimalImage();
    dataDir = mkdtempSync('/tmp/sbt-');
    provider = new ContainerProvider({ dataDir, runtime: RUNTIME });
    await provider.init();
  });

  after(async () => {
    for (const c of clients) c.close();
    const leftovers = new ContainerProvider({ dataDir, runtime: RUNTIME });
    await leftovers.init().catch(() => {});
    for (const id of spawned) await provider.destroy(id).catch(() => {});
    for (const b of await leftovers.list().catch(() => [])) await leftovers.destroy(b.id).catch(() => {});
    await provider.unmountIdleImages().catch(() => {});
    await leftovers.unmountIdleImages().catch(() => {});
    // never recurse through a mount: only remove the dataDir when nothing is mounted below it
    if ((await HostMounts.mountsUnder(dataDir)).length === 0) rmSync(dataDir, { recursive: true, force: true });
    else console.error(`[container.test] mounts left under ${dataDir}: not removing it`);
  });

  test('init is idempotent and health reports the runtime', async () => {
    await provider.init();
    await provider.init();
    const h = await provider.health();
    assert.equal(h.ok, true, JSON.stringify(h));
    assert.match(h.runtime, /crun|runc/);
    assert.ok(provider.runtimeName === 'crun' || provider.runtimeName === 'runc');
    if (provider.cgroupLayout === 'hybrid' && provider.runtimeName === 'crun') {
      // crun runs on a hybrid host only once no controller is left on the cgroup2 hierarchy
      assert.equal(readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim(), '');
    }
  });

  test('spawn: the socket appears, the agent answers health as PID 1', async () => {
    const { b, c, s } = await spawn();
    assert.ok(existsSync(b.agentSocketPath));
    assert.ok(Buffer.byteLength(b.agentSocketPath) < 100, 'socket path short');
    assert.ok(b.pid > 1 && pidAlive(b.pid));
    const h = await c.health();
    assert.equal(h.pid, 1, 'agent is PID 1 of its pid namespace');
    const listed = await provider.list();
    assert.deepEqual(
      listed.find((x) => x.id === s.id),
      { id: s.id, running: true, agentSocketPath: b.agentSocketPath },
    );
  });

  test('isolation inside the bunker: hostname, pid ns, loopback only, no host paths, caps, no_new_privs, seccomp', async () => {
    const { c, s } = await spawn({ hostname: 'iso-box' });
    assert.equal((await sh(c, 'hostname')).out.trim(), 'iso-box');
    assert.equal((await sh(c, "tr '\\0' ' ' </proc/1/cmdline")).out.trim(), '/.scaibunker/agent --listen /.scaibunker/run/agent.sock');
    // only the agent, the shell and ps itself are visible
    const ps = (await sh(c, 'ls -d /proc/[0-9]* | wc -l')).out.trim();
    assert.ok(Number(ps) <= 4, `few pids visible: ${ps}`);
    const netdev = (await sh(c, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '")).out.trim().split('\n');
    assert.deepEqual(netdev, ['lo']);
    assert.equal((await sh(c, 'ls /sys/class/net')).out.trim(), 'lo');
    assert.match((await sh(c, 'cat /sys/class/net/lo/operstate /sys/class/net/lo/flags')).out, /0x9|unknown/i, 'lo is up');
    for (const p of ['/work', dataDir, '/var/lib/scaibunker', '/root/.cargo']) {
      const r = await sh(c, `test -e '${p}' && echo present || echo absent`);
      assert.equal(r.out.trim(), 'absent', `${p} not visible`);
    }
    const status = (await sh(c, 'cat /proc/self/status')).out;
    const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1]}`);
    const bit = (n: number) => (capEff >> BigInt(n)) & 1n;
    assert.equal(bit(21), 0n, 'no CAP_SYS_ADMIN');
    assert.equal(bit(12), 0n, 'no CAP_NET_ADMIN');
    assert.equal(bit(13), 0n, 'no CAP_NET_RAW');
    assert.equal(bit(16), 0n, 'no CAP_SYS_MODULE');
    assert.equal(bit(19), 0n, 'no CAP_SYS_PTRACE');
    assert.equal(bit(0), 1n, 'CAP_CHOWN kept');
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    assert.match(status, /^Seccomp:\s+2$/m);
    // /proc/kcore etc. masked, /proc/sys read-only
    assert.equal((await sh(c, 'cat /proc/kcore | wc -c')).out.trim(), '0');
    if (existsSync('/sys/firmware')) {
      // masked by a read-only bind of one empty dir, not by a tmpfs (a superblock) per bunker
      assert.equal((await sh(c, 'ls -A /sys/firmware')).out, '');
      assert.notEqual((await sh(c, 'touch /sys/firmware/x')).code, 0);
      assert.doesNotMatch((await sh(c, 'cat /proc/mounts')).out, / \/sys\/firmware tmpfs /);
    }
    assert.notEqual((await sh(c, 'echo 1 > /proc/sys/kernel/domainname')).code, 0);
    // writable root (overlay upper), agent dir present
    assert.equal((await sh(c, 'echo hi > /root/x && cat /root/x')).out, 'hi\n');
    assert.equal((await sh(c, 'id -u user')).out.trim(), '1000');
    assert.equal(s.networkProfile, 'isolated');
  });

  test('/tmp is a sticky directory of the root on the bunker disk: no mount of its own, bounded by disk_mb', async () => {
    // one tmpfs fewer per bunker: every superblock makes every memory cgroup on the host bigger
    const { c, s } = await spawn({ diskMb: 8 });
    assert.equal((await sh(c, 'awk \'$2 == "/tmp"\' /proc/mounts')).out, '', 'no mount at /tmp');
    assert.equal((await sh(c, 'stat -c %a /tmp')).out.trim(), '1777');
    const fill = await sh(c, 'dd if=/dev/zero of=/tmp/fill bs=1M count=16');
    assert.notEqual(fill.code, 0, 'writing past disk_mb into /tmp fails');
    assert.match(fill.err, /No space left on device/i);
    const used = (await provider.stats(s.id)).diskUsedBytes ?? 0;
    assert.ok(used >= 6 * 1024 * 1024, `what /tmp holds is the disk's (${used} bytes used)`);
  });

  test('/dev and /dev/shm are directories of the bunker disk, /sys/fs/cgroup and /proc/acpi binds: no superblock of their own', async () => {
    // every superblock makes every memory cgroup on the host bigger (see ContainerProvider)
    const { c, s } = await spawn({ diskMb: 8 });
    const mounts = (await sh(c, 'cat /proc/self/mounts')).out;
    const tmpfsAt = (dest: string) => mounts.split('\n').find((l) => l.split(' ')[1] === dest && l.split(' ')[2] === 'tmpfs');
    for (const dest of ['/dev', '/dev/shm']) assert.match(tmpfsAt(dest) ?? '', /^scaibunker-disk /, `${dest} is on the disk`);
    assert.equal(tmpfsAt('/sys/fs/cgroup'), undefined, 'no tmpfs at /sys/fs/cgroup');
    if (provider.runtimeName === 'crun')
      assert.equal(tmpfsAt('/proc/acpi'), undefined, 'no tmpfs at /proc/acpi (runc refuses binds in /proc)');
    assert.equal((await sh(c, 'stat -c %a /dev /dev/shm')).out, '755\n1777\n');
    // the device nodes and symlinks the runtime would have made, usable
    assert.equal(
      (await sh(c, 'head -c 3 /dev/zero | wc -c; head -c 5 /dev/urandom | wc -c; echo x >/dev/null && echo ok')).out,
      '3\n5\nok\n',
    );
    assert.equal(
      (await sh(c, 'stat -c %t:%T /dev/null /dev/tty; readlink /dev/ptmx; readlink /dev/fd')).out,
      '1:3\n5:0\npts/ptmx\n/proc/self/fd\n',
    );
    assert.notEqual((await sh(c, 'echo x >/dev/full')).code, 0, '/dev/full is full');
    // the device cgroup still decides: a node made for the host's disk cannot be opened
    assert.notEqual((await sh(c, 'mknod /dev/sdx b 8 0 && head -c1 /dev/sdx')).code, 0);
    // /dev/shm: noexec, bounded by disk_mb, never in a snapshot (outside the overlay's upper dir)
    assert.notEqual((await sh(c, 'cp /bin/busybox /dev/shm/bb && /dev/shm/bb true')).code, 0, '/dev/shm is noexec');
    assert.match((await sh(c, 'dd if=/dev/zero of=/dev/shm/fill bs=1M count=16')).err, /No space left on device/i);
    assert.ok(((await provider.stats(s.id)).diskUsedBytes ?? 0) >= 6 * 1024 * 1024, 'what /dev/shm holds is the disk');
    await sh(c, 'rm -f /dev/shm/fill /dev/shm/bb && echo kept > /dev/shm/segment && echo kept > /root/file');
    const layer = new PassThrough();
    const listed = new Promise<string>((resolve, reject) => {
      const tar = spawnChild('tar', ['-t'], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      tar.stdout.on('data', (d) => {
        out += d;
      });
      tar.on('error', reject).on('close', () => resolve(out));
      layer.pipe(tar.stdin);
    });
    await provider.writeLayer(s.id, layer);
    const entries = (await listed).split('\n');
    assert.ok(
      entries.some((e) => /(^|\/)root\/file$/.test(e)),
      `the root's files are in the layer: ${entries.join(' ')}`,
    );
    assert.equal(
      entries.filter((e) => /shm|segment|(^|\/)dev\//.test(e)).length,
      0,
      `no /dev or /dev/shm in the layer: ${entries.join(' ')}`,
    );
    // /sys/fs/cgroup: read-only, each hierarchy rooted at the bunker's own cgroup
    assert.notEqual((await sh(c, 'touch /sys/fs/cgroup/x')).code, 0);
    assert.equal((await sh(c, 'ls -A /proc/acpi 2>/dev/null; touch /proc/acpi/x 2>/dev/null || echo ro')).out, 'ro\n');
    if (provider.cgroupLayout !== 'v2') {
      const limit = (await sh(c, 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes')).out.trim();
      assert.equal(limit, String(s.memoryMb * 1024 * 1024));
      assert.match((await sh(c, 'cat /sys/fs/cgroup/pids/pids.max')).out.trim(), /^\d+$/);
    }
  });

  test('blocked syscalls are denied (unshare, mount, user namespaces)', async () => {
    const { c } = await spawn();
    const un = await sh(c, 'unshare -n true');
    assert.notEqual(un.code, 0);
    assert.match(un.err, /not permitted/i);
    const unU = await sh(c, 'unshare -U true');
    assert.notEqual(unU.code, 0);
    const mnt = await sh(c, 'mkdir -p /mnt/x && mount -t tmpfs none /mnt/x');
    assert.notEqual(mnt.code, 0);
    assert.equal((await sh(c, 'grep -c " /mnt/x " /proc/self/mounts || true')).out.trim(), '0');
    // the shell as uid 1000 cannot read the agent socket dir
    const asUser = await c.exec({ argv: ['/bin/ls', '/.scaibunker/run'], user: 'user', timeoutMs: 5000 });
    assert.notEqual(asUser.exitCode, 0);
  });

  test('cpu quota and pids/memory limits are written to the cgroup', async () => {
    const { s } = await spawn({ cpuMillicores: 250, memoryMb: 96, pidsLimit: 64 });
    const cpu = provider.cgroupDir(s.id, 'cpu') as string;
    const mem = provider.cgroupDir(s.id, 'memory') as string;
    const pids = provider.cgroupDir(s.id, 'pids') as string;
    if (provider.cgroupLayout === 'v2') {
      assert.equal(readFileSync(join(cpu, 'cpu.max'), 'utf8').trim(), '25000 100000');
      assert.equal(readFileSync(join(mem, 'memory.max'), 'utf8').trim(), String(96 * 1024 * 1024));
    } else {
      assert.equal(readFileSync(join(cpu, 'cpu.cfs_quota_us'), 'utf8').trim(), '25000');
      assert.equal(readFileSync(join(cpu, 'cpu.cfs_period_us'), 'utf8').trim(), '100000');
      assert.equal(readFileSync(join(mem, 'memory.limit_in_bytes'), 'utf8').trim(), String(96 * 1024 * 1024));
    }
    assert.equal(readFileSync(join(pids, 'pids.max'), 'utf8').trim(), '64');
  });

  test('pids limit: forks beyond pids_limit fail', async () => {
    const { c, s } = await spawn({ pidsLimit: 16 });
    const r = await sh(
      c,
      'i=0; while [ $i -lt 40 ]; do sleep 3 >/dev/null 2>&1 & i=$((i+1)); done 2>/dev/null; ls -d /proc/[0-9]* | wc -l; kill $(jobs -p) 2>/dev/null; true',
      20_000,
    );
    const visible = Number(r.out.trim().split('\n')[0]);
    assert.ok(visible <= 16, `at most 16 processes, saw ${visible}`);
    const pids = provider.cgroupDir(s.id, 'pids') as string;
    const events = readFileSync(join(pids, provider.cgroupLayout === 'v2' ? 'pids.events' : 'pids.events'), 'utf8');
    assert.match(events, /max [1-9]/, 'fork failures counted');
  });

  test('destroy of a paused bunker leaves no mount (overlay, tmpfs, bind) and no runtime state', async () => {
    // the provider-neutral part of destroy is in conformance.test.ts
    const { b, s } = await spawn();
    await provider.pause(s.id);
    await provider.destroy(s.id);
    await assertGone(s.id, b.pid);
    const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
    assert.equal(mountinfo.includes(`/bunkers/${s.id}/`), false);
  });

  test('destroy cleans a half-created bunker', async () => {
    const id = `half-${process.pid % 10000}`;
    spawned.add(id);
    const dir = provider.bunkerDir(id);
    mkdirSync(join(dir, 'upper'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'x', join(dir, 'upper')]);
    writeFileSync(
      join(dir, 'bunker.json'),
      JSON.stringify({ id, imageSha256: image.sha256, runtime: provider.runtimeName, cgroupsPath: `/scaibunker/${id}`, createdAt: '' }),
    );
    await provider.destroy(id);
    await assertGone(id);
  });

  test('spawn failures clean up and carry the runtime error', async () => {
    const tmp = join(dataDir, 'fixtures');
    mkdirSync(tmp, { recursive: true });
    // no agent in the image: the runtime refuses to exec
    const noAgent = makeImage(tmp, 'noagent', { 'bin/busybox': 'busybox' });
    const id1 = `fail1-${process.pid % 10000}`;
    spawned.add(id1);
    await assert.rejects(provider.spawn(spec({ id: id1, imageSha256: noAgent.sha, imagePath: noAgent.path })), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, 'SPAWN_FAILED');
      assert.match(`${e.message}\n${e.details}`, /agent|executable|No such file/i);
      return true;
    });
    await assertGone(id1);

    // an "agent" that never listens: bounded wait, then everything is torn down
    const sleeper = makeImage(tmp, 'sleeper', {
      'bin/busybox': 'busybox',
      '.scaibunker/agent': { content: '#!/bin/busybox sh\necho sleeper-started >&2\nexec /bin/busybox sleep 1000\n', mode: 0o755 },
    });
    const slow = new ContainerProvider({ dataDir, runtime: RUNTIME, spawnTimeoutMs: 700 });
    const id2 = `fail2-${process.pid % 10000}`;
    spawned.add(id2);
    const t0 = Date.now();
    await assert.rejects(slow.spawn(spec({ id: id2, imageSha256: sleeper.sha, imagePath: sleeper.path })), (e: unknown) => {
      assert.ok(e instanceof ProviderError);
      assert.equal(e.code, 'SPAWN_FAILED');
      assert.match(e.message, /did not appear/);
      assert.match(e.details ?? '', /sleeper-started/, 'details carry the bunker console output');
      return true;
    });
    assert.ok(Date.now() - t0 < 5000);
    await assertGone(id2);
    // an agent that exits at once fails fast
    const quitter = makeImage(tmp, 'quitter', {
      'bin/busybox': 'busybox',
      '.scaibunker/agent': { content: '#!/bin/busybox sh\necho quitting >&2\nexit 3\n', mode: 0o755 },
    });
    const id3 = `fail3-${process.pid % 10000}`;
    spawned.add(id3);
    const t1 = Date.now();
    await assert.rejects(provider.spawn(spec({ id: id3, imageSha256: quitter.sha, imagePath: quitter.path })), /exited before/);
    assert.ok(Date.now() - t1 < 3000);
    await assertGone(id3);
    await slow.unmountIdleImages();
    await provider.unmountIdleImages();
  });

  test('invalid limits and specs are rejected before anything is created', async () => {
    const bad: Array<[Partial<BunkerSpec>, string]> = [
      [{ cpuMillicores: 0 }, 'LIMIT_INVALID'],
      [{ memoryMb: 1 }, 'LIMIT_INVALID'],
      [{ diskMb: 0 }, 'LIMIT_INVALID'],
      [{ pidsLimit: 1 }, 'LIMIT_INVALID'],
      [{ id: '../x' }, 'SPAWN_FAILED'],
      [{ hostname: 'bad host' }, 'SPAWN_FAILED'],
      [{ imageSha256: 'nope' }, 'SPAWN_FAILED'],
    ];
    for (const [over, code] of bad) {
      await assert.rejects(provider.spawn(spec(over)), (e: unknown) => e instanceof ProviderError && e.code === code, JSON.stringify(over));
    }
    const { s } = await spawn();
    await assert.rejects(provider.spawn(spec({ id: s.id })), /already exists/);
  });

  test('concurrent spawns share one image mount; refcount follows destroys', async () => {
    const ids = [0, 1, 2, 3].map((i) => `par${i}-${process.pid % 10000}`);
    const results = await Promise.all(ids.map((id) => spawn({ id })));
    for (const r of results) assert.equal((await r.c.health()).pid, 1);
    const imgMount = join(provider.imagesDir, image.sha256);
    const table = await HostMounts.table();
    assert.equal(table.filter((m) => m.mountPoint === imgMount).length, 1, 'image mounted once');
    const before = provider.imageRefCount(image.sha256);
    await Promise.all(ids.map((id) => provider.destroy(id)));
    assert.equal(provider.imageRefCount(image.sha256), before - 4);
    for (const r of results) await assertGone(r.s.id, r.b.pid);
  });
});
