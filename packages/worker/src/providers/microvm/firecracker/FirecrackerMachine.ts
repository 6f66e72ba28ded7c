/**
 * What Firecracker is told to make one of our VMs: the API requests, in order, for a cold boot
 * or for a restore from a snapshot (the Firecracker counterpart of QemuCommand's argv).
 *
 * Firecracker runs with its working directory in the VM's directory and every device path it
 * records in a snapshot (the root drive, the vsock socket, the console) is relative to it: a
 * snapshot taken of one VM restores in another VM's directory onto that VM's own files, which
 * is what lets many bunkers start from one template (Firecracker has no drive override on load).
 *
 * Devices:
 *   root   virtio-blk on the bunker's raw ext4 (`VmFiles.disk`, read-write; the image itself is
 *          never handed over: the provider gives each VM its own copy-on-write copy)
 *   vsock  the agent channel: the guest agent listens on AGENT_VSOCK_PORT, the host reaches it
 *          through the device's Unix socket (`VmFiles.agentSock`, see agent/vsockAddress.ts)
 *   serial ttyS0, the kernel console, written to `VmFiles.console`
 *   eth0   only with a NIC: virtio-net on the TAP inside the bunker's netns (Firecracker runs there)
 */
import { basename, dirname } from 'node:path';
import type { VmStart } from '../Vmm.js';

/** The guest agent's vsock port (scaibunker.vsock= on the kernel command line). */
export const AGENT_VSOCK_PORT = 1024;
/** The guest's vsock context id: each Firecracker process has its own device, so one value serves all. */
export const GUEST_CID = 3;

export interface ApiRequest {
  method: 'PUT' | 'PATCH';
  path: string;
  body: Record<string, unknown>;
}

export class FirecrackerMachine {
  constructor(private readonly o: VmStart) {}

  /** A path inside the VM's directory, as Firecracker (whose cwd it is) names it. */
  private inDir(path: string): string {
    if (dirname(path) !== this.o.files.dir) throw new Error(`${path} is not directly in the VM directory ${this.o.files.dir}`);
    return basename(path);
  }

  kernelCommandLine(): string {
    return [
      'console=ttyS0',
      'reboot=k', // a guest reboot makes Firecracker exit
      'panic=1',
      'pci=off',
      'rdinit=/init',
      'scaibunker.root=/dev/vda',
      `scaibunker.vsock=${AGENT_VSOCK_PORT}`,
      ...(this.o.nic?.kernelArgs ?? []),
    ].join(' ');
  }

  /** A cold boot: every device, then InstanceStart. */
  bootRequests(): ApiRequest[] {
    const o = this.o;
    return [
      { method: 'PUT', path: '/machine-config', body: { vcpu_count: o.cpus, mem_size_mib: o.memoryMb, smt: false } },
      {
        method: 'PUT',
        path: '/boot-source',
        body: { kernel_image_path: o.kernelPath, initrd_path: o.initrdPath, boot_args: this.kernelCommandLine() },
      },
      {
        method: 'PUT',
        path: '/drives/root',
        body: { drive_id: 'root', path_on_host: this.inDir(o.files.disk), is_root_device: false, is_read_only: false },
      },
      { method: 'PUT', path: '/vsock', body: { guest_cid: GUEST_CID, uds_path: this.inDir(o.files.agentSock) } },
      { method: 'PUT', path: '/serial', body: { serial_out_path: this.inDir(o.files.console) } },
      ...(o.nic
        ? [
            {
              method: 'PUT' as const,
              path: '/network-interfaces/eth0',
              body: { iface_id: 'eth0', host_dev_name: o.nic.tap, guest_mac: o.nic.mac },
            },
          ]
        : []),
      { method: 'PUT', path: '/actions', body: { action_type: 'InstanceStart' } },
    ];
  }

  /**
   * A restore: the snapshot's device state and its guest memory, mapped privately (Firecracker's
   * File backend), resumed at once. Only a fresh Firecracker process accepts it: nothing else is
   * configured first.
   */
  restoreRequests(): ApiRequest[] {
    const m = this.o.memory;
    if (m.kind !== 'restore') throw new Error('restoreRequests() needs memory kind restore');
    if (this.o.nic) throw new Error('a VM with a NIC is never restored from a snapshot');
    return [
      {
        method: 'PUT',
        path: '/snapshot/load',
        body: { snapshot_path: m.state, mem_backend: { backend_type: 'File', backend_path: m.ram }, resume_vm: true },
      },
    ];
  }
}
