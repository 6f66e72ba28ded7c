/**
 * Runs bunkers as microVMs (QEMU `-M microvm` through the Vmm boundary; KVM where it boots a
 * guest, TCG otherwise): the Debian cloud kernel + our initramfs, the image's ext4 behind a
 * per-bunker qcow2 overlay, and the agent as the guest's PID 1 on a virtio-serial port whose
 * host end is a Unix socket — so the worker drives a VM exactly like a container. On
 * Firecracker (firecracker/, KVM only) the disk is a raw copy of the image, the agent is on
 * virtio-vsock, and VMs always boot cold.
 *
 * Networks: an `isolated` VM has no NIC. A `registry`/`allowlisted`/`unrestricted` one gets the
 * same netns + veth + host-side rules as a container (`networking.attach`), a virtio-net NIC on
 * a TAP inside that netns (GuestNic.ts), QEMU running in the netns, and its address, gateway and
 * nameserver on the kernel command line (the initramfs configures eth0 and /etc/resolv.conf).
 * Networked VMs always boot cold: memory snapshots are taken without a NIC (`transit` stays
 * container-only).
 *
 * The VMM runs detached in its own cgroup (CPU quota, memory = guest RAM + VMM overhead,
 * pids), survives worker restarts, and is found again by its directory:
 *
 *   <dataDir>/microvm/vms/<id>/   vm.json, root.qcow2, agent.sock, control.sock, console.log, vmm.log
 *   <dataDir>/microvm/snapshots/  memory snapshots per VM shape (SnapshotTemplates)
 *   <dataDir>/microvm/overlays/   an empty root overlay per image and disk size, copied for each cold boot (EmptyOverlays)
 *
 * The first cold boot of a shape builds its snapshot in the background (when `snapshots` is
 * 'auto'); later bunkers of that shape are restored from it and then given their own identity
 * (hostname, machine id, fresh entropy + CRNG reseed, wall clock) through the agent.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { MICROVM_MIN_MEMORY_MB } from '@scaibunker/core';
import type { AgentClient } from '../../agent/AgentClient.js';
import { onceUntilSuccess } from '../../util/onceUntilSuccess.js';
import { withTimeout } from '../../util/withTimeout.js';
import { BunkerLifecycle, type DestroyStep } from '../BunkerLifecycle.js';
import type { BunkerNetworking } from '../BunkerNetworking.js';
import { Cgroups } from '../host/Cgroups.js';
import { copyFileInto } from '../host/layerStreams.js';
import { processInCgroup } from '../host/processes.js';
import {
  type BunkerSpec,
  type BunkerStats,
  type Isolation,
  type LayerFormat,
  type Provider,
  ProviderError,
  type SpawnedBunker,
} from '../Provider.js';
import { validateSpec } from '../validateSpec.js';
import type { AccelProbe } from './Accelerator.js';
import { EmptyOverlays } from './EmptyOverlays.js';
import { GuestAssets } from './GuestAssets.js';
import { nameserverOf, plumbGuestNic } from './GuestNic.js';
import { QemuVmm } from './QemuVmm.js';
import { RawRootDisk } from './RawRootDisk.js';
import { RestoreArchiveError, RootOverlay } from './RootOverlay.js';
import { type SnapshotFiles, type SnapshotLogger, SnapshotTemplates, type VmShape } from './SnapshotTemplates.js';
import type { Accel, VmControl, VmFiles, VmMemory, Vmm, VmStart } from './Vmm.js';

export interface MicrovmProviderOptions {
  /** Holds microvm/vms/<id>/ and microvm/snapshots/. */
  dataDir: string;
  /** Guest kernel + initramfs (default $SCAIBUNKER_GUEST_DIR or /var/lib/scaibunker/guest). */
  guestDir?: string;
  /** 'auto' (default) probes KVM with a bounded boot and falls back to TCG. */
  accel?: 'auto' | Accel;
  /** Bound on QEMU start → agent HELLO (default 60 s under TCG, 20 s under KVM). */
  bootTimeoutMs?: number;
  /**
   * Memory snapshots. 'auto' (default): the first cold boot of a VM shape builds its snapshot
   * in the background and later bunkers of that shape restore from it; 'manual': restore from
   * snapshots made with `snapshots.ensure()`, never build one unasked; 'off': always cold-boot.
   */
  snapshots?: 'auto' | 'manual' | 'off';
  /** cgroup parent of the QEMU processes (default scaibunker-vm). */
  cgroupParent?: string;
  /** The VMM driver (default QEMU, `qemu-system-x86_64`). */
  vmm?: Vmm;
  /** Where the KVM probe's answer is kept (default /run/scaibunker/accel.json: per host boot). */
  accelCacheFile?: string;
  logger?: SnapshotLogger;
  /** Networks beyond loopback (the worker's WorkerNetwork); without it VMs are `isolated` only. */
  networking?: BunkerNetworking;
}

