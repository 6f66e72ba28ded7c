/**
 * The provider contract as one node:test suite, for the built-in providers and for third-party
 * ones (`@scaibunker/worker/conformance`):
 *
 *   import { providerConformance } from '@scaibunker/worker/conformance';
 *   providerConformance({ name: 'mine', make: (dataDir) => new MyProvider({ dataDir }), image: () => ({ sha256, path }) });
 *
 * then `node --import tsx --test my.test.ts` as root. The image is an ext4 file whose
 * /.scaibunker/agent is the bunker agent (scripts/build-images.sh bakes `minimal`). Every
 * bunker lives under a throwaway /tmp dataDir that the after hook destroys and removes, even
 * when a test fails.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { AgentClient } from '../agent/AgentClient.js';
import { HostMounts } from '../providers/container/HostMounts.js';
import { type BunkerSpec, type Provider, ProviderError } from '../providers/Provider.js';
import { pidAlive, raceTimeout, sh } from './helpers.js';

/** The image bunkers run: its sha256 and its .ext4 file on the host. */
export interface ConformanceImage {
  sha256: string;
  path: string;
}

export interface ConformanceSubject<P extends Provider = Provider> {
  name: string;
  /** A reason to skip the whole suite here (e.g. 'needs root'), or false. */
  skip?: string | false;
  /** The provider factory: a new provider on `dataDir` (called again on the same dir to act as a restarted worker). */
  make(dataDir: string): P;
  image(): ConformanceImage;
  /** Smallest memory_mb the provider accepts (default 16). */
  minMemoryMb?: number;
  /** A small memory limit to overrun, and a disk just above the image (defaults 48 and 16). */
  smallMemoryMb?: number;
  smallDiskMb?: number;
  /** The default bunker shape (default 128 MiB memory, 64 MiB disk). */
  defaults?: { memoryMb: number; diskMb: number };
  /** Prefix of bunker ids (default 'cf'). */
  idPrefix?: string;
  /** Host paths a bunker owns while it lives (dirs, cgroup dirs): all gone after destroy. */
  footprint?(p: P, id: string): string[];
  /** Once, before the first provider is made (e.g. start a daemon). */
  setup?(): Promise<void>;
  /** Once, after everything was destroyed (e.g. stop that daemon). */
  teardown?(): Promise<void>;
  /** Once per suite, after init (e.g. a memory snapshot of the default shape). */
  prepare?(p: P, spec: BunkerSpec): Promise<void>;
  /** How many processes the kernel OOM-killed in the bunker; default: its cgroup's count read from inside. */
  oomKills?(p: P, id: string, c: AgentClient): Promise<number>;
  /**
   * Contract points the provider cannot meet here, each with the reason: `diskLimit` skips its
   * test; `pidNamespace` (the agent is not PID 1: its health pid is then the host pid spawn()
   * reported) and `hostname` (the bunker sees the host's) relax those assertions.
   */
  unsupported?: { diskLimit?: string | undefined; pidNamespace?: string | undefined; hostname?: string | undefined };
}

/** The OOM kill count of the bunker's memory cgroup, read inside it (cgroup v2 or v1). */
async function cgroupOomKills(_p: Provider, _id: string, c: AgentClient): Promise<number> {
  const r = await sh(c, 'cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null');
  return Number(/^oom_kill (\d+)$/m.exec(r.out)?.[1] ?? 0);
}

/** ids `<prefix><pid>-<n>` (unique per run), the image, the suite's defaults, then the test's overrides. */
export function specFactory(
  prefix: string,
  image: () => ConformanceImage,
  defaults: Pick<BunkerSpec, 'cpuMillicores' | 'memoryMb' | 'diskMb'>,
): (over?: Partial<BunkerSpec>) => BunkerSpec {
  let seq = 0;
  return (over = {}) => {
    const id = over.id ?? `${prefix}${process.pid % 10000}-${++seq}`;
    const img = image();
    return {
      id,
      imageSha256: img.sha256,
      imagePath: img.path,
      ...defaults,
      hostname: `h-${id}`,
      networkProfile: 'isolated',
      ...over,
    };
  };
}

