/**
 * The QEMU driver of the Vmm boundary. Each VM is one QEMU process, started detached (it
 * outlives a worker restart) inside its cgroup, paused until its QMP socket is connected, then
 * booted or restored from a snapshot. Later workers re-attach through QMP; QEMU closing that
 * socket is how a worker that is not QEMU's parent learns that the VM process is gone.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { promisify } from 'node:util';
import { AgentClient } from '../../agent/AgentClient.js';
import { waitForFile } from '../../util/waitForFile.js';
import { withTimeout } from '../../util/withTimeout.js';
import { CGROUP_EXEC } from '../host/cgroupExec.js';
import { Accelerator } from './Accelerator.js';
import { AGENT_PORT_ID, QemuCommand } from './QemuCommand.js';
import { Qmp } from './Qmp.js';
import type { Accel, StartedVm, VmControl, VmFiles, Vmm, VmStart } from './Vmm.js';
import { VmStartError } from './VmStartError.js';

export { VmStartError } from './VmStartError.js';

const execFileP = promisify(execFile);

const SNAPSHOT_CAPABILITIES = [
  { capability: 'events', state: true },
  { capability: 'x-ignore-shared', state: true },
];

const TRACE = process.env.SCAIBUNKER_TRACE_SPAWN === '1';

/** VmControl over QMP. */
class QmpControl implements VmControl {
  constructor(readonly qmp: Qmp) {}

  get closed(): Promise<void> {
    return this.qmp.closed;
  }

  async pause(): Promise<void> {
    await this.qmp.execute('stop');
  }

  async resume(): Promise<void> {
    await this.qmp.execute('cont');
  }

  async isPaused(): Promise<boolean> {
    return (await this.qmp.execute<{ status: string }>('query-status')).status === 'paused';
  }

  close(): void {
    this.qmp.close();
  }
}

export class QemuVmm implements Vmm {
  readonly diskFormat = 'qcow2';
  /** Built into every guest this provider ever built (virtio-serial is the agent channel). */
  readonly requiredGuestModules: readonly string[] = [];

  constructor(readonly binary = 'qemu-system-x86_64') {}

  /** QEMU serves the agent's virtio-serial port on a plain Unix socket. */
  agentAddress(files: VmFiles): string {
    return files.agentSock;
  }

  async version(): Promise<string> {
    const { stdout } = await execFileP(this.binary, ['--version']);
    return stdout.split('\n')[0]?.trim() ?? '';
  }

  async detectAccel(mode: 'auto' | Accel, cacheFile: string, kernel: { path: string; sha256: string }) {
    return Accelerator.detect({
      mode,
      qemuBinary: this.binary,
      qemuVersion: await this.version(),
      kernelPath: kernel.path,
      kernelSha256: kernel.sha256,
      cacheFile,
    });
  }

  async attach(files: VmFiles): Promise<VmControl> {
    return new QmpControl(await Qmp.connect(files.controlSock, { timeoutMs: 2000 }));
  }