interface VmMeta {
  id: string;
  pid: number;
  cgroup: string;
  accel: Accel;
  snapshot: string | null;
  /** The network profile (absent in vm.json files written before VMs had networks). */
  network?: string;
  /** The raw image under the overlay (absent in vm.json files written before snapshots: read from the backing chain). */
  image?: string;
  created_at: string;
}

interface VmPaths extends VmFiles {
  meta: string;
}

/** In a VM's directory while it is stopped for a snapshot (see writeLayer). */
const SNAPSHOT_PAUSE_MARKER = 'snapshot-paused';
const TRACE = process.env.SCAIBUNKER_TRACE_SPAWN === '1';

/** Guest RAM is the bunker's; QEMU itself (TCG translation cache, device buffers) needs this on top. */
const VMM_OVERHEAD_MB: Record<Accel, number> = { tcg: 192, kvm: 96 };
/** QEMU's threads (vCPUs, I/O workers, RCU, migration). */
const VMM_PIDS = 128;
const MIN_GUEST_MEMORY_MB = MICROVM_MIN_MEMORY_MB;
/** Profiles a VM can have a NIC for: `transit` (one veth per bridge port) is container-only. */
const VM_NETWORK_PROFILES: readonly string[] = ['registry', 'allowlisted', 'unrestricted'];
/** Bumped whenever something outside the key changes what a snapshot contains. */
const SNAPSHOT_FORMAT = 1;

const defaultLogger: SnapshotLogger = {
  info: (m) => console.log(`[microvm] ${m}`),
  warn: (m) => console.warn(`[microvm] ${m}`),
};

export class MicrovmProvider implements Provider {
  readonly isolation: Isolation = 'microvm';
  readonly vmsDir: string;
  readonly snapshots: SnapshotTemplates;
  private readonly emptyOverlays: EmptyOverlays;
  private readonly opts: MicrovmProviderOptions;
  private readonly logger: SnapshotLogger;
  /** The per-id lock, id check, spawn preamble, destroy semantics and network shared with the other providers. */
  private readonly life: BunkerLifecycle;
  private readonly vmm: Vmm;
  /** Control connections of the VMs this process started or re-attached to. */
  private readonly controls = new Map<string, VmControl>();
  private cgroups?: Cgroups;
  private guest?: GuestAssets;
  private vmmVersion = '';
  private accelProbe?: AccelProbe;

  constructor(opts: MicrovmProviderOptions) {
    this.opts = opts;
    this.life = new BunkerLifecycle({
      isolation: this.isolation,
      init: () => this.init(),
      cgroupParent: opts.cgroupParent ?? 'scaibunker-vm',
      networking: opts.networking,
    });
    this.logger = opts.logger ?? defaultLogger;
    this.vmm = opts.vmm ?? new QemuVmm();
    this.vmsDir = join(opts.dataDir, 'microvm', 'vms');
    this.emptyOverlays = new EmptyOverlays(join(opts.dataDir, 'microvm', 'overlays'));
    this.snapshots = new SnapshotTemplates(
      join(opts.dataDir, 'microvm', 'snapshots'),
      (shape, dir, files) => this.makeSnapshot(shape, dir, files),
      this.logger,
    );
  }

  get accel(): Accel {
    if (!this.accelProbe) throw new Error('MicrovmProvider.accel read before init()');
    return this.accelProbe.accel;
  }