/** Registers the conformance suite (a node:test `describe`) for one provider. */
export function providerConformance<P extends Provider>(s: ConformanceSubject<P>): void {
  const subject = {
    minMemoryMb: 16,
    smallMemoryMb: 48,
    smallDiskMb: 16,
    ...s,
    defaults: s.defaults ?? { memoryMb: 128, diskMb: 64 },
  } as Required<Pick<ConformanceSubject, 'minMemoryMb' | 'smallMemoryMb' | 'smallDiskMb' | 'defaults'>> & ConformanceSubject<Provider>;
  describe(`provider conformance: ${subject.name}`, { skip: subject.skip ?? false }, () => {
    let dataDir = '';
    let provider: Provider;
    let image: ConformanceImage;
    const clients: AgentClient[] = [];
    const spawned = new Set<string>();

    const spec = specFactory(subject.idPrefix ?? 'cf', () => image, { cpuMillicores: 1000, ...subject.defaults });

    async function spawn(over: Partial<BunkerSpec> = {}) {
      const s = spec(over);
      spawned.add(s.id);
      const b = await provider.spawn(s);
      const c = b.agent ?? (await AgentClient.connect(b.agentSocketPath, { awaitHello: true }));
      clients.push(c);
      return { b, c, s };
    }

    /** The agent's pid as it reports it: 1, or its host pid where the provider gives no PID namespace. */
    const agentPid = (b: { pid: number }) => (subject.unsupported?.pidNamespace ? b.pid : 1);

    async function assertHostname(c: AgentClient, hostname: string) {
      if (subject.unsupported?.hostname) return;
      assert.equal((await sh(c, 'hostname')).out.trim(), hostname);
    }

    async function assertGone(id: string, pid: number) {
      for (const path of subject.footprint?.(provider, id) ?? []) assert.equal(existsSync(path), false, `${path} removed`);
      assert.equal(pidAlive(pid), false, `process ${pid} gone`);
      assert.equal(
        (await provider.list()).some((x) => x.id === id),
        false,
        'not listed',
      );
    }

    before(
      async () => {
        await subject.setup?.();
        image = subject.image();
        dataDir = mkdtempSync('/tmp/sbc-');
        provider = subject.make(dataDir);
        await provider.init();
        await subject.prepare?.(provider, spec({ id: 'prepare' }));
      },
      { timeout: 300_000 },
    );

    after(async () => {
      for (const c of clients) c.close();
      for (const id of spawned) await provider.destroy(id).catch(() => {});
      const again = subject.make(dataDir);
      for (const b of await again.list().catch(() => [])) await again.destroy(b.id).catch(() => {});
      await provider.shutdown().catch(() => {});
      await again.shutdown().catch(() => {});
      if ((await HostMounts.mountsUnder(dataDir)).length === 0) rmSync(dataDir, { recursive: true, force: true });
      else console.error(`[conformance] mounts left under ${dataDir}: not removing it`);
      await subject.teardown?.();
    });

    test('spawn: the agent answers as PID 1 under the spec hostname; list() reports it running', async () => {
      const { b, c, s } = await spawn();
      assert.equal((await c.health()).pid, agentPid(b));
      await assertHostname(c, s.hostname);
      assert.ok(b.pid > 0 && pidAlive(b.pid), 'host process alive');
      assert.deepEqual(
        (await provider.list()).find((x) => x.id === s.id),
        { id: s.id, running: true, agentSocketPath: b.agentSocketPath },
      );
    });

    test('exec: exit code, stdout and stderr apart, env and cwd', async () => {
      const { c } = await spawn();
      const r = await sh(c, 'echo out; echo err >&2; exit 3');
      assert.deepEqual([r.code, r.out, r.err], [3, 'out\n', 'err\n']);
      const out: Buffer[] = [];
      const e = await c.exec(
        { argv: ['/bin/sh', '-c', 'echo "$GREETING from $(pwd)"'], env: { GREETING: 'hi' }, cwd: '/tmp' },
        { onStdout: (d) => void out.push(d) },
      );
      assert.equal(e.exitCode, 0);
      assert.equal(Buffer.concat(out).toString(), 'hi from /tmp\n');
    });

    test('exec streams: output reaches the host while the command still waits for stdin', async () => {
      const { c } = await spawn();
      let sawFirst!: () => void;
      const first = new Promise<void>((r) => {
        sawFirst = r;
      });
      let out = '';
      // stdin only produces its line after "ready" came back: a non-streaming path would deadlock
      async function* stdin() {
        await first;
        yield Buffer.from('ping\n');
      }
      const r = await c.exec(
        { argv: ['/bin/sh', '-c', 'echo ready; read line; echo "got $line"'], stdin: stdin(), timeoutMs: 60_000 },
        {
          onStdout: (d) => {
            out += d.toString();
            if (out.includes('ready')) sawFirst();
          },
        },
      );
      assert.equal(r.exitCode, 0);
      assert.equal(out, 'ready\ngot ping\n');
    });

    test('exec stdin: 1 MiB in, its sha256 out', async () => {
      const { c } = await spawn();
      const data = randomBytes(1024 * 1024);
      const out: Buffer[] = [];
      const r = await c.exec(
        { argv: ['/bin/sh', '-c', 'sha256sum | cut -d" " -f1'], stdin: data, timeoutMs: 60_000 },
        { onStdout: (d) => void out.push(d) },
      );
      assert.equal(r.exitCode, 0);
      assert.equal(Buffer.concat(out).toString().trim(), createHash('sha256').update(data).digest('hex'));
    });

    test('exec timeout: the command is killed and reported timed out; the agent lives on', async () => {
      const { b, c } = await spawn();
      const r = await c.exec({ argv: ['/bin/sleep', '600'], timeoutMs: 500 });
      assert.equal(r.timedOut, true);
      assert.equal(r.exitCode, null);
      assert.equal((await c.health()).pid, agentPid(b));
    });

    test('files: write, read back, stat, list, mkdir, remove', async () => {
      const { c } = await spawn();
      const data = randomBytes(1024 * 1024 + 17);
      await c.mkdir('/root/d');
      await c.writeFile('/root/d/blob', data);
      const chunks: Buffer[] = [];
      for await (const chunk of c.readFile('/root/d/blob')) chunks.push(chunk);
      assert.ok(Buffer.concat(chunks).equals(data));
      assert.equal((await c.stat('/root/d/blob')).size, data.length);
      assert.deepEqual(
        (await c.list('/root/d')).map((e) => e.name),
        ['blob'],
      );
      await c.remove('/root/d', { recursive: true });
      await assert.rejects(c.stat('/root/d'), (e: unknown) => (e as { code?: string }).code === 'NOT_FOUND');
    });

    test('memory limit: processes allocating past memory_mb are OOM-killed; the agent survives', async () => {
      const { b, c, s } = await spawn({ memoryMb: subject.smallMemoryMb });
      const each = Math.ceil(subject.smallMemoryMb / 2);
      const r = await sh(
        c,
        `for i in 1 2 3 4; do dd if=/dev/zero of=/dev/null bs=${each}M count=1 2>/dev/null & done; wait; echo done`,
        120_000,
      );
      assert.equal(r.out, 'done\n', JSON.stringify(r));
      assert.ok((await (subject.oomKills ?? cgroupOomKills)(provider, s.id, c)) > 0, 'the kernel OOM-killed an allocation');
      assert.equal((await c.health()).pid, agentPid(b), 'agent still answers');
    });

    test('disk limit: writes above disk_mb fail with ENOSPC; freeing space recovers', {
      skip: subject.unsupported?.diskLimit ?? false,
    }, async () => {
      const { c } = await spawn({ diskMb: subject.smallDiskMb, memoryMb: Math.max(256, subject.defaults.memoryMb) });
      const r = await sh(c, `dd if=/dev/zero of=/root/big bs=1M count=${subject.smallDiskMb * 2} 2>&1; echo rc=$?`, 120_000);
      assert.match(r.out, /No space left on device/);
      assert.doesNotMatch(r.out, /rc=0/);
      assert.equal((await sh(c, 'rm -f /root/big && echo ok > /root/small && cat /root/small')).out, 'ok\n');
    });

    test('pause stops the bunker, resume continues it', async () => {
      const { c, s } = await spawn();
      await provider.pause(s.id);
      assert.equal(await provider.isPaused(s.id), true);
      const pending = c.health();
      assert.equal(await raceTimeout(pending, 300), 'timeout', 'a paused bunker does not answer');
      await provider.resume(s.id);
      assert.equal(await provider.isPaused(s.id), false);
      assert.notEqual(await raceTimeout(pending, 30_000), 'timeout');
    });

    test('stats report cpu, memory and disk used; unknown ids are NOT_FOUND', async () => {
      const { c, s } = await spawn();
      await sh(c, 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done');
      const before = await provider.stats(s.id);
      assert.ok(before.cpuUsageNs > 0, `cpu ${before.cpuUsageNs}`);
      assert.ok(before.memoryBytes > 0, `memory ${before.memoryBytes}`);
      await sh(c, 'head -c 2097152 /dev/urandom > /root/disk.bin && sync');
      const st = await provider.stats(s.id);
      assert.ok(
        (st.diskUsedBytes ?? 0) >= (before.diskUsedBytes ?? 0) + 2 * 1024 * 1024,
        `disk ${before.diskUsedBytes} → ${st.diskUsedBytes}`,
      );
      const notFound = (e: unknown) => e instanceof ProviderError && e.code === 'NOT_FOUND';
      await assert.rejects(provider.stats('no-such-bunker'), notFound);
      await assert.rejects(provider.pause('no-such-bunker'), notFound);
    });

    test('invalid specs are rejected before anything is created; a duplicate id too', async () => {
      const cases: Array<[Partial<BunkerSpec>, string]> = [
        [{ cpuMillicores: 0 }, 'LIMIT_INVALID'],
        [{ memoryMb: subject.minMemoryMb - 1 }, 'LIMIT_INVALID'],
        [{ diskMb: 0 }, 'LIMIT_INVALID'],
        [{ hostname: 'bad host' }, 'SPAWN_FAILED'],
        [{ id: '../escape' }, 'SPAWN_FAILED'],
        [{ imageSha256: 'nothex' }, 'SPAWN_FAILED'],
      ];
      for (const [over, code] of cases) {
        const s = spec(over);
        await assert.rejects(provider.spawn(s), (e: unknown) => e instanceof ProviderError && e.code === code, JSON.stringify(over));
        if (s.id !== '../escape') for (const path of subject.footprint?.(provider, s.id) ?? []) assert.equal(existsSync(path), false, path);
      }
      const { s } = await spawn();
      await assert.rejects(provider.spawn(spec({ id: s.id })), /already exists/);
      assert.equal((await provider.list()).find((x) => x.id === s.id)?.running, true, 'the first one is untouched');
    });

    test('destroy leaves nothing behind, also when paused and with processes running; twice is fine', async () => {
      const { b, c, s } = await spawn();
      await sh(c, 'sleep 1000 >/dev/null 2>&1 & sleep 1000 >/dev/null 2>&1 & echo started');
      await provider.pause(s.id);
      await provider.destroy(s.id);
      await assertGone(s.id, b.pid);
      await provider.destroy(s.id);
      await provider.destroy('never-existed');
      await provider.destroy('../../etc'); // never resolved as a path
      const closed = await raceTimeout(c.closed, 10_000);
      assert.notEqual(closed, 'timeout', 'the agent channel closed');
    });

    test('a new provider on the same dataDir (worker restart) finds, reaches and destroys a running bunker', async () => {
      const { b, c, s } = await spawn();
      c.close(); // the old worker's channel goes away with it
      const again = subject.make(dataDir);
      await again.init();
      const found = (await again.list()).find((x) => x.id === s.id);
      assert.deepEqual(found, { id: s.id, running: true, agentSocketPath: b.agentSocketPath });
      const c2 = await AgentClient.connect(found.agentSocketPath, { awaitHello: true, timeoutMs: 30_000 });
      assert.equal((await c2.health()).pid, agentPid(b));
      await assertHostname(c2, s.hostname);
      c2.close();
      await again.destroy(s.id);
      await assertGone(s.id, b.pid);
      await again.shutdown();
    });
  });
}
