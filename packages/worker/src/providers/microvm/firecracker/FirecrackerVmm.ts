/**
 * The Firecracker driver of the Vmm boundary: each VM is one `firecracker --api-sock` process,
 * started detached (it outlives a worker restart) inside its cgroup with its working directory
 * in the VM's directory, then configured and booted — or restored from a snapshot — through
 * its REST API (FirecrackerApi; the requests are FirecrackerMachine's). The agent is reached
 * over virtio-vsock (agent/vsockAddress.ts). Firecracker needs KVM: there is no TCG fallback.
 *
 * Firecracker is not on the machines this was written on (no binary, and their /dev/kvm is
 * PVM): the driver was tested against a double that checks every request against
 * Firecracker's published OpenAPI document (test/fixtures/firecracker.yaml); `scaibunker
 * certify` runs the provider suite on it where a binary and KVM exist.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { access, rm } from 'node:fs/promises';
import net from 'node:net';
import { promisify } from 'node:util';
import { AgentClient } from '../../../agent/AgentClient.js';
import { vsockAddress } from '../../../agent/vsockAddress.js';
import { waitForFile } from '../../../util/waitForFile.js';
import { withTimeout } from '../../../util/withTimeout.js';
import { CGROUP_EXEC } from '../../host/cgroupExec.js';
import type { Accel, StartedVm, VmControl, VmFiles, Vmm, VmStart } from '../Vmm.js';
import { VmStartError } from '../VmStartError.js';
import { FirecrackerApi } from './FirecrackerApi.js';
import { FirecrackerKvmProbe } from './FirecrackerKvmProbe.js';
import { AGENT_VSOCK_PORT, type ApiRequest, FirecrackerMachine } from './FirecrackerMachine.js';

const execFileP = promisify(execFile);

/**
 * VmControl over the API socket. `closed` follows one idle connection held open to the API
 * socket: Firecracker closing it is how a worker that is not its parent learns that it exited.
 */
class FirecrackerControl implements VmControl {
  readonly closed: Promise<void>;

  private constructor(
    readonly api: FirecrackerApi,
    private readonly watch: net.Socket,
    /** Where a snapshot of this VM writes its guest memory (a template VM only). */
    readonly templateRam?: string,
  ) {
    this.closed = new Promise((res) => watch.once('close', () => res()));
    watch.on('error', () => {}); // 'close' follows
  }

  static open(socketPath: string, templateRam?: string): Promise<FirecrackerControl> {
    return new Promise((resolve, reject) => {
      const watch = net.createConnection({ path: socketPath });
      watch.once('error', reject);
      watch.once('connect', () => {
        watch.off('error', reject);
        resolve(new FirecrackerControl(new FirecrackerApi(socketPath), watch, templateRam));
      });
    });
  }

  async pause(): Promise<void> {
    await this.api.patch('/vm', { state: 'Paused' });
  }

  async resume(): Promise<void> {
    await this.api.patch('/vm', { state: 'Resumed' });
  }

  async isPaused(): Promise<boolean> {
    return (await this.api.get<{ state: string }>('/')).state === 'Paused';
  }

  close(): void {
    this.watch.destroy();
  }
}

export class FirecrackerVmm implements Vmm {
  readonly diskFormat = 'raw';
  /**
   * The agent channel is virtio-vsock: guests built by scripts/build-guest-kernel.sh before it
   * carried the vsock driver (guest.json `modules`) make a microvm provider on Firecracker
   * refuse to start, naming what is missing.
   */
  readonly requiredGuestModules: readonly string[] = ['vsock', 'vmw_vsock_virtio_transport'];

  constructor(readonly binary = 'firecracker') {}

  /**
   * Why `--vmm firecracker` cannot run here, or undefined: the binary must answer --version and
   * /dev/kvm must be open for reading and writing. Checked before a worker starts anything.
   */
  static async unavailableReason(binary: string): Promise<string | undefined> {
    try {
      await new FirecrackerVmm(binary).version();
    } catch (e) {
      return `the Firecracker binary ${binary} does not run: ${(e as Error).message.split('\n')[0]}`;
    }
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch {
      return 'Firecracker needs KVM and /dev/kvm is not usable here';
    }
    return undefined;
  }

  async version(): Promise<string> {
    const { stdout } = await execFileP(this.binary, ['--version'], { timeout: 10_000 });
    const line = stdout.split('\n')[0]?.trim() ?? '';
    if (!/firecracker/i.test(line)) throw new Error(`${this.binary} --version printed ${JSON.stringify(line)}, not a Firecracker version`);
    return line;
  }