  /**
   * A raw-disk VMM (Firecracker) always boots cold: its driver writes and loads snapshots, but
   * the templates here are qcow2 overlay chains, which Firecracker cannot open.
   */
  get snapshotMode(): 'auto' | 'manual' | 'off' {
    return this.vmm.diskFormat === 'raw' ? 'off' : (this.opts.snapshots ?? 'auto');
  }

  cgroupPath(id: string): string {
    return this.life.cgroupPath(id);
  }

  /** Every host cgroup directory a VM may have (for inspection and tests). */
  cgroupDirs(id: string): string[] {
    return this.cgroups ? this.cgroups.dirs(this.cgroupPath(id)) : [];
  }

  paths(id: string): VmPaths {
    return vmPaths(join(this.vmsDir, id), this.vmm.diskFormat);
  }

  // ------------------------------------------------------------------ init

  /** Idempotent; a failed init is retried by the next call. */
  readonly init: () => Promise<void> = onceUntilSuccess(() => this.doInit());

  private async doInit(): Promise<void> {
    try {
      this.guest = GuestAssets.load(this.opts.guestDir);
    } catch (e) {
      throw new ProviderError('RUNTIME_UNAVAILABLE', `no guest kernel: ${(e as Error).message}`);
    }
    try {
      this.vmmVersion = await this.vmm.version();
    } catch (e) {
      throw new ProviderError('RUNTIME_UNAVAILABLE', `the VMM is not runnable: ${(e as Error).message}`);
    }
    const missing = this.vmm.requiredGuestModules.filter((m) => !this.guest?.modules.includes(m));
    if (missing.length)
      throw new ProviderError(
        'RUNTIME_UNAVAILABLE',
        `${this.vmmVersion} needs guest kernel modules the initramfs in ${this.guest.dir} does not load: ${missing.join(', ')} (the agent channel of this VMM)`,
      );
    this.cgroups = await Cgroups.detect();
    await mkdir(this.vmsDir, { recursive: true, mode: 0o700 });
    await this.snapshots.init();
    await this.emptyOverlays.init();
    this.accelProbe = await this.vmm.detectAccel(this.opts.accel ?? 'auto', this.opts.accelCacheFile ?? '/run/scaibunker/accel.json', {
      path: this.guest.kernelPath,
      sha256: this.guest.sha256('vmlinuz'),
    });
  }

  // ------------------------------------------------------------------ spawn

  private shapeOf(spec: BunkerSpec): VmShape {
    return {
      imageSha256: spec.imageSha256,
      imagePath: spec.imagePath,
      cpus: Math.min(Math.max(1, Math.ceil(spec.cpuMillicores / 1000)), cpus().length),
      memoryMb: spec.memoryMb,
      diskMb: spec.diskMb,
    };
  }

  /** Everything a snapshot's contents depend on. */
  snapshotKey(shape: VmShape): string {
    const g = this.guest as GuestAssets;
    return createHash('sha256')
      .update(
        JSON.stringify({
          format: SNAPSHOT_FORMAT,
          image: shape.imageSha256,
          kernel: g.sha256('vmlinuz'),
          initrd: g.sha256('initramfs.cpio.gz'),
          vmm: this.vmmVersion,
          accel: this.accel,
          cpus: shape.cpus,
          memory_mb: shape.memoryMb,
          disk_mb: shape.diskMb,
        }),
      )
      .digest('hex');
  }

  private get bootTimeoutMs(): number {
    return this.opts.bootTimeoutMs ?? (this.accel === 'kvm' ? 20_000 : 60_000);
  }

  spawn(spec: BunkerSpec): Promise<SpawnedBunker> {
    return this.life.spawn(spec, {
      validate: (s) =>
        validateSpec(
          s,
          {
            minMemoryMb: MIN_GUEST_MEMORY_MB,
            provider: 'microvm',
            socketPaths: [this.paths(s.id).agentSock, this.paths(s.id).controlSock],
            networkProfiles: ['isolated', ...(this.opts.networking?.profiles ?? []).filter((n) => VM_NETWORK_PROFILES.includes(n))],
          },
          VMM_PIDS,
        ),
      exists: (id) => existsSync(this.paths(id).dir),
      create: (s) => this.spawnLocked(s),
    });
  }

