/**
 * The Firecracker driver (src/providers/microvm/firecracker/) against its published API.
 * Neither Firecracker nor a KVM that boots a stock guest exists on the machines this runs on:
 * the driver spawns a double of the firecracker process (test/firecracker/) that checks every
 * request against Firecracker's OpenAPI document (test/fixtures/firecracker.yaml, v1.16.1) and
 * answers as Firecracker would. This tests the API contract only; the provider suite on a real
 * Firecracker runs where `scaibunker certify` finds a binary and KVM.
 *
 *   node --import tsx --test packages/worker/test/providers/firecracker.test.ts
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FirecrackerApi } from '../../src/providers/microvm/firecracker/FirecrackerApi.js';
import { FirecrackerApiError } from '../../src/providers/microvm/firecracker/FirecrackerApiError.js';
import { AGENT_VSOCK_PORT } from '../../src/providers/microvm/firecracker/FirecrackerMachine.js';
import { FirecrackerVmm } from '../../src/providers/microvm/firecracker/FirecrackerVmm.js';
import { MicrovmProvider } from '../../src/providers/microvm/MicrovmProvider.js';
import type { StartedVm, VmFiles, VmMemory, VmStart } from '../../src/providers/microvm/Vmm.js';
import { VmStartError } from '../../src/providers/microvm/VmStartError.js';
import { ProviderError } from '../../src/providers/Provider.js';
import { FirecrackerApiDouble, type LoggedRequest } from '../firecracker/FirecrackerApiDouble.js';
import { pidAlive } from './support.js';

const DOUBLE_MAIN = resolve(import.meta.dirname, '../firecracker/firecrackerDouble.ts');
const TSX = new URL(import.meta.resolve('tsx')).pathname;

const root = mkdtempSync('/tmp/sbfc-');
const started: StartedVm[] = [];
after(() => {
  for (const vm of started) {
    vm.agent.close();
    vm.control.close();
    if (pidAlive(vm.pid)) process.kill(vm.pid, 'SIGKILL');
  }
  rmSync(root, { recursive: true, force: true });
});

let seq = 0;
/** An executable that runs the double with these knobs, and the NDJSON log it writes. */
function doubleBinary(knobs: { fault?: string; exitOn?: string } = {}): {
  binary: string;
  log: string;
  requests(): LoggedRequest[];
  /** The requests that change the VM (GETs left out: the driver asks GET /version to see the API up). */
  changes(): LoggedRequest[];
} {
  const n = ++seq;
  const log = join(root, `requests-${n}.ndjson`);
  const binary = join(root, `firecracker-${n}`);
  const env = [
    `FC_DOUBLE_LOG='${log}'`,
    knobs.fault ? `FC_DOUBLE_FAULT='${knobs.fault}'` : '',
    knobs.exitOn ? `FC_DOUBLE_EXIT_ON='${knobs.exitOn}'` : '',
  ];
  writeFileSync(binary, `#!/bin/sh\n${env.filter(Boolean).join(' ')} exec '${process.execPath}' --import '${TSX}' '${DOUBLE_MAIN}' "$@"\n`);
  chmodSync(binary, 0o755);
  const requests = () =>
    existsSync(log)
      ? readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as LoggedRequest)
      : [];
  return { binary, log, requests, changes: () => requests().filter((r) => r.method !== 'GET') };
}

/** A VM directory as the microvm provider lays it out, with a raw root disk and a guest kernel + initramfs. */
function vmDir(): VmFiles {
  const dir = join(root, `vm-${++seq}`);
  mkdirSync(dir);
  const files = {
    dir,
    disk: join(dir, 'root.raw'),
    agentSock: join(dir, 'agent.sock'),
    controlSock: join(dir, 'control.sock'),
    console: join(dir, 'console.log'),
    log: join(dir, 'vmm.log'),
  };
  writeFileSync(files.disk, Buffer.alloc(4096));
  return files;
}

const kernelPath = join(root, 'vmlinuz');
const initrdPath = join(root, 'initramfs.cpio.gz');
before(() => {
  writeFileSync(kernelPath, 'kernel');
  writeFileSync(initrdPath, 'initrd');
});

