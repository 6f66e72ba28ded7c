/**
 * What only the microvm provider has (the shared contract is conformance.test.ts): its own
 * kernel, the qcow2 overlay disk, QEMU's cgroup, the serial channel under a flood, memory
 * snapshots and the identity of restored clones, and its failure paths (a guest that never
 * boots, a QEMU killed from outside, a guest that stops reading).
 *
 *   node --import tsx --test packages/worker/test/providers/microvm.test.ts
 *
 * Needs root and QEMU; builds the guest kernel and the `minimal` image when missing (both
 * cached). Runs under TCG here (this host's /dev/kvm is PVM). Everything lives under a
 * throwaway /tmp dataDir the after hook destroys, even when a test fails.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { AgentClient } from '../../src/agent/AgentClient.js';
import { WorkerNetwork } from '../../src/network/WorkerNetwork.js';
import { runCommand } from '../../src/providers/host/runCommand.js';
import { GuestAssets } from '../../src/providers/microvm/GuestAssets.js';
import { MicrovmProvider } from '../../src/providers/microvm/MicrovmProvider.js';
import { type BunkerSpec, ProviderError } from '../../src/providers/Provider.js';
import {
  type CatalogEntry,
  IMAGE_DIR,
  makeImage,
  microvmSkipReason,
  minimalImage,
  pidAlive,
  raceTimeout,
  sh,
  specFactory,
} from './support.js';

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const TEST = { timeout: 180_000 };

describe('MicrovmProvider', { skip: microvmSkipReason() }, () => {
  let dataDir = '';
  let provider: MicrovmProvider;
  let image: CatalogEntry;
  let guest: GuestAssets;
  const clients: AgentClient[] = [];
  const spawned = new Set<string>();

  const spec = specFactory('vm', () => image, { cpuMillicores: 1000, memoryMb: 256, diskMb: 128 });

  async function spawn(over: Partial<BunkerSpec> = {}, p: MicrovmProvider = provider) {
    const s = spec(over);
    spawned.add(s.id);
    const b = await p.spawn(s);
    assert.ok(b.agent, 'the microvm provider hands over the channel it opened');
    clients.push(b.agent);
    return { b, c: b.agent, s };
  }

  function assertGone(id: string, pid?: number) {
    assert.equal(existsSync(provider.paths(id).dir), false, 'VM dir removed');
    for (const d of provider.cgroupDirs(id)) assert.equal(existsSync(d), false, `cgroup ${d} removed`);
    if (pid) assert.equal(pidAlive(pid), false, 'QEMU gone');
  }

  const vmMeta = (id: string) => JSON.parse(readFileSync(provider.paths(id).meta, 'utf8')) as { pid: number; snapshot: string | null };

  before(
    async () => {
      image = minimalImage();
      guest = GuestAssets.load();
      dataDir = mkdtempSync('/tmp/sbm-');
      provider = new MicrovmProvider({ dataDir, snapshots: 'manual' });
      await provider.init();
    },
    { timeout: 300_000 },
  );

  after(async () => {
    for (const c of clients) c.close();
    for (const id of spawned) await provider.destroy(id).catch(() => {});
    await provider.shutdown().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('health names the accelerator and why it was chosen', async () => {
    const h = await provider.health();
    assert.equal(h.ok, true);
    assert.ok(['kvm', 'tcg'].includes(provider.accel));
    assert.match(h.runtime, /QEMU emulator version .*\((kvm|tcg)\)/);
    assert.match(h.details ?? '', /accel (kvm|tcg): \S+/);
  });

  test('the guest runs its own kernel on a qcow2 overlay of the image; the image is never written', TEST, async () => {
    const { c, s } = await spawn();
    const r = await sh(c, 'uname -r');
    assert.equal(r.out.trim(), guest.kernelVersion);
    assert.notEqual(r.out.trim(), os.release());
    await sh(c, 'echo data > /root/f && sync');
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', provider.paths(s.id).disk]).toString()) as {
      'virtual-size': number;
      'backing-filename'?: string;
      'actual-size': number;
    };
    assert.equal(info['virtual-size'], s.diskMb * 1048576);
    assert.equal(info['backing-filename'], s.imagePath);
    assert.ok(info['actual-size'] < image.size_bytes / 2, `overlay holds ${info['actual-size']} bytes: not a copy`);
    assert.equal(await sha256File(s.imagePath), image.sha256, 'the image file is unchanged');
    const df = await sh(c, "df -k / | awk 'NR==2 { print $2 }'");
    assert.ok(Number(df.out.trim()) > s.diskMb * 1024 * 0.8, `the guest sees the whole disk (df: ${df.out.trim()} KiB)`);
  });

  test(
    'cold boots copy one empty overlay per image and disk size; each bunker owns its copy, also when the templates vanish',
    TEST,
    async () => {
      const overlays = join(dataDir, 'microvm', 'overlays');
      const diskOf = (id: string) =>
        JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', provider.paths(id).disk]).toString()) as {
          'virtual-size': number;
          'backing-filename'?: string;
        };
      const templates = () => readdirSync(overlays).filter((n) => n.endsWith('.qcow2'));
      const a = await spawn({ diskMb: 128 });
      const b = await spawn({ diskMb: 128 });
      const c = await spawn({ diskMb: 96 });
      for (const { s } of [a, b, c]) {
        assert.equal(diskOf(s.id)['virtual-size'], s.diskMb * 1048576, `${s.id}: its own disk size`);
        assert.equal(diskOf(s.id)['backing-filename'], s.imagePath, `${s.id}: backed by the image`);
      }
      assert.equal(templates().length, 2, `one template per disk size: ${templates().join(', ')}`);
      const inodes = [a, b, c].map(({ s }) => statSync(provider.paths(s.id).disk).ino);
      assert.equal(new Set(inodes).size, 3, 'every bunker writes its own file (copies, not links)');
      const df = await sh(c.c, "df -k / | awk 'NR==2 { print $2 }'");
      assert.ok(Number(df.out.trim()) > 96 * 1024 * 0.8, `the 96 MiB guest sees its whole disk (df: ${df.out.trim()} KiB)`);

      // the directory emptied under a running provider (another one's init()): boots still work
      rmSync(overlays, { recursive: true, force: true });
      const d = await spawn({ diskMb: 128 });
      assert.equal(diskOf(d.s.id)['virtual-size'], 128 * 1048576);
      assert.equal((await sh(d.c, 'echo up')).out, 'up\n');
      for (const { s } of [a, b, c, d]) {
        await provider.destroy(s.id);
        spawned.delete(s.id);
      }
    },
  );

  test('QEMU runs in its own cgroup: CPU quota from cpu_millicores, memory = guest RAM + VMM overhead', TEST, async () => {
    const { b, s } = await spawn({ cpuMillicores: 500 });
    const dirs = provider.cgroupDirs(s.id);
    const procsOf = (d: string) => readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    assert.ok(
      dirs.some((d) => existsSync(d) && procsOf(d).includes(b.pid)),
      `QEMU (pid ${b.pid}) is in ${dirs.join(', ')}`,
    );
    const cpu = dirs.find((d) => existsSync(join(d, 'cpu.cfs_quota_us')) || existsSync(join(d, 'cpu.max')));
    assert.ok(cpu, 'a cpu cgroup');
    const quota = existsSync(join(cpu, 'cpu.max'))
      ? readFileSync(join(cpu, 'cpu.max'), 'utf8')
      : readFileSync(join(cpu, 'cpu.cfs_quota_us'), 'utf8');
    assert.match(quota, /^50000\b/);
    const mem = dirs.find((d) => existsSync(join(d, 'memory.limit_in_bytes')) || existsSync(join(d, 'memory.max')));
    assert.ok(mem, 'a memory cgroup');
    const limit = Number(readFileSync(join(mem, existsSync(join(mem, 'memory.max')) ? 'memory.max' : 'memory.limit_in_bytes'), 'utf8'));
    assert.ok(limit > s.memoryMb * 1048576 && limit <= (s.memoryMb + 256) * 1048576, `memory limit ${limit}`);
  });

  test('a 4 MiB stdout flood streams over the serial port while other requests still get answers', TEST, async () => {
    const { c } = await spawn();
    let bytes = 0;
    const flood = c.exec(
      { argv: ['/bin/sh', '-c', 'head -c 4194304 /dev/zero'], timeoutMs: 120_000 },
      {
        onStdout: (d) => {
          bytes += d.length;
        },
      },
    );
    assert.equal((await c.health()).pid, 1);
    assert.equal((await flood).exitCode, 0);
    assert.equal(bytes, 4 * 1024 * 1024);
  });

  test('restored clones each get their own identity and disk; the snapshot is never written', TEST, async () => {
    const shape = { imageSha256: image.sha256, imagePath: join(IMAGE_DIR, image.file), cpus: 1, memoryMb: 256, diskMb: 128 };
    const snap = await provider.snapshots.ensure(provider.snapshotKey(shape), shape);
    assert.ok(snap, 'snapshot built');
    const before = { disk: await sha256File(snap.disk), state: await sha256File(snap.state), ram: await sha256File(snap.ram) };

    const one = await spawn();
    const two = await spawn();
    for (const x of [one, two]) assert.equal(vmMeta(x.s.id).snapshot, snap.key, `${x.s.id} was restored`);
    const ident = async (c: AgentClient) =>
      (await sh(c, 'hostname; cat /etc/machine-id; head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; date +%s')).out.split('\n');
    const [h1, m1, r1, t1] = await ident(one.c);
    const [h2, m2, r2, t2] = await ident(two.c);
    assert.equal(h1, one.s.hostname);
    assert.equal(h2, two.s.hostname);
    assert.match(m1 ?? '', /^[0-9a-f]{32}$/);
    assert.notEqual(m1, m2, 'machine ids differ');
    assert.notEqual(r1, r2, 'random streams differ');
    for (const t of [t1, t2]) assert.ok(Math.abs(Number(t) - Date.now() / 1000) < 120, `guest clock ${t} follows the host's`);

    await one.c.writeFile('/root/only-in-one', Buffer.from('1'));
    assert.equal((await sh(two.c, 'test -e /root/only-in-one && echo yes || echo no')).out, 'no\n');
    await sh(one.c, 'dd if=/dev/urandom of=/root/noise bs=1M count=4 2>/dev/null; sync');

    for (const x of [one, two]) await provider.destroy(x.s.id);
    const afterUse = { disk: await sha256File(snap.disk), state: await sha256File(snap.state), ram: await sha256File(snap.ram) };
    assert.deepEqual(afterUse, before, 'disk, device state and RAM image unchanged');
  });

  test('a snapshot that does not restore is discarded, and the bunker boots cold instead', TEST, async () => {
    const shape = { imageSha256: image.sha256, imagePath: join(IMAGE_DIR, image.file), cpus: 1, memoryMb: 256, diskMb: 128 };
    const snap = await provider.snapshots.ensure(provider.snapshotKey(shape), shape);
    assert.ok(snap, 'snapshot present');
    truncateSync(snap.state, 100); // a torn device-state stream
    const { c, s } = await spawn();
    assert.equal(vmMeta(s.id).snapshot, null, 'booted cold');
    assert.equal((await sh(c, 'hostname')).out.trim(), s.hostname);
    assert.equal(provider.snapshots.ready(snap.key), undefined, 'the broken snapshot is gone');
  });

  test('a guest that cannot boot fails the spawn with its console tail; nothing is left', TEST, async () => {
    const dir = mkdtempSync('/tmp/sbm-img-');
    try {
      const noAgent = makeImage(dir, 'noagent', { 'bin/busybox': 'busybox' });
      const s = spec({ imageSha256: noAgent.sha, imagePath: noAgent.path, diskMb: 64 });
      spawned.add(s.id);
      await assert.rejects(provider.spawn(s), (e: unknown) => {
        assert.ok(e instanceof ProviderError && e.code === 'SPAWN_FAILED', String(e));
        assert.match(e.details ?? '', /no \/\.scaibunker\/agent in the image/, 'the console tail says why');
        return true;
      });
      assertGone(s.id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a guest that is not ready within the boot timeout is torn down', TEST, async () => {
    const impatient = new MicrovmProvider({ dataDir, snapshots: 'off', bootTimeoutMs: 300 });
    await impatient.init();
    const s = spec();
    spawned.add(s.id);
    await assert.rejects(impatient.spawn(s), /not ready within/);
    assertGone(s.id);
    await impatient.shutdown();
  });

  test('QEMU killed from outside: the channel closes, list() says stopped, destroy leaves nothing', TEST, async () => {
    const { b, c, s } = await spawn();
    process.kill(b.pid, 'SIGKILL');
    assert.notEqual(await raceTimeout(c.closed, 30_000), 'timeout', 'the agent channel closed');
    assert.equal((await provider.list()).find((x) => x.id === s.id)?.running, false);
    await provider.destroy(s.id);
    assertGone(s.id, b.pid);
  });

  test('a guest that stops reading its channel: exec still times out, and the bunker recovers', TEST, async () => {
    const { c, s } = await spawn();
    await provider.pause(s.id); // vCPUs stopped: nothing in the guest reads the port
    const r = await c.exec({ argv: ['/bin/true'], timeoutMs: 200 });
    assert.equal(r.timedOut, true);
    await provider.resume(s.id);
    assert.equal((await sh(c, 'echo back')).out, 'back\n');
    const payload = randomBytes(1000);
    await c.writeFile('/root/after', payload);
    assert.equal((await c.stat('/root/after')).size, payload.length);
  });
});

/**
 * A networked microVM at the provider level: the worker's real WorkerNetwork (its own name
 * prefix and subnet, so nothing of another worker is touched) and a DNS upstream served by this
 * process on 127.0.0.1. The guest's eth0 is a virtio-net NIC on a TAP inside the bunker's netns;
 * its DNS query goes guest → TAP → veth → the host-side DNAT → the worker's responder → here.
 * `nslookup -type=a`: busybox sends A and AAAA at once with IDs from the monotonic clock, and a
 * TCG guest whose TSC the watchdog marked unstable (refined-jiffies) gives both the same ID, so
 * the AAAA reply is taken for the A reply and the real one dropped (a guest quirk, not the NIC).
 */