  private async spawnLocked(spec: BunkerSpec): Promise<SpawnedBunker> {
    const shape = this.shapeOf(spec);
    const imageMb = Math.ceil((await stat(spec.imagePath)).size / 1048576);
    if (spec.diskMb < imageMb) throw new ProviderError('LIMIT_INVALID', `diskMb ${spec.diskMb} is smaller than the image (${imageMb} MiB)`);
    if (spec.restore && this.vmm.diskFormat === 'raw')
      throw new ProviderError(
        'SNAPSHOT_CORRUPT',
        'this worker runs microVMs on Firecracker, which cannot start from a microvm-qcow2 disk delta',
      );
    const key = this.snapshotKey(shape);
    // A snapshot's device model has no NIC: networked VMs always boot cold (and build none);
    // a bunker restored from a disk delta boots cold too (a memory snapshot is of the bare image).
    const networked = spec.networkProfile !== 'isolated';
    const snapshot = this.snapshotMode === 'off' || networked || spec.restore ? undefined : this.snapshots.ready(key);
    if (snapshot) {
      try {
        return await this.startBunker(spec, shape, key, snapshot);
      } catch (e) {
        // a snapshot that does not restore is set aside rather than failing every later create
        this.logger.warn(
          `restoring ${spec.id} from snapshot ${key.slice(0, 12)} failed (${(e as Error).message}); discarding it, booting cold`,
        );
        await this.snapshots.discard(key);
      }
    }
    return this.startBunker(spec, shape, key, undefined);
  }

  /** Boots (or restores) one bunker; on failure everything it made is gone again. */
  private async startBunker(spec: BunkerSpec, shape: VmShape, key: string, snapshot: SnapshotFiles | undefined): Promise<SpawnedBunker> {
    const p = this.paths(spec.id);
    const rel = this.cgroupPath(spec.id);
    await mkdir(p.dir, { mode: 0o700 });
    const meta: VmMeta = {
      id: spec.id,
      pid: 0,
      cgroup: rel,
      accel: this.accel,
      snapshot: snapshot ? key : null,
      network: spec.networkProfile,
      image: spec.imagePath,
      created_at: new Date().toISOString(),
    };
    const networked = spec.networkProfile !== 'isolated';
    let agent: AgentClient | undefined;
    const t0 = performance.now();
    const marks: string[] = [];
    const mark = (what: string) => TRACE && marks.push(`${what}=${(performance.now() - t0).toFixed(1)}`);
    try {
      this.life.writeMeta(p.meta, meta);
      if (this.vmm.diskFormat === 'raw') await RawRootDisk.create(p.disk, spec.imagePath, spec.diskMb);
      else if (snapshot) await RootOverlay.createOnSnapshot(p.disk, snapshot.overlay, snapshot.disk, spec.diskMb);
      else if (spec.restore) await RootOverlay.fromDelta(p.disk, spec.restore.archivePath, spec.imagePath, spec.diskMb);
      else await this.emptyOverlays.create(p.disk, spec.imagePath, spec.diskMb);
      mark('disk');
      const nic = networked ? await this.attachNic(spec) : undefined;
      mark('network');
      const memory: VmMemory = snapshot ? { kind: 'restore', ram: snapshot.ram, state: snapshot.state } : { kind: 'anonymous' };
      const vm = await this.startVm(p, shape, rel, spec.cpuMillicores, memory, nic);
      mark('ready');
      agent = vm.agent;
      meta.pid = vm.pid;
      this.life.writeMeta(p.meta, meta);
      this.controls.set(spec.id, vm.control);
      await withTimeout(
        agent.identity({
          hostname: spec.hostname,
          machineId: randomBytes(16).toString('hex'),
          entropy: randomBytes(64),
          timeUnixNs: BigInt(Date.now()) * 1_000_000n,
        }),
        this.bootTimeoutMs,
        'setting the guest identity',
      );
      mark('identity');
      if (TRACE) process.stderr.write(`[microvm] spawn ${spec.id}: ${marks.join(' ')}\n`);
      if (!snapshot && !networked && !spec.restore && this.snapshotMode === 'auto') void this.snapshots.ensure(key, shape);
      return { id: spec.id, agentSocketPath: this.vmm.agentAddress(p), pid: vm.pid, agent };
    } catch (e) {
      agent?.close();
      const tail = consoleTail(p.console);
      await this.destroyLocked(spec.id).catch(() => {});
      const msg = (e as Error).message;
      if (e instanceof RestoreArchiveError) throw new ProviderError('SNAPSHOT_CORRUPT', `snapshot disk delta refused: ${msg}`);
      // the worker reports `message: details`, which becomes the bunker's termination_reason
      throw new ProviderError('SPAWN_FAILED', `microvm did not start: ${msg}`, tail ? `console: ${tail}` : undefined);
    }
  }