function startOptions(files: VmFiles, memory: VmMemory = { kind: 'anonymous' }): VmStart {
  return { files, kernelPath, initrdPath, memoryMb: 256, cpus: 2, accel: 'kvm', memory, cgroupProcs: [], timeoutMs: 20_000 };
}

async function startVm(vmm: FirecrackerVmm, o: VmStart): Promise<StartedVm> {
  const vm = await vmm.start(o);
  started.push(vm);
  return vm;
}

/** The driver SIGKILLed a failed start's process: it is dead (a zombie at most) once the kernel got to it. */
async function gone(pid: number): Promise<void> {
  // no event tells another process's death apart from its parent's: poll /proc, bounded
  for (let i = 0; i < 500 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(pidAlive(pid), false, `process ${pid} gone`);
}

describe('the Firecracker API double', () => {
  let dbl: FirecrackerApiDouble;
  let api: FirecrackerApi;
  before(async () => {
    dbl = new FirecrackerApiDouble({ apiSock: join(root, 'direct.sock') });
    await dbl.listen();
    api = new FirecrackerApi(join(root, 'direct.sock'));
  });
  after(() => dbl.close());

  test('refuses what Firecracker refuses, with a fault_message naming it', async () => {
    const refused = async (p: Promise<unknown>, re: RegExp) =>
      assert.rejects(p, (e: unknown) => e instanceof FirecrackerApiError && e.status === 400 && re.test(e.faultMessage));
    await refused(api.put('/machine-config', { vcpu_count: 1 }), /body\.mem_size_mib is required/);
    await refused(api.put('/machine-config', { vcpu_count: 1, mem_size_mib: 128, memory: 1 }), /body\.memory is not a known field/);
    await refused(api.put('/machine-config', { vcpu_count: 33, mem_size_mib: 128 }), /vcpu_count must be <= 32/);
    await refused(api.put('/machine-config', { vcpu_count: 1.5, mem_size_mib: 128 }), /vcpu_count must be an integer/);
    await refused(api.put('/actions', { action_type: 'Boot' }), /action_type must be one of/);
    await refused(
      api.put('/drives/root', { drive_id: 'other', is_root_device: false, path_on_host: kernelPath, is_read_only: true }),
      /does not match/,
    );
    await refused(
      api.put('/drives/root', { drive_id: 'root', is_root_device: false, path_on_host: '/nonexistent', is_read_only: true }),
      /Cannot open/,
    );
    await refused(api.put('/snapshot/load', { snapshot_path: 's', mem_backend: { backend_type: 'File' } }), /backend_path is required/);
    await refused(api.call('PUT', '/no-such-resource', {}), /Invalid request method and\/or path/);
    await refused(api.patch('/vm', { state: 'Paused' }), /pre-boot/);
    await refused(api.put('/actions', { action_type: 'InstanceStart' }), /without kernel configuration/);
  });
});

describe('FirecrackerVmm against the double', () => {
  test('a cold boot: machine config, boot source, drive, vsock, serial, InstanceStart; the agent answers over vsock', async () => {
    const fc = doubleBinary();
    const vmm = new FirecrackerVmm(fc.binary);
    const files = vmDir();
    const vm = await startVm(vmm, startOptions(files));
    assert.equal((await vm.agent.hello).pid, 1);
    assert.ok(pidAlive(vm.pid));
    const reqs = fc.changes();
    assert.deepEqual(
      reqs.map((r) => [r.method, r.path, r.status]),
      [
        ['PUT', '/machine-config', 204],
        ['PUT', '/boot-source', 204],
        ['PUT', '/drives/root', 204],
        ['PUT', '/vsock', 204],
        ['PUT', '/serial', 204],
        ['PUT', '/actions', 204],
      ],
    );
    assert.deepEqual(reqs[0]?.body, { vcpu_count: 2, mem_size_mib: 256, smt: false });
    const boot = reqs[1]?.body as { kernel_image_path: string; initrd_path: string; boot_args: string };
    assert.equal(boot.kernel_image_path, kernelPath);
    assert.equal(boot.initrd_path, initrdPath);
    assert.match(boot.boot_args, new RegExp(`(^| )scaibunker\\.vsock=${AGENT_VSOCK_PORT}( |$)`));
    assert.match(boot.boot_args, /(^| )console=ttyS0( |$)/);
    // device paths relative to the VM directory: a snapshot restores onto another VM's own files
    assert.deepEqual(reqs[2]?.body, { drive_id: 'root', path_on_host: 'root.raw', is_root_device: false, is_read_only: false });
    assert.deepEqual(reqs[3]?.body, { guest_cid: 3, uds_path: 'agent.sock' });
    assert.deepEqual(reqs[4]?.body, { serial_out_path: 'console.log' });
    assert.deepEqual(reqs[5]?.body, { action_type: 'InstanceStart' });
    assert.match(readFileSync(files.console, 'utf8'), /Linux version/);
    assert.equal(vmm.agentAddress(files), `vsock:${AGENT_VSOCK_PORT}:${files.agentSock}`);
  });

  test('pause, resume and a re-attach from another worker; the control sees the process exit', async () => {
    const fc = doubleBinary();
    const vmm = new FirecrackerVmm(fc.binary);
    const files = vmDir();
    const vm = await startVm(vmm, startOptions(files));
    await vm.control.pause();
    assert.equal(await vm.control.isPaused(), true);
    const again = await new FirecrackerVmm(fc.binary).attach(files);
    assert.equal(await again.isPaused(), true);
    await again.resume();
    assert.equal(await vm.control.isPaused(), false);
    assert.deepEqual(
      fc
        .requests()
        .filter((r) => r.method === 'PATCH')
        .map((r) => [r.method, r.path, r.body]),
      [
        ['PATCH', '/vm', { state: 'Paused' }],
        ['PATCH', '/vm', { state: 'Resumed' }],
      ],
    );
    process.kill(vm.pid, 'SIGKILL');
    await again.closed; // the watched API connection closes with the process
    await vm.control.closed;
    again.close();
  });

  test('snapshot: pause, a full snapshot to the template files; a restore loads it in another VM directory', async () => {
    const fc = doubleBinary();
    const vmm = new FirecrackerVmm(fc.binary);
    const tmpl = vmDir();
    const ram = join(tmpl.dir, 'ram');
    const state = join(tmpl.dir, 'state.bin');
    const vm = await startVm(vmm, startOptions(tmpl, { kind: 'template', ram }));
    await vmm.snapshot(vm, state, 20_000);
    const reqs = fc.requests();
    assert.deepEqual(
      reqs.slice(-2).map((r) => [r.method, r.path, r.status, r.body]),
      [
        ['PATCH', '/vm', 204, { state: 'Paused' }],
        ['PUT', '/snapshot/create', 204, { snapshot_type: 'Full', snapshot_path: state, mem_file_path: ram }],
      ],
    );
    assert.ok(existsSync(ram) && existsSync(state));
    process.kill(vm.pid, 'SIGKILL');

    const fc2 = doubleBinary();
    const clone = vmDir();
    copyFileSync(tmpl.disk, clone.disk);
    const restored = await startVm(new FirecrackerVmm(fc2.binary), startOptions(clone, { kind: 'restore', ram, state }));
    assert.equal((await restored.agent.hello).pid, 1);
    assert.deepEqual(
      fc2.changes().map((r) => [r.method, r.path, r.status, r.body]),
      [['PUT', '/snapshot/load', 204, { snapshot_path: state, mem_backend: { backend_type: 'File', backend_path: ram }, resume_vm: true }]],
    );
  });

  test("a restore whose VM directory lacks the disk fails with Firecracker's fault, and no process is left", async () => {
    const fc = doubleBinary();
    const tmpl = vmDir();
    const ram = join(tmpl.dir, 'ram');
    const state = join(tmpl.dir, 'state.bin');
    const vmm = new FirecrackerVmm(fc.binary);
    const vm = await startVm(vmm, startOptions(tmpl, { kind: 'template', ram }));
    await vmm.snapshot(vm, state, 20_000);
    process.kill(vm.pid, 'SIGKILL');
    const clone = vmDir();
    rmSync(clone.disk);
    const err = await vmm.start(startOptions(clone, { kind: 'restore', ram, state })).catch((e: unknown) => e);
    assert.ok(err instanceof VmStartError, String(err));
    assert.match(err.message, /Firecracker refused PUT \/snapshot\/load \(400\): Cannot restore drive \/drives\/root/);
    await gone(err.pid as number);
  });

  test('a refused request (400 fault_message) fails the start with it, and kills the process', async () => {
    const fc = doubleBinary({ fault: 'PUT /drives/root' });
    const err = await new FirecrackerVmm(fc.binary).start(startOptions(vmDir())).catch((e: unknown) => e);
    assert.ok(err instanceof VmStartError, String(err));
    assert.match(err.message, /Firecracker refused PUT \/drives\/root \(400\): injected fault/);
    assert.ok(err.pid && err.pid > 0);
    await gone(err.pid as number);
    assert.equal(fc.requests().at(-1)?.path, '/drives/root', 'nothing was sent after the refusal');
  });

  test('Firecracker exiting during start is reported as such', async () => {
    const fc = doubleBinary({ exitOn: 'InstanceStart' });
    const err = await new FirecrackerVmm(fc.binary).start(startOptions(vmDir())).catch((e: unknown) => e);
    assert.ok(err instanceof VmStartError, String(err));
    assert.match(err.message, /Firecracker exited during start \(code 1/);
  });

  test('KVM only; a missing binary is named before anything starts', async () => {
    const fc = doubleBinary();
    const vmm = new FirecrackerVmm(fc.binary);
    assert.match(await vmm.version(), /^Firecracker v1\.16\.1/);
    await assert.rejects(vmm.detectAccel('tcg', join(root, 'accel.json'), { path: kernelPath, sha256: 'x' }), /KVM only/);
    await assert.rejects(vmm.start({ ...startOptions(vmDir()), accel: 'tcg' }), /KVM only/);
    assert.match((await FirecrackerVmm.unavailableReason(join(root, 'no-such-firecracker'))) ?? '', /does not run/);
    assert.match((await FirecrackerVmm.unavailableReason('/bin/true')) ?? '', /not a Firecracker version/);
  });
});

describe('the microvm provider on Firecracker (the double)', () => {
  /** A guest directory as scripts/build-guest-kernel.sh writes it, loading `modules`. */
  function guestDir(modules: string[]): string {
    const dir = join(root, `guest-${++seq}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'vmlinuz'), 'kernel');
    writeFileSync(join(dir, 'initramfs.cpio.gz'), 'initrd');
    const file = { sha256: '0'.repeat(64), size_bytes: 6 };
    writeFileSync(
      join(dir, 'guest.json'),
      JSON.stringify({ kernel_version: 'test', modules, files: { vmlinuz: file, 'initramfs.cpio.gz': file } }),
    );
    return dir;
  }

  function provider(guest: string): MicrovmProvider {
    const dataDir = join(root, `data-${++seq}`);
    return new MicrovmProvider({
      dataDir,
      guestDir: guest,
      vmm: new FirecrackerVmm(doubleBinary().binary),
      accelCacheFile: join(dataDir, 'accel.json'),
      cgroupParent: 'scaibunker-fc-test',
      logger: { info: () => {}, warn: () => {} },
    });
  }

  test('refuses to start while the guest has no vsock driver for the agent channel', async () => {
    const p = provider(guestDir(['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk', 'virtio_console']));
    await assert.rejects(
      p.init(),
      (e: unknown) => e instanceof ProviderError && e.code === 'RUNTIME_UNAVAILABLE' && /vsock, vmw_vsock_virtio_transport/.test(e.message),
    );
  });

  test('with a vsock guest: KVM probed by booting under Firecracker, raw root disks, cold boots only', async () => {
    const p = provider(guestDir(['virtio_blk', 'vsock', 'vmw_vsock_virtio_transport']));
    await p.init();
    assert.equal(p.accel, 'kvm');
    assert.match((await p.health()).details ?? '', /kernel banner under Firecracker/);
    assert.equal(p.snapshotMode, 'off');
    assert.match(p.paths('b1').disk, /\/root\.raw$/);
    await p.shutdown();
  });
});