  /** KVM only: 'tcg' is refused, and a KVM that boots no guest (e.g. PVM) is an error, not a fallback. */
  async detectAccel(mode: 'auto' | Accel, cacheFile: string, kernel: { path: string; sha256: string }) {
    if (mode === 'tcg') throw new Error('Firecracker runs guests on KVM only (accel tcg is QEMU-only)');
    const probe = await new FirecrackerKvmProbe(this.binary).run({
      version: await this.version(),
      kernelPath: kernel.path,
      kernelSha256: kernel.sha256,
      // beside QEMU's answer, not over it (certify asks both on one host)
      cacheFile: cacheFile.replace(/(\.json)?$/, '-firecracker.json'),
    });
    if (!probe.ok) throw new Error(`Firecracker cannot boot a guest on this host's KVM: ${probe.reason}`);
    return { accel: 'kvm' as const, reason: probe.reason };
  }

  agentAddress(files: VmFiles): string {
    return vsockAddress(files.agentSock, AGENT_VSOCK_PORT);
  }

  async attach(files: VmFiles): Promise<VmControl> {
    return withTimeout(FirecrackerControl.open(files.controlSock), 2000, 'connecting to the Firecracker API');
  }

  async start(o: VmStart): Promise<StartedVm> {
    if (o.accel !== 'kvm') throw new VmStartError('Firecracker runs guests on KVM only', undefined);
    const t0 = performance.now();
    const machine = new FirecrackerMachine(o);
    const requests: ApiRequest[] = o.memory.kind === 'restore' ? machine.restoreRequests() : machine.bootRequests();
    // Firecracker refuses to start on an existing API socket (a leftover of an earlier attempt)
    await rm(o.files.controlSock, { force: true });
    const exec = [...(o.nic ? ['nsenter', `--net=${o.nic.netnsPath}`] : []), this.binary, '--api-sock', o.files.controlSock];
    const log = openSync(o.files.log, 'a');
    let pid: number | undefined;
    let control: FirecrackerControl | undefined;
    let agent: AgentClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new AbortController();
    try {
      const child = spawn('/bin/sh', ['-c', CGROUP_EXEC, 'sh', ...o.cgroupProcs, '--', ...exec], {
        cwd: o.files.dir,
        detached: true,
        stdio: ['ignore', log, log],
      });
      pid = child.pid;
      const exited = new Promise<never>((_, rej) => {
        child.once('exit', (code, sig) => rej(new VmStartError(`Firecracker exited during start (code ${code}, signal ${sig})`, pid)));
        child.once('error', (e) => rej(new VmStartError(`Firecracker could not be started: ${e.message}`, pid)));
      });
      exited.catch(() => {});
      child.unref();
      const deadline = new Promise<never>((_, rej) => {
        timer = setTimeout(
          () => rej(new VmStartError(`the guest was not ready within ${Math.round(o.timeoutMs / 1000)} s`, pid)),
          o.timeoutMs,
        );
      });
      deadline.catch(() => {});
      const abort = Promise.race([exited, deadline]);

      await Promise.race([waitForFile(o.files.controlSock, o.timeoutMs), abort]);
      const ram = o.memory.kind === 'template' ? o.memory.ram : undefined;
      await Promise.race([new FirecrackerApi(o.files.controlSock).whenListening(o.timeoutMs), abort]);
      control = await Promise.race([FirecrackerControl.open(o.files.controlSock, ram), abort]);
      for (const r of requests) await Promise.race([control.api.call(r.method, r.path, r.body), abort]);
      // The guest agent listens on its vsock port; connecting retries until it does.
      agent = await Promise.race([
        AgentClient.connect(this.agentAddress(o.files), { timeoutMs: o.timeoutMs, awaitHello: true, signal: giveUp.signal }),
        abort,
      ]);
      return { pid: pid as number, control, agent, readyMs: performance.now() - t0 };
    } catch (err) {
      giveUp.abort('the start failed');
      agent?.close();
      control?.close();
      // the caller removes the cgroup too; killing here means no Firecracker outlives a failed start
      if (pid) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (err instanceof VmStartError) throw err;
      throw new VmStartError((err as Error).message, pid);
    } finally {
      clearTimeout(timer);
      closeSync(log);
    }
  }

  /**
   * Closes the agent connection (the guest agent keeps listening on its vsock port, and
   * Firecracker resets vsock connections on restore anyway), pauses the VM and writes a full
   * snapshot: device state to `statePath`, guest memory to the template's RAM file — which
   * restored VMs map privately (the File memory backend), as QEMU's do.
   */
  async snapshot(vm: StartedVm, statePath: string, timeoutMs: number): Promise<void> {
    const control = vm.control as FirecrackerControl;
    if (!control.templateRam) throw new Error('only a VM started with memory kind template can be snapshotted');
    vm.agent.close();
    await withTimeout(vm.agent.closed, timeoutMs, 'closing the agent connection');
    await control.pause();
    await withTimeout(
      control.api.put('/snapshot/create', { snapshot_type: 'Full', snapshot_path: statePath, mem_file_path: control.templateRam }),
      timeoutMs,
      'writing the Firecracker snapshot',
    );
  }
}