  /**
   * The bunker's network (netns, veth, host-side rules: the container path, unchanged), then
   * its NIC inside that netns, and what the guest's init needs to configure eth0 and resolv.conf.
   */
  private async attachNic(spec: BunkerSpec): Promise<NonNullable<VmStart['nic']>> {
    const net = await this.life.attachNetwork(spec);
    if (!net) throw new Error(`network profile ${spec.networkProfile} gives the guest no network`);
    if (!net.ipv4) throw new Error(`network profile ${spec.networkProfile} gave no IPv4 address for the guest`);
    const dns = nameserverOf(readFileSync(net.resolvConfPath, 'utf8'));
    const { tap, mac } = await plumbGuestNic(net.netnsPath);
    return {
      netnsPath: net.netnsPath,
      tap,
      mac,
      kernelArgs: [
        `scaibunker.ip=${net.ipv4.address}/${net.ipv4.prefixLen}`,
        `scaibunker.gw=${net.ipv4.gateway}`,
        ...(dns ? [`scaibunker.dns=${dns}`] : []),
      ],
    };
  }

  /** Starts the VMM for `p` in cgroup `rel`. */
  private async startVm(p: VmPaths, shape: VmShape, rel: string, cpuMillicores: number, memory: VmMemory, nic?: VmStart['nic']) {
    const g = this.guest as GuestAssets;
    const cg = this.cgroups as Cgroups;
    const procs = await cg.create(rel, {
      cpuMillicores,
      memoryBytes: (shape.memoryMb + VMM_OVERHEAD_MB[this.accel]) * 1048576,
      pids: VMM_PIDS,
    });
    return this.vmm.start({
      files: p,
      kernelPath: g.kernelPath,
      initrdPath: g.initrdPath,
      memoryMb: shape.memoryMb,
      cpus: shape.cpus,
      accel: this.accel,
      memory,
      cgroupProcs: procs,
      timeoutMs: this.bootTimeoutMs,
      nic,
    });
  }

  /** SnapshotMaker: boots `shape` cold in `dir` with its RAM in `ram`, snapshots it, stops it. */
  private async makeSnapshot(shape: VmShape, dir: string, files: { disk: string; ram: string; state: string }): Promise<void> {
    const id = `snap-${randomBytes(6).toString('hex')}`;
    const p: VmPaths = { ...vmPaths(dir, this.vmm.diskFormat), disk: files.disk };
    const rel = this.cgroupPath(id);
    const cg = this.cgroups as Cgroups;
    let control: VmControl | undefined;
    try {
      await RootOverlay.create(files.disk, shape.imagePath, shape.diskMb);
      const vm = await this.startVm(p, shape, rel, shape.cpus * 1000, { kind: 'template', ram: files.ram });
      control = vm.control;
      // Exercise the identity path once so that the filesystem metadata and code it touches are
      // in the snapshot's page cache: a clone's first write to /etc then needs no disk reads.
      await vm.agent.identity({ hostname: 'snapshot', machineId: randomBytes(16).toString('hex'), entropy: randomBytes(64) });
      await this.vmm.snapshot(vm, files.state, this.bootTimeoutMs);
    } catch (e) {
      const tail = consoleTail(p.console);
      throw new Error(`${(e as Error).message}${tail ? ` — console: ${tail}` : ''}`);
    } finally {
      control?.close();
      await cg.killAll(rel).catch(() => {});
      await cg.remove(rel).catch((e) => this.logger.warn(`removing cgroup ${rel}: ${(e as Error).message}`));
    }
  }

