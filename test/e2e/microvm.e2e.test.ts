/**
 * End to end through the SDK against a real `scaibunker serve` process running `isolation:
 * 'microvm'` bunkers (QEMU -M microvm; TCG on this host): the bunker life in a guest kernel,
 * restores from the shape's memory snapshot with their own identity, a QEMU process killed
 * from outside (crashed, then cleaned up by the worker), and validation of the isolation.
 *
 *   node --import tsx --test test/e2e/microvm.e2e.test.ts
 *
 * Needs root and qemu-system-x86_64 (plus the guest kernel from scripts/build-guest-kernel.sh).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient, ScaiBunkerError, ValidationError } from '@scaibunker/sdk';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  eventually,
  FAST_INTERVALS,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
  tempDataDir,
  terminalScreen,
} from './harness.js';

/** TCG boots are slow, and another QEMU may share the 2 cores. */
const TEST_TIMEOUT_MS = 120_000;
const SHAPE = { image: 'minimal', isolation: 'microvm', memory_mb: 256, disk_mb: 128 } as const;
const CGROUP_ROOT = '/sys/fs/cgroup';

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (QEMU in its own cgroups)';
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'qemu-system-x86_64 is not installed';
  }
  return false;
}

interface VmJson {
  id: string;
  pid: number;
  cgroup: string;
  snapshot: string | null;
}

/** Whether `pid` is a live process (a zombie is not). */
function alivePid(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Whether `pid` is still the QEMU of bunker `id` (a zombie, or a reused pid, is not). */
function qemuAlive(pid: number, id: string): boolean {
  try {
    return alivePid(pid) && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`/vms/${id}/`);
  } catch {
    return false;
  }
}

/** The host cgroup directories of `rel` (e.g. /scaibunker-vm/<id>) that exist, in any hierarchy. */
function cgroupDirsOf(rel: string): string[] {
  return readdirSync(CGROUP_ROOT)
    .map((c) => join(CGROUP_ROOT, c, rel))
    .filter((d) => existsSync(d));
}