describe('MicrovmProvider with a network', { skip: microvmSkipReason() }, () => {
  const PREFIX = 'sbmv';
  const SUBNET = '10.218.0.0/24';
  let dataDir = '';
  let provider: MicrovmProvider;
  let net: WorkerNetwork;
  let upstream: Socket;
  let image: CatalogEntry;
  const spawned = new Set<string>();
  const spec = specFactory('vn', () => image, { cpuMillicores: 1000, memoryMb: 256, diskMb: 128 });

  /** What a worker process holds: its network (responder, nft channel) and its provider. */
  async function startWorkerParts(): Promise<void> {
    net = await WorkerNetwork.open({
      dataDir,
      subnet: SUBNET,
      namePrefix: PREFIX,
      dnsUpstream: { host: '127.0.0.1', port: upstream.address().port },
    });
    provider = new MicrovmProvider({ dataDir, snapshots: 'manual', networking: net });
    await provider.init();
  }

  /** A worker restart: the old parts let go (VMs keep running), new ones start. */
  async function restartWorkerParts(): Promise<void> {
    await provider.shutdown();
    await net.close();
    await startWorkerParts();
  }

  const netnsOf = (id: string) => `${PREFIX}n-${createHash('sha256').update(id).digest('hex').slice(0, 10)}`;

  /** Netns, links and nft tables carrying the prefix. */
  async function objects(): Promise<string[]> {
    const found = existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(PREFIX)) : [];
    const links = JSON.parse((await runCommand('ip', ['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>;
    found.push(...links.map((l) => l.ifname).filter((n) => n.startsWith(PREFIX)));
    found.push(...(await runCommand('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.includes(` ${PREFIX}_`)));
    return found;
  }

  before(
    async () => {
      image = minimalImage();
      dataDir = mkdtempSync('/tmp/sbmv-');
      upstream = createSocket('udp4');
      upstream.on('message', (msg, rinfo) => {
        const q = dnsPacket.decode(msg);
        const question = q.questions?.[0];
        const known = question?.name === 'vm.test' || question?.name === 'pypi.org';
        const reply = dnsPacket.encode({
          id: q.id,
          type: 'response',
          flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
          questions: q.questions,
          answers: known && question?.type === 'A' ? [{ name: question.name, type: 'A', ttl: 60, data: '203.0.113.7' }] : [],
        });
        upstream.send(reply, rinfo.port, rinfo.address);
      });
      await new Promise<void>((res) => upstream.bind(0, '127.0.0.1', res));
      await startWorkerParts();
      await net.reconcile(new Set());
    },
    { timeout: 300_000 },
  );

  after(async () => {
    for (const id of spawned) await provider?.destroy(id).catch(() => {});
    await provider?.shutdown().catch(() => {});
    await net?.reconcile(new Set()).catch(() => {});
    await net?.close().catch(() => {});
    upstream?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('transit is refused for a microVM before anything is made', async () => {
    const s = spec({
      networkProfile: 'transit',
      interfaces: [{ bridgeId: 'br-x', tenantId: 't', mac: '02:00:00:00:00:01', spoofGuard: true }],
    });
    await assert.rejects(provider.spawn(s), (e: unknown) => e instanceof ProviderError && /transit is not offered/.test(e.message));
    assert.equal(existsSync(provider.paths(s.id).dir), false);
  });

  test(
    'an unrestricted VM: eth0 with its address, the resolv.conf a container gets, DNS through the responder; destroy leaves nothing',
    TEST,
    async () => {
      const s = spec({ networkProfile: 'unrestricted' });
      spawned.add(s.id);
      const b = await provider.spawn(s);
      const c = b.agent as AgentClient;
      try {
        const r = await sh(
          c,
          'ip -4 -o addr show dev eth0; ip route; cat /etc/resolv.conf; nslookup -type=a vm.test; nslookup -type=a nope.test; echo rc=$?',
        );
        const address = /inet (10\.218\.0\.(\d+))\/30/.exec(r.out);
        assert.ok(address, r.out + r.err);
        assert.match(r.out, new RegExp(`default via 10\\.218\\.0\\.${Number(address[2]) - 1} dev eth0`));
        // The host side: the inner veth gave its address up to the guest; the TAP is in the netns.
        const inner = await runCommand('ip', ['-n', netnsOf(s.id), '-o', 'addr', 'show']);
        assert.doesNotMatch(inner.stdout, /inet 10\.218/, inner.stdout);
        assert.match((await runCommand('ip', ['-n', netnsOf(s.id), 'link', 'show', 'tap0'])).stdout, /tap0/);
        assert.match(r.out, /nameserver 10\.218\.0\.1\n/);
        assert.match(r.out, /Address:\s+203\.0\.113\.7/, r.out + r.err);
        assert.match(r.out, /rc=1/, 'an unknown name fails');
        assert.equal(vmSnapshotOf(provider, s.id), null, 'networked VMs boot cold');
      } finally {
        c.close();
      }
      await provider.destroy(s.id);
      spawned.delete(s.id);
      assert.equal(existsSync(provider.paths(s.id).dir), false);
      assert.equal(pidAlive(b.pid as number), false, 'QEMU gone');
      assert.deepEqual(await objects(), [], 'netns, veth, ifb and table gone');
    },
  );

  test('worker restarts: a live VM keeps its network (rules re-applied), a VM that died meanwhile leaves nothing', TEST, async () => {
    const s = spec({ networkProfile: 'registry' });
    spawned.add(s.id);
    const b = await provider.spawn(s);
    b.agent?.close();

    await restartWorkerParts(); // the new responder listens on another port: the rules follow it
    assert.deepEqual((await net.reconcile(new Set([s.id]))).restored, [s.id]);
    const c = await AgentClient.connect(b.agentSocketPath, { timeoutMs: 10_000, awaitHello: true });
    try {
      const r = await sh(c, 'nslookup -type=a pypi.org 2>&1; nslookup -type=a vm.test 2>&1; echo rc=$?');
      assert.match(r.out, /Name:\s+pypi\.org\s+Address:\s+203\.0\.113\.7/, r.out);
      assert.match(r.out, /rc=1/, 'a name off the registry list is still denied');
    } finally {
      c.close();
    }

    process.kill(b.pid as number, 'SIGKILL'); // the VM dies while no worker runs
    await restartWorkerParts();
    const reconciled = await net.reconcile(new Set());
    assert.deepEqual(reconciled.restored, []);
    assert.ok(reconciled.removed.includes(s.id), JSON.stringify(reconciled));
    assert.deepEqual(await objects(), [], 'netns (TAP and filters inside), veth, ifb and table gone');
    await provider.destroy(s.id);
    spawned.delete(s.id);
    assert.equal(existsSync(provider.paths(s.id).dir), false);
  });
});

function vmSnapshotOf(p: MicrovmProvider, id: string): string | null {
  return (JSON.parse(readFileSync(p.paths(id).meta, 'utf8')) as { snapshot: string | null }).snapshot;
}