  // ------------------------------------------------------------------ destroy

  destroy(id: string): Promise<void> {
    return this.life.destroy(id, () => this.destroySteps(id));
  }

  /** Under the bunker's lock (a failed spawn cleaning up after itself). */
  private async destroyLocked(id: string): Promise<void> {
    await this.life.runDestroySteps(id, await this.destroySteps(id));
  }

  /** What destroying a VM takes, in order; BunkerLifecycle runs every step and reports each failure. */
  private async destroySteps(id: string): Promise<DestroyStep[]> {
    const p = this.paths(id);
    const rel = this.readMeta(id)?.cgroup ?? this.cgroupPath(id);
    const cg = this.cgroups ?? (await Cgroups.detect());
    return [
      {
        step: 'control',
        run: () => {
          this.controls.get(id)?.close();
          this.controls.delete(id);
        },
      },
      // the VM is disposable: SIGKILL, then the cgroup dirs go once QEMU has exited
      { step: 'kill', run: () => cg.killAll(rel) },
      { step: 'cgroup', run: () => cg.remove(rel) },
      // Only once QEMU is gone: its TAP and tc filters live in the netns, and go with it. Cheap
      // (and idempotent) for a bunker that never had a network, so no vm.json is needed here.
      this.life.detachNetworkStep(id),
      {
        // kept while QEMU may still run: its vm.json finds the VM again for the next destroy
        step: 'files',
        run: async () => {
          if (cg.exists(rel)) throw new Error(`${p.dir} kept: cgroup ${rel} still exists`);
          await rm(p.dir, { recursive: true, force: true });
        },
      },
    ];
  }

  // ------------------------------------------------------------------ pause / stats

  private async controlFor(id: string): Promise<VmControl> {
    const have = this.controls.get(id);
    if (have) return have;
    const p = this.paths(id);
    if (!this.life.isBunkerId(id) || !existsSync(p.controlSock)) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    try {
      const control = await this.vmm.attach(p);
      this.controls.set(id, control);
      control.closed.then(() => {
        if (this.controls.get(id) === control) this.controls.delete(id);
      });
      return control;
    } catch (e) {
      throw new ProviderError('NOT_FOUND', `bunker ${id} is not running`, (e as Error).message);
    }
  }

  async pause(id: string): Promise<void> {
    await this.init();
    await (await this.controlFor(id)).pause();
  }

  async resume(id: string): Promise<void> {
    await this.init();
    await (await this.controlFor(id)).resume();
  }

  async isPaused(id: string): Promise<boolean> {
    return (await this.controlFor(id)).isPaused();
  }

  async stats(id: string): Promise<BunkerStats> {
    await this.init();
    const rel = this.readMeta(id)?.cgroup;
    if (!rel || !this.cgroups?.exists(rel)) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
    const stats: BunkerStats = await this.cgroups.stats(rel);
    // The bunker's own disk is its qcow2 overlay: the blocks allocated on the host (the image
    // or snapshot disk under it is shared, never written).
    try {
      stats.diskUsedBytes = (await stat(this.paths(id).disk)).blocks * 512;
    } catch {
      /* removed under us: leave it out */
    }
    return stats;
  }

  // ------------------------------------------------------------------ snapshot

