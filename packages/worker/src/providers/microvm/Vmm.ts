/**
 * The boundary between the microvm provider and a virtual machine monitor. The provider owns
 * bunkers (directories, disks, cgroups, snapshot templates, identity); a Vmm only starts a VM
 * process, controls it, and writes its memory snapshot. Drivers: QEMU (`QemuVmm`, the default)
 * and Firecracker (`firecracker/FirecrackerVmm`).
 */
import type { AgentClient } from '../../agent/AgentClient.js';

export type Accel = 'kvm' | 'tcg';

/** The files of one VM, all inside its directory. */
export interface VmFiles {
  dir: string;
  /** Root disk, in the driver's `diskFormat` (a qcow2 overlay for QEMU, a raw file for Firecracker). */
  disk: string;
  /** Host end of the agent channel: a Unix socket the VMM listens on (virtio-serial for QEMU, vsock for Firecracker). */
  agentSock: string;
  /** The VMM's control socket (QMP for QEMU, the REST API for Firecracker). */
  controlSock: string;
  /** Guest console output. */
  console: string;
  /** The VMM's own stdout/stderr. */
  log: string;
}

/**
 * Where guest RAM lives: anonymous memory (a plain boot); a shared file a snapshot will be
 * taken of (a template); or a snapshot's RAM file mapped copy-on-write plus its device state.
 */
export type VmMemory = { kind: 'anonymous' } | { kind: 'template'; ram: string } | { kind: 'restore'; ram: string; state: string };

export interface VmStart {
  files: VmFiles;
  kernelPath: string;
  initrdPath: string;
  memoryMb: number;
  cpus: number;
  accel: Accel;
  memory: VmMemory;
  /** cgroup.procs files the VMM process is placed in before it runs. */
  cgroupProcs: string[];
  /** Bound on VMM start + boot or restore + the agent's HELLO. */
  timeoutMs: number;
  /**
   * A NIC: the VMM runs inside the network namespace `netnsPath` (where the TAP `tap` lives)
   * and the guest gets `kernelArgs` (its address, gateway and nameserver).
   */
  nic?: { netnsPath: string; tap: string; mac: string; kernelArgs: string[] } | undefined;
}

/** A connection controlling a running VM; closing it leaves the VM running. */
export interface VmControl {
  /** Resolves when the connection ends (for a VM we did not spawn: the VMM exited). */
  readonly closed: Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  isPaused(): Promise<boolean>;
  close(): void;
}

export interface StartedVm {
  pid: number;
  /** The agent channel, opened before the guest ran and ready (HELLO received). */
  agent: AgentClient;
  control: VmControl;
  /** Milliseconds from spawning the VMM to the agent's HELLO. */
  readyMs: number;
}

export interface Vmm {
  /** The root disk format the VMM reads: 'qcow2' (overlays over the image) or 'raw' (a file of its own). */
  readonly diskFormat: 'qcow2' | 'raw';
  /**
   * Guest kernel modules the VMM's devices need in the initramfs (guest.json `modules`; the
   * provider refuses to start without them): Firecracker's agent channel is virtio-vsock.
   */
  readonly requiredGuestModules: readonly string[];
  /** The agent's address for AgentClient.connect (what the provider reports as agentSocketPath). */
  agentAddress(files: VmFiles): string;
  /** Identifies the VMM build; part of every snapshot key. Throws when it cannot run. */
  version(): Promise<string>;
  /** Which accelerator to use for `mode`, and why (bounded probe; cached per host boot). */
  detectAccel(mode: 'auto' | Accel, cacheFile: string, kernel: { path: string; sha256: string }): Promise<{ accel: Accel; reason: string }>;
  /** Starts (boots or restores) a VM and waits for the agent's HELLO on its channel. */
  start(o: VmStart): Promise<StartedVm>;
  /** Re-attaches to a VM a previous worker started. */
  attach(files: VmFiles): Promise<VmControl>;
  /**
   * Takes a template VM (memory kind 'template') to a snapshot: detaches the agent so that the
   * guest agent is back to waiting for a host, stops the VM, writes the device state to
   * `statePath`; the guest RAM ends up in the template's RAM file (QEMU writes through to it
   * all along, Firecracker writes it with the snapshot).
   */
  snapshot(vm: StartedVm, statePath: string, timeoutMs: number): Promise<void>;
}
