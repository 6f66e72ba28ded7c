/**
 * The argv of one microvm guest: QEMU `-M microvm` (virtio-mmio only, no PCI, no firmware
 * option ROMs), no NIC, the root disk as a virtio-blk device on a per-bunker qcow2 overlay,
 * and one virtio-serial device carrying two ports:
 *   - hvc0 (virtconsole): the kernel console, written to a log file (boot log);
 *   - org.scaibunker.agent (virtserialport): the agent channel, a Unix socket that QEMU
 *     serves (server=on,wait=off), so the host can connect, disconnect and reconnect at will.
 */
import { readFileSync } from 'node:fs';

export interface QemuCommandOptions {
  kernelPath: string;
  initrdPath: string;
  /** qcow2 overlay holding the bunker's root filesystem (see RootOverlay). */
  diskPath: string;
  /** Unix socket QEMU listens on for the agent port. */
  agentSocketPath: string;
  /** File that receives the guest console (hvc0). */
  consoleLogPath: string;
  memoryMb: number;
  cpus: number;
  /** 'tcg' everywhere (this host's PVM /dev/kvm boots no stock kernel); 'kvm' on real hardware. */
  accel?: 'tcg' | 'kvm';
  /** Extra kernel parameters. */
  extraAppend?: string[];
  /** QEMU binary (default qemu-system-x86_64). */
  qemuBinary?: string;
}

export const AGENT_PORT_NAME = 'org.scaibunker.agent';
const CONFIG_HZ = 250; // Debian's kernels

export class QemuCommand {
  constructor(private readonly opts: QemuCommandOptions) {}

  get binary(): string {
    return this.opts.qemuBinary ?? 'qemu-system-x86_64';
  }

  /**
   * The host's TSC frequency in kHz (under TCG the guest TSC runs at the host's rate).
   * Passing it, and lpj, skips the guest's PIT calibration, which rarely hangs under TCG.
   */
  static hostTscKhz(): number {
    try {
      const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
      const khz = m?.[1] ? Math.round(Number(m[1]) * 1000) : 0;
      if (khz > 100_000) return khz;
    } catch {
      // not Linux, or no /proc
    }
    return 2_000_000;
  }

  kernelCommandLine(): string {
    const khz = QemuCommand.hostTscKhz();
    return [
      'console=hvc0',
      'panic=-1', // a panic powers the VM off (-no-reboot) instead of hanging
      `tsc_early_khz=${khz}`,
      `lpj=${Math.round((khz * 1000) / CONFIG_HZ)}`,
      'rdinit=/init',
      'scaibunker.root=/dev/vda',
      `scaibunker.port=${AGENT_PORT_NAME}`,
      ...(this.opts.extraAppend ?? []),
    ].join(' ');
  }

  argv(): string[] {
    const o = this.opts;
    const q = (s: string) => s.replaceAll(',', ',,'); // QEMU option-value escaping
    return [
      '-M',
      'microvm,x-option-roms=off,isa-serial=off,rtc=on',
      '-accel',
      o.accel ?? 'tcg',
      '-nodefaults',
      '-no-user-config',
      '-nographic',
      '-no-reboot',
      '-m',
      String(o.memoryMb),
      '-smp',
      String(o.cpus),
      '-kernel',
      o.kernelPath,
      '-initrd',
      o.initrdPath,
      '-append',
      this.kernelCommandLine(),
      '-drive',
      `id=root,file=${q(o.diskPath)},format=qcow2,if=none`,
      '-device',
      'virtio-blk-device,drive=root',
      '-device',
      'virtio-serial-device,max_ports=2',
      '-chardev',
      `file,id=console,path=${q(o.consoleLogPath)}`,
      '-device',
      'virtconsole,chardev=console,nr=0',
      '-chardev',
      `socket,id=agent,path=${q(o.agentSocketPath)},server=on,wait=off`,
      '-device',
      `virtserialport,chardev=agent,nr=1,name=${AGENT_PORT_NAME}`,
    ];
  }
}
