/**
 * What `scaibunker certify` reports about the host: kernel, cgroup layout, how VMs would be
 * accelerated (KVM, PVM's /dev/kvm, or TCG — by the same bounded boot probe the microvm
 * provider uses), and the version of each runtime it finds.
 */
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access } from 'node:fs/promises';
import { release } from 'node:os';
import { promisify } from 'node:util';
import { Cgroups } from '../providers/host/Cgroups.js';
import { Accelerator } from '../providers/microvm/Accelerator.js';
import { GuestAssets } from '../providers/microvm/GuestAssets.js';

const execFileP = promisify(execFile);

export interface HostFactsReport {
  kernel: string;
  cgroup_layout: string;
  /** `/dev/kvm` state and what a VM would run on: kvm, or tcg with the probe's reason. */
  virtualization: {
    dev_kvm: 'absent' | 'present' | 'not accessible';
    kvm_module: 'kvm_pvm' | 'kvm_intel' | 'kvm_amd' | 'none';
    accel?: string;
    reason: string;
  };
  /** First line of `<tool> --version`, or null when the tool is not found or does not run. */
  runtimes: Record<string, string | null>;
}

const TOOLS: Record<string, string[]> = {
  crun: ['crun', '--version'],
  runc: ['runc', '--version'],
  qemu: ['qemu-system-x86_64', '--version'],
  docker: ['docker', '--version'],
  proot: ['proot', '--version'],
  firecracker: ['firecracker', '--version'],
};

export class HostFacts {
  constructor(private readonly o: { firecrackerBin?: string; accelCacheFile?: string } = {}) {}

  async collect(): Promise<HostFactsReport> {
    const tools = { ...TOOLS, ...(this.o.firecrackerBin ? { firecracker: [this.o.firecrackerBin, '--version'] } : {}) };
    const found = await Promise.all(
      Object.entries(tools).map(async ([name, [bin, ...args]]) => [name, await versionLine(name, bin as string, args)] as const),
    );
    const runtimes = Object.fromEntries(found);
    return {
      kernel: release(),
      cgroup_layout: await Cgroups.detect().then(
        (c) => c.layout,
        (e: Error) => `unknown (${e.message})`,
      ),
      virtualization: await this.virtualization(runtimes.qemu ?? null),
      runtimes,
    };
  }

  private async virtualization(qemuVersion: string | null): Promise<HostFactsReport['virtualization']> {
    const module = existsSync('/sys/module/kvm_pvm')
      ? 'kvm_pvm'
      : existsSync('/sys/module/kvm_intel')
        ? 'kvm_intel'
        : existsSync('/sys/module/kvm_amd')
          ? 'kvm_amd'
          : 'none';
    if (!existsSync('/dev/kvm')) return { dev_kvm: 'absent', kvm_module: module, accel: 'tcg', reason: 'no /dev/kvm' };
    try {
      await access('/dev/kvm', constants.R_OK | constants.W_OK);
    } catch {
      return { dev_kvm: 'not accessible', kvm_module: module, accel: 'tcg', reason: '/dev/kvm is not readable and writable' };
    }
    let guest: GuestAssets;
    try {
      guest = GuestAssets.load();
    } catch {
      return { dev_kvm: 'present', kvm_module: module, reason: 'no guest kernel to probe KVM with (scripts/build-guest-kernel.sh)' };
    }
    if (!qemuVersion) return { dev_kvm: 'present', kvm_module: module, reason: 'no QEMU to probe KVM with' };
    const probe = await Accelerator.detect({
      mode: 'auto',
      qemuBinary: 'qemu-system-x86_64',
      qemuVersion,
      kernelPath: guest.kernelPath,
      kernelSha256: guest.sha256('vmlinuz'),
      cacheFile: this.o.accelCacheFile ?? '/run/scaibunker/accel.json',
    });
    return { dev_kvm: 'present', kvm_module: module, accel: probe.accel, reason: probe.reason };
  }
}

/** The line naming the version; for banners without one (proot's), the tool's name and the version number. */
async function versionLine(name: string, bin: string, args: string[]): Promise<string | null> {
  try {
    const { stdout, stderr } = await execFileP(bin, args, { timeout: 10_000 });
    const lines = `${stdout}\n${stderr}`.split('\n').map((l) => l.trim());
    const named = lines.find((l) => /version/i.test(l) && /\d+\.\d+/.test(l));
    if (named) return named;
    const number = lines.map((l) => /\bv?\d+\.\d+(?:\.\d+)?\b/.exec(l)?.[0]).find(Boolean);
    return number ? `${name} ${number}` : null;
  } catch {
    return null;
  }
}