async function expectError(p: Promise<unknown>, code: string, status: number): Promise<ScaiBunkerError> {
  let caught: ScaiBunkerError | undefined;
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ScaiBunkerError, `expected a ScaiBunkerError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    caught = err;
    return true;
  });
  return caught as ScaiBunkerError;
}

const skip = skipReason();

describe('microvm bunkers through scaibunker serve, end to end', { skip }, () => {
  let data: { dir: string; remove(): void } | undefined;
  let server: ServerProcess | undefined;
  let tenant: ScaiBunkerClient;
  const created: Bunker[] = [];
  /** Every VM this file saw: none may outlive the suite, in a process or a cgroup. */
  const seenVms: VmJson[] = [];

  const workerDir = () => join((data as { dir: string }).dir, 'worker');
  const vmDir = (id: string) => join(workerDir(), 'microvm', 'vms', id);
  const snapshotsDir = () => join(workerDir(), 'microvm', 'snapshots');
  const readVm = (id: string): VmJson => {
    const vm = JSON.parse(readFileSync(join(vmDir(id), 'vm.json'), 'utf8')) as VmJson;
    seenVms.push(vm);
    return vm;
  };

  const create = async (opts: Record<string, unknown> = {}) => {
    const b = await Bunker.create({ ...SHAPE, ...opts }, tenant);
    created.push(b);
    return b;
  };

  /** The one snapshot of SHAPE once the worker has built it (its key, a sha256). */
  const readySnapshot = () =>
    eventually(
      'the memory snapshot of the shape',
      async () => {
        const keys = existsSync(snapshotsDir()) ? readdirSync(snapshotsDir()).filter((n) => /^[0-9a-f]{64}$/.test(n)) : [];
        return keys.find((k) => existsSync(join(snapshotsDir(), k, 'snapshot.json')));
      },
      90_000,
    );

  before(
    async () => {
      data = tempDataDir();
      server = await ServerProcess.start(['serve', '--port', '0', '--data-dir', data.dir, '--image-dir', IMAGE_DIR, ...FAST_INTERVALS]);
      const admin = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
      const t = await admin.admin.createTenant('vm-tenant');
      tenant = new ScaiBunkerClient({
        baseUrl: server.url,
        apiKey: (await admin.admin.createApiKey(t.id, 'k', ['scaibunker:admin:tenant'])).key,
      });
      // `--isolations auto` offers microVMs only when QEMU and the guest kernel work here.
      await eventually('the local worker offering microvm', async () =>
        (await admin.workers.list()).some((w) => w.state === 'online' && w.isolations.includes('microvm')) ? true : undefined,
      ).catch((e: Error) => {
        throw new Error(`${e.message}; server output:\n${server?.output()}`);
      });
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  after(
    async () => {
      for (const b of created.splice(0)) await b.terminate().catch(() => undefined);
      await server?.kill();
      if (!data) return;
      const dir = data.dir;
      let orphanVms: string[] = [];
      let orphans: string[] = [];
      try {
        if (existsSync(join(dir, 'worker', 'microvm', 'vms'))) {
          const { MicrovmProvider } = await import('@scaibunker/worker');
          const provider = new MicrovmProvider({ dataDir: join(dir, 'worker'), snapshots: 'off' });
          const left = await provider.list();
          for (const b of left) await provider.destroy(b.id);
          await provider.shutdown();
          orphanVms = left.map((b) => b.id);
        }
        orphans = await destroyLeftoverBunkers(join(dir, 'worker'));
      } finally {
        const leftMounts = mountsUnder(dir);
        const livePids = seenVms.filter((vm) => qemuAlive(vm.pid, vm.id)).map((vm) => vm.pid);
        for (const pid of livePids) process.kill(pid, 'SIGKILL');
        const leftCgroups = seenVms.flatMap((vm) => cgroupDirsOf(vm.cgroup));
        await eventually('leftover QEMUs dead', async () => (livePids.some((pid) => alivePid(pid)) ? undefined : true), 10_000).catch(
          () => undefined,
        );
        for (const d of leftCgroups) {
          try {
            rmdirSync(d);
          } catch {
            // still busy: reported below
          }
        }
        data.remove();
        assert.deepEqual(leftMounts, [], 'no mount is left under the data dir');
        assert.deepEqual(orphanVms, [], 'every VM was destroyed by the product, not by this cleanup');
        assert.deepEqual(orphans, [], 'every container was destroyed by the product, not by this cleanup');
        assert.deepEqual(livePids, [], 'no QEMU outlives the suite');
        assert.deepEqual(leftCgroups, [], 'no VM cgroup outlives the suite');
      }
    },
    { timeout: TEST_TIMEOUT_MS },
  );

  test('a microvm bunker lives: guest kernel, hostname, files, streaming exec, pause/resume, terminate tears the VM down', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const b = await create();
    assert.equal(b.state, 'running');
    assert.equal(b.info.isolation, 'microvm');
    assert.equal((await b.refresh()).isolation, 'microvm');

    const uname = await b.exec('uname -r');
    assert.equal(uname.exit_code, 0);
    assert.ok(uname.stdout.trim().length > 0);
    assert.notEqual(uname.stdout.trim(), release(), 'the bunker runs its own kernel, not the host one');
    assert.equal((await b.exec('hostname')).stdout.trim(), b.id.replace('_', '-'));

    const payload = Buffer.from(`bytes from the host ${'x'.repeat(70_000)}\n`);
    await b.files.write('/root/note.txt', payload);
    assert.ok((await b.files.read('/root/note.txt')).equals(payload));
    assert.equal((await b.exec('wc -c < /root/note.txt')).stdout.trim(), String(payload.length));

    const chunks: string[] = [];
    const streamed = await b.exec('for i in 1 2 3; do echo out$i; sleep 0.3; done; echo err >&2; exit 4', {
      onStdout: (s: string) => void chunks.push(s),
    });
    assert.equal(chunks.join(''), 'out1\nout2\nout3\n');
    assert.ok(chunks.length >= 2, `stdout arrived in pieces as it was written (got ${JSON.stringify(chunks)})`);
    assert.equal(streamed.stderr, 'err\n');
    assert.equal(streamed.exit_code, 4);

    const vm = readVm(b.id);
    assert.ok(vm.pid > 0 && qemuAlive(vm.pid, b.id), 'vm.json names the live QEMU');
    assert.equal(vm.cgroup, `/scaibunker-vm/${b.id}`);
    assert.equal(vm.snapshot, null, 'the first bunker of its shape cold-boots');
    assert.ok(cgroupDirsOf(vm.cgroup).length > 0, 'QEMU has its cgroup dirs');

    assert.equal((await b.pause()).state, 'paused');
    assert.equal((await b.refresh()).state, 'paused');
    await expectError(b.exec('true'), 'BUNKER_NOT_RUNNING', 409);
    assert.ok(qemuAlive(vm.pid, b.id), 'a paused VM keeps its process');
    assert.equal((await b.resume()).state, 'running');
    assert.equal((await b.exec('echo again')).stdout, 'again\n');
    assert.ok((await b.files.read('/root/note.txt')).equals(payload), 'the guest kept its files across pause');

    const ended = await b.terminate();
    assert.equal(ended.state, 'terminated');
    assert.equal(ended.termination_reason, 'user');
    assert.equal(existsSync(vmDir(b.id)), false, 'the VM dir is removed');
    assert.equal(qemuAlive(vm.pid, b.id), false, 'QEMU is gone');
    assert.deepEqual(cgroupDirsOf(vm.cgroup), [], 'the cgroup dirs are removed');
    await expectError(b.exec('true'), 'BUNKER_NOT_RUNNING', 409);
  });

  test('bunkers restored from the shape snapshot each get their own identity and disk', { timeout: TEST_TIMEOUT_MS }, async () => {
    const key = await readySnapshot();
    const settled = await Promise.allSettled([create(), create()]);
    const failures = settled.filter((s) => s.status === 'rejected').map((s) => String((s as PromiseRejectedResult).reason));
    // A template whose migration stream is short (its writer was stopped early) fails every restore.
    const stateBytes = statSync(join(snapshotsDir(), key, 'state.bin')).size;
    assert.deepEqual(failures, [], `both bunkers start (snapshot ${key.slice(0, 12)}: state.bin ${stateBytes} bytes)`);
    const [a, b] = settled.map((s) => (s as PromiseFulfilledResult<Bunker>).value) as [Bunker, Bunker];
    for (const x of [a, b]) {
      assert.equal(x.state, 'running');
      assert.equal(x.info.isolation, 'microvm');
      assert.equal(readVm(x.id).snapshot, key, `${x.id} was restored from the snapshot`);
      assert.equal((await x.exec('hostname')).stdout.trim(), x.id.replace('_', '-'));
    }
    const idA = (await a.exec('cat /etc/machine-id')).stdout.trim();
    const idB = (await b.exec('cat /etc/machine-id')).stdout.trim();
    assert.match(idA, /^[0-9a-f]{32}$/);
    assert.match(idB, /^[0-9a-f]{32}$/);
    assert.notEqual(idA, idB, 'each restored bunker has its own machine id');
    const randA = (await a.exec('head -c 16 /dev/urandom | od -An -tx1')).stdout;
    const randB = (await b.exec('head -c 16 /dev/urandom | od -An -tx1')).stdout;
    assert.notEqual(randA, randB, 'the restored guests do not share their random stream');

    await a.files.write('/root/only-in-a', 'mine');
    assert.equal((await a.files.read('/root/only-in-a')).toString(), 'mine');
    await expectError(b.files.read('/root/only-in-a'), 'FILE_NOT_FOUND', 404);
    assert.equal((await b.exec('test -e /root/only-in-a; echo $?')).stdout.trim(), '1');

    for (const x of [a, b]) assert.equal((await x.terminate()).state, 'terminated');
    for (const x of [a, b]) assert.equal(existsSync(vmDir(x.id)), false);
  });

  test('a background process and a terminal shell in a microvm: output replays, stty size follows resize', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const b = await create();
    const p = await b.processes.start('for i in 1 2 3; do echo vm$i; done; exit 2', { tag: 'vm' });
    const done = await p.wait();
    assert.equal(done.state, 'exited');
    assert.equal(done.exit_code, 2);
    let replay = '';
    for await (const e of p.events()) if (e.type !== 'exit') replay += e.data.toString();
    assert.equal(replay, 'vm1\nvm2\nvm3\n');

    const term = await b.shell({ cols: 70, rows: 22 });
    const screen = terminalScreen(term);
    term.write('stty size\n');
    await screen.waitFor(/22 70/);
    term.resize(81, 25);
    term.write('stty size\n');
    await screen.waitFor(/25 81/);
    term.write('exit\n');
    assert.equal((await term.exited).exit_code, 0);
    await b.terminate();
  });

  test('QEMU killed from outside: the bunker fails as crashed and the worker removes the VM', { timeout: TEST_TIMEOUT_MS }, async () => {
    // Another shape than the snapshot tests': a cold boot, so this does not depend on restores working.
    const b = await create({ memory_mb: 192 });
    assert.equal((await b.exec('echo up')).stdout, 'up\n');
    const vm = readVm(b.id);
    assert.ok(qemuAlive(vm.pid, b.id));
    assert.equal(vm.snapshot, null, 'cold-booted');
    assert.ok(cgroupDirsOf(vm.cgroup).length > 0);
    process.kill(vm.pid, 'SIGKILL');

    const failed = await eventually(
      'the bunker failed',
      async () => {
        const s = await b.refresh();
        return s.state === 'failed' ? s : undefined;
      },
      60_000,
    );
    assert.match(failed.termination_reason ?? '', /crash/);
    await expectError(b.exec('true'), 'BUNKER_NOT_RUNNING', 409);
    await eventually(
      'the VM dir, cgroup dirs and QEMU gone',
      async () => (!existsSync(vmDir(b.id)) && cgroupDirsOf(vm.cgroup).length === 0 && !qemuAlive(vm.pid, b.id) ? true : undefined),
      60_000,
    );
    assert.equal((await b.terminate()).state, 'failed', 'terminating a failed bunker answers its row');
  });

  test('an unknown isolation is a 400 VALIDATION_FAILED and creates nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
    const countBefore = (await Bunker.list({}, tenant).page()).items.length;
    const err = await expectError(create({ isolation: 'vm' as never }), 'VALIDATION_FAILED', 400);
    assert.ok(err instanceof ValidationError, `the SDK's typed error, got ${err.constructor.name}`);
    assert.match(String(err.details.field), /isolation/);
    assert.equal((await Bunker.list({}, tenant).page()).items.length, countBefore, 'no bunker row was created');
  });
});
