/**
 * The argv of one microvm guest: QEMU `-M microvm` (virtio-mmio only, no PCI, no firmware
 * option ROMs), no NIC unless `nic` is given (a virtio-net device on an existing TAP), the root disk as a virtio-blk device on a per-bunker qcow2 overlay,
 * and one virtio-serial device carrying two ports:
 *   - hvc0 (virtconsole): the kernel console, written to a log file (boot log);
 *   - org.scaibunker.agent (virtserialport): the agent channel, a Unix socket that QEMU
 *     serves (server=on,wait=off), so the host can connect, disconnect and reconnect at will.
 * With a QMP socket the VM starts paused (-S) so its controller sees every event from the
 * first instruction on; `incoming` adds `-incoming defer` for a restore from a snapshot.
 * Everything that shapes the guest's device model is in this argv, so a snapshot taken of
 * one VM restores into another started from the same options (other paths aside).
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
  /** QMP control socket; the VM then starts paused and waits for `cont`. */
  qmpSocketPath?: string;
  /** Wait for a migration stream (`migrate-incoming` over QMP) instead of booting. */
  incoming?: boolean;
  /**
   * Guest RAM backed by a file instead of anonymous memory. `shared`: the VM writes through
   * to the file (a snapshot template's RAM); private: the file is mapped copy-on-write (a VM
   * restored from that template pages its RAM in lazily and shares the untouched pages).
   */
  memoryFile?: { path: string; shared: boolean } | undefined;
  /**
   * A virtio-net NIC backed by the TAP `tap`, which must exist in the network namespace QEMU
   * runs in (see GuestNic.ts); `mac` is the guest's address. No vhost: TCG has no use for it.
   */
  nic?: { tap: string; mac: string } | undefined;
  /** Extra kernel parameters. */
  extraAppend?: string[] | undefined;
  /** QEMU binary (default qemu-system-x86_64). */
  qemuBinary?: string;
}

export const AGENT_PORT_NAME = 'org.scaibunker.agent';
/** QEMU device id of the agent port (VSERPORT_CHANGE events name it). */
export const AGENT_PORT_ID = 'agent-port';
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
      // TCG's translation cache defaults to 1 GiB per VM: 64 MiB is plenty for one small guest
      (o.accel ?? 'tcg') === 'tcg' ? 'tcg,tb-size=64' : 'kvm',
      '-nodefaults',
      '-no-user-config',
      '-nographic',
      '-no-reboot',
      '-m',
      String(o.memoryMb),
      ...(o.memoryFile
        ? [
            '-object',
            `memory-backend-file,id=ram0,size=${o.memoryMb}M,mem-path=${q(o.memoryFile.path)},share=${o.memoryFile.shared ? 'on' : 'off'}`,
            '-machine',
            'memory-backend=ram0',
          ]
        : []),
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
      `virtserialport,chardev=agent,nr=1,name=${AGENT_PORT_NAME},id=${AGENT_PORT_ID}`,
      ...(o.nic
        ? [
            '-netdev',
            `tap,id=net0,ifname=${q(o.nic.tap)},script=no,downscript=no`,
            '-device',
            `virtio-net-device,netdev=net0,mac=${o.nic.mac}`,
          ]
        : []),
      ...(o.qmpSocketPath ? ['-qmp', `unix:${q(o.qmpSocketPath)},server=on,wait=off`, '-S'] : []),
      ...(o.incoming ? ['-incoming', 'defer'] : []),
    ];
  }
}
