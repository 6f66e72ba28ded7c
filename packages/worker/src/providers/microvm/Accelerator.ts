/**
 * KVM or TCG. `/dev/kvm` existing proves nothing (this host's is PVM and hangs a stock
 * kernel), so `auto` boots the guest kernel under KVM once with no init: a working KVM prints
 * the kernel banner within milliseconds and panics (-no-reboot: QEMU exits); anything that
 * shows no banner within the bound means TCG. The answer is cached per host boot, QEMU
 * version and kernel.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import type { Accel } from './Vmm.js';

export interface AccelProbe {
  accel: Accel;
  /** Why: "probe: kernel banner under KVM in 180 ms", "no /dev/kvm", "configured", … */
  reason: string;
}

const PROBE_TIMEOUT_MS = 3000;

export const Accelerator = {
  async detect(o: {
    mode: 'auto' | Accel;
    qemuBinary: string;
    qemuVersion: string;
    kernelPath: string;
    kernelSha256: string;
    cacheFile: string;
  }): Promise<AccelProbe> {
    if (o.mode !== 'auto') return { accel: o.mode, reason: 'configured' };
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch {
      return { accel: 'tcg', reason: 'no usable /dev/kvm' };
    }
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
    const cacheKey = `${bootId}|${o.qemuVersion}|${o.kernelSha256}`;
    try {
      const cached = JSON.parse(await readFile(o.cacheFile, 'utf8')) as { key?: string; probe?: AccelProbe };
      if (cached.key === cacheKey && cached.probe) return cached.probe;
    } catch {
      // no cache yet
    }
    const probe = await probeKvm(o.qemuBinary, o.kernelPath);
    await mkdir(dirname(o.cacheFile), { recursive: true })
      .then(() => writeFile(o.cacheFile, JSON.stringify({ key: cacheKey, probe })))
      .catch(() => {}); // a cache that cannot be written only costs the next start a probe
    return probe;
  },
};

async function probeKvm(qemu: string, kernel: string): Promise<AccelProbe> {
  const dir = await mkdtemp(join(os.tmpdir(), 'sbkvm-'));
  const consoleLog = join(dir, 'console.log');
  const t0 = performance.now();
  const child = spawn(
    qemu,
    [
      ...['-M', 'microvm,x-option-roms=off,isa-serial=off', '-accel', 'kvm', '-nodefaults', '-no-user-config'],
      ...['-nographic', '-no-reboot', '-m', '128', '-smp', '1', '-kernel', kernel],
      ...['-append', 'console=hvc0 panic=-1 rdinit=/scaibunker-kvm-probe'],
      ...['-device', 'virtio-serial-device', '-chardev', `file,id=c,path=${consoleLog}`, '-device', 'virtconsole,chardev=c'],
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((res) => {
    child.once('exit', () => res());
    child.once('error', () => res());
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((res) => (timer = setTimeout(res, PROBE_TIMEOUT_MS)))]);
  clearTimeout(timer);
  const ms = Math.round(performance.now() - t0);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
  const banner = (await readFile(consoleLog, 'utf8').catch(() => '')).includes('Linux version');
  await rm(dir, { recursive: true, force: true });
  return banner
    ? { accel: 'kvm', reason: `probe: kernel banner under KVM within ${ms} ms` }
    : { accel: 'tcg', reason: `probe: no kernel output under KVM within ${PROBE_TIMEOUT_MS} ms (e.g. a PVM /dev/kvm)` };
}