  /**
   * The root overlay as a qcow2 delta over the raw image: the VM is stopped (QMP `stop` drains
   * and flushes the block layer, qcow2 metadata included) only while its overlay is copied,
   * then the copy is rebased onto the image (folding in a memory snapshot's disk, when the VM
   * was started on one) and streamed. The copy lives in the VM's directory and is removed.
   */
  async writeLayer(id: string, out: Writable): Promise<LayerFormat> {
    await this.init();
    if (this.vmm.diskFormat === 'raw')
      throw new ProviderError('RUNTIME_UNAVAILABLE', "snapshots of a bunker's files are not available for microVMs on Firecracker yet");
    return this.life.withLock(id, async (): Promise<LayerFormat> => {
      const p = this.paths(id);
      const meta = this.readMeta(id);
      if (!this.life.isBunkerId(id) || !meta || !existsSync(p.disk)) throw new ProviderError('NOT_FOUND', `bunker ${id} not found`);
      const control = await this.controlFor(id);
      const image = meta.image ?? (await RootOverlay.baseOf(p.disk));
      const copy = join(p.dir, `layer-${randomBytes(6).toString('hex')}.qcow2`);
      try {
        const wasPaused = await control.isPaused();
        // As for containers: a worker that dies while the VM is stopped for its snapshot leaves
        // the marker, and the next list() resumes the VM.
        const marker = join(p.dir, SNAPSHOT_PAUSE_MARKER);
        if (!wasPaused) {
          await writeFile(marker, '');
          await control.pause();
        }
        let copied = false;
        try {
          await copyFile(p.disk, copy);
          copied = true;
        } finally {
          if (!wasPaused) {
            const resumed = control.resume().then(() => rm(marker, { force: true }));
            if (copied) await resumed;
            else await resumed.catch(() => {});
          }
        }
        await RootOverlay.exportDelta(copy, image);
        await copyFileInto(copy, out);
      } finally {
        await rm(copy, { force: true });
      }
      return 'microvm-qcow2';
    });
  }

  // ------------------------------------------------------------------ list / health

  private readMeta(id: string): VmMeta | undefined {
    return this.life.readMeta<VmMeta>(this.paths(id).meta);
  }

  async list(): Promise<Array<{ id: string; running: boolean; agentSocketPath: string }>> {
    await this.init();
    const ids = this.life.idsIn(this.vmsDir);
    const out: Array<{ id: string; running: boolean; agentSocketPath: string }> = [];
    for (const id of ids) {
      const p = this.paths(id);
      const meta = this.readMeta(id);
      const running = !!meta?.pid && processInCgroup(meta.pid, meta.cgroup) && existsSync(p.agentSock);
      if (running && existsSync(join(p.dir, SNAPSHOT_PAUSE_MARKER))) await this.resumeAfterSnapshot(id);
      out.push({ id, running, agentSocketPath: this.vmm.agentAddress(p) });
    }
    return out;
  }

  /** A VM a previous worker process stopped for a snapshot and never resumed (it died). */
  private async resumeAfterSnapshot(id: string): Promise<void> {
    try {
      await this.life.withLock(id, async () => {
        await (await this.controlFor(id)).resume();
        await rm(join(this.paths(id).dir, SNAPSHOT_PAUSE_MARKER), { force: true });
      });
    } catch (e) {
      this.logger.warn(`resuming ${id} after an interrupted snapshot failed: ${(e as Error).message}`);
    }
  }

  async health(): Promise<{ ok: boolean; runtime: string; details?: string }> {
    try {
      await this.init();
    } catch (e) {
      const err = e as ProviderError;
      return { ok: false, runtime: 'none', details: [err.message, err.details].filter(Boolean).join(': ') };
    }
    const probe = this.accelProbe as AccelProbe;
    return {
      ok: true,
      runtime: `${this.vmmVersion} (${probe.accel})`,
      details: `accel ${probe.accel}: ${probe.reason}; guest kernel ${this.guest?.kernelVersion}`,
    };
  }

  /** VMs keep running; snapshot builds in flight finish first (each is one bounded boot). */
  async shutdown(): Promise<void> {
    await this.snapshots.stop();
    for (const c of this.controls.values()) c.close();
    this.controls.clear();
  }
}

function vmPaths(dir: string, diskFormat: Vmm['diskFormat']): VmPaths {
  return {
    dir,
    meta: join(dir, 'vm.json'),
    disk: join(dir, diskFormat === 'raw' ? 'root.raw' : 'root.qcow2'),
    agentSock: join(dir, 'agent.sock'),
    controlSock: join(dir, 'control.sock'),
    console: join(dir, 'console.log'),
    log: join(dir, 'vmm.log'),
  };
}

/** The last lines of the guest console, short enough for a termination_reason (≤ 600 chars). */
function consoleTail(path: string, lines = 6): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join(' | ').slice(-600);
  } catch {
    return '';
  }
}