  async start(o: VmStart): Promise<StartedVm> {
    const t0 = performance.now();
    const marks: string[] = [];
    const mark = (what: string) => TRACE && marks.push(`${what}=${(performance.now() - t0).toFixed(1)}`);
    const m = o.memory;
    const cmd = new QemuCommand({
      kernelPath: o.kernelPath,
      initrdPath: o.initrdPath,
      diskPath: o.files.disk,
      agentSocketPath: o.files.agentSock,
      consoleLogPath: o.files.console,
      memoryMb: o.memoryMb,
      cpus: o.cpus,
      accel: o.accel,
      qemuBinary: this.binary,
      memoryFile: m.kind === 'anonymous' ? undefined : { path: m.ram, shared: m.kind === 'template' },
      qmpSocketPath: o.files.controlSock,
      incoming: m.kind === 'restore',
      nic: o.nic && { tap: o.nic.tap, mac: o.nic.mac },
      extraAppend: o.nic?.kernelArgs,
    });
    // A networked VM opens its TAP by name, so QEMU itself must run in the bunker's netns;
    // nsenter execs QEMU in place, so the pid the cgroup wrapper placed is QEMU's.
    const exec = o.nic ? ['nsenter', `--net=${o.nic.netnsPath}`, cmd.binary] : [cmd.binary];
    const log = openSync(o.files.log, 'a');
    let pid: number | undefined;
    let qmp: Qmp | undefined;
    let agent: AgentClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const child = spawn('/bin/sh', ['-c', CGROUP_EXEC, 'sh', ...o.cgroupProcs, '--', ...exec, ...cmd.argv()], {
        detached: true,
        stdio: ['ignore', log, log],
      });
      pid = child.pid;
      const exited = new Promise<never>((_, rej) => {
        child.once('exit', (code, sig) => rej(new VmStartError(`QEMU exited during start (code ${code}, signal ${sig})`, pid)));
        child.once('error', (e) => rej(new VmStartError(`QEMU could not be started: ${e.message}`, pid)));
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

      qmp = await Promise.race([Qmp.connect(o.files.controlSock, { timeoutMs: o.timeoutMs, abort }), abort]);
      const q = qmp;
      mark('qmp');
      if (m.kind === 'restore') {
        await q.execute('migrate-set-capabilities', { capabilities: SNAPSHOT_CAPABILITIES });
        const done = q.waitEvent('MIGRATION', (d) => d.status === 'completed' || d.status === 'failed');
        await q.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(m.state)}` });
        const ev = await Promise.race([done, abort]);
        if (ev.data?.status !== 'completed') throw new VmStartError('restoring the memory snapshot failed', pid);
        mark('restored');
      }
      // The host end of the agent port is connected before the guest runs: on a fresh boot the
      // agent finds it attached when it opens the port; a restored agent (saved while waiting
      // for a host) sees the attach. Either way its HELLO is the signal that it is ready.
      const agentReady = AgentClient.connect(o.files.agentSock, { timeoutMs: o.timeoutMs, awaitHello: true });
      agentReady.catch(() => {});
      await q.execute('cont');
      mark('cont');
      agent = await Promise.race([agentReady, abort]);
      mark('hello');
      if (TRACE) process.stderr.write(`[microvm] start ${o.files.dir}: ${marks.join(' ')}\n`);
      return { pid: pid as number, control: new QmpControl(q), agent, readyMs: performance.now() - t0 };
    } catch (err) {
      agent?.close();
      qmp?.close();
      // the caller removes the cgroup too; killing here means no QEMU outlives a failed start
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
   * Detaching: closing our end of the agent port makes the guest agent drop its connection
   * and reopen the port, which QEMU reports as VSERPORT_CHANGE close + open — then no host is
   * attached and the agent waits for one, the state a restored clone must start in.
   *
   * Saving: the VM (started with a shared RAM file) is stopped and its device state streamed
   * to `path` with x-ignore-shared, which leaves shared RAM out of the stream: the RAM file
   * itself is the memory image, and restored VMs map it privately instead of copying it in
   * (QEMU's "VM templating" use of x-ignore-shared), so a restore costs page faults, not a
   * full read of guest memory.
   */
  async snapshot(vm: StartedVm, path: string, timeoutMs: number): Promise<void> {
    const qmp = (vm.control as QmpControl).qmp;
    const reopened = qmp.waitEvent('VSERPORT_CHANGE', (d) => d.id === AGENT_PORT_ID && d.open === true);
    vm.agent.close();
    await withTimeout(reopened, timeoutMs, 'the guest agent reopening its port');
    await qmp.execute('stop');
    await qmp.execute('migrate-set-capabilities', { capabilities: SNAPSHOT_CAPABILITIES });
    const done = qmp.waitEvent('MIGRATION', (d) => d.status === 'completed' || d.status === 'failed' || d.status === 'cancelled');
    // QEMU reports `completed` once the stream is in the pipe, before `cat` has written it
    // all: the file only gets its name when cat is done, and that is what we wait for.
    const partial = `${path}.partial`;
    const appeared = waitForFile(path, timeoutMs);
    appeared.catch(() => {}); // awaited below, once the migration succeeded
    await qmp.execute('migrate', { uri: `exec:cat > ${shellQuote(partial)} && mv ${shellQuote(partial)} ${shellQuote(path)}` });
    const ev = await withTimeout(done, timeoutMs, 'saving the memory snapshot');
    if (ev.data?.status !== 'completed') throw new Error(`saving the memory snapshot: migration ${String(ev.data?.status)}`);
    await appeared;
  }
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
