import { readFileSync, statSync } from 'node:fs';
import { defaultSeccompProfile, type SeccompProfile } from './seccompProfile.js';

/** Paths inside every bunker (fixed by the image layout and the agent). */
export const AGENT_PATH = '/.scaibunker/agent';
export const AGENT_RUN_DIR = '/.scaibunker/run';
export const AGENT_SOCKET_NAME = 'agent.sock';

/** Docker's default capability set minus CAP_NET_RAW (no SYS_ADMIN, no NET_ADMIN). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Docker's default masked and read-only paths. */
export const MASKED_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const CPU_PERIOD_US = 100_000;
export const DEFAULT_PIDS_LIMIT = 512;

export interface OciBundleOptions {
  /** Host path of the bunker's root filesystem (the overlay mount). */
  rootfsPath: string;
  /** Host dir bind-mounted at /.scaibunker/run (the only writable host path inside the bunker). */
  agentRunDir: string;
  hostname: string;
  /** OCI cgroupsPath, e.g. /scaibunker/<id>. */
  cgroupsPath: string;
  cpuMillicores: number;
  memoryMb: number;
  /**
   * Size (MiB) of a tmpfs mounted at /tmp; absent: /tmp is the root filesystem's own directory.
   * A bunker's root is already a tmpfs-backed disk, and every tmpfs is one more superblock,
   * each of which makes every memory cgroup on the host bigger (see ContainerProvider).
   */
  tmpSizeMb?: number;
  pidsLimit?: number;
  /** Whether the host can limit swap (v1: memory.memsw.*); when false no swap limit is written. */
  swapAccounting?: boolean;
  /**
   * An empty host directory: masked directories outside /proc are bound to it read-only
   * instead of each getting a tmpfs of its own (one superblock fewer each, see tmpSizeMb).
   * Inside /proc only with bindProcMasks: runc refuses bind mounts there.
   */
  emptyDir?: string;
  /** Also bind emptyDir at masked directories inside /proc (crun allows it, runc refuses). */
  bindProcMasks?: boolean;
  /** Mount a read-only cgroupfs at /sys/fs/cgroup (default true). */
  mountCgroupFs?: boolean;
  /**
   * A host directory (on the bunker's own disk tmpfs, outside the overlay's upper dir) bound
   * at /dev instead of a tmpfs of its own: one superblock fewer (see tmpSizeMb). The runtime
   * makes no device nodes in a /dev it did not mount, so it must hold them already (see
   * devTemplate.ts). Its mount is not nodev: the device cgroup decides what may be opened,
   * as with a /dev tmpfs.
   */
  devDir?: string;
  /** Like devDir, for /dev/shm (nosuid, nodev, noexec): what is written there counts against disk_mb. */
  shmDir?: string;
  /**
   * cgroup v1: /sys/fs/cgroup as read-only binds instead of the runtime's cgroup mount (which
   * on v1 puts a tmpfs of its own under the hierarchies): `root` (a host directory holding an
   * empty directory per hierarchy name) at /sys/fs/cgroup, then each hierarchy's directory of
   * this bunker's cgroup at /sys/fs/cgroup/<name>. What the bunker sees is the same as with
   * the runtime's mount in its cgroup namespace: its own cgroup as each hierarchy's root.
   */
  cgroupBinds?: { root: string; hierarchies: ReadonlyArray<{ name: string; dir: string }> } | undefined;
  /** The seccomp profile; absent or undefined: the built-in one; null: none. */
  seccomp?: SeccompProfile | null | undefined;
  annotations?: Record<string, string>;
  /** RLIMIT_NOFILE (soft = hard) of the bunker; default 65536. Must not exceed the worker's own hard limit unless it has CAP_SYS_RESOURCE. */
  nofile?: number;
  /** Process to run as PID 1 (default: the agent listening on its socket). */
  args?: string[];
  /** Join this network namespace (one the worker plumbed) instead of a new loopback-only one. */
  netnsPath?: string | undefined;
  /** Host file bind-mounted read-only at /etc/resolv.conf (networked bunkers). */
  resolvConfPath?: string | undefined;
}

/** Whole-number CFS quota for a millicore count (at least 1 ms per period, the kernel minimum). */
export function cpuQuotaUs(cpuMillicores: number): number {
  return Math.max(1000, Math.round((cpuMillicores * CPU_PERIOD_US) / 1000));
}

/** The hard RLIMIT_NOFILE of this process (what a bunker may get without CAP_SYS_RESOURCE). */
export function hostNofileHardLimit(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    if (!hard) return undefined;
    return hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
  } catch {
    return undefined;
  }
}

/** Builds the OCI runtime-spec config.json object of a bunker. */
export function buildOciConfig(o: OciBundleOptions): Record<string, unknown> {
  const memBytes = o.memoryMb * 1024 * 1024;
  const caps = [...DEFAULT_CAPABILITIES];
  const memory: Record<string, unknown> = { limit: memBytes };
  // swap = memory + swap in OCI terms: equal to the limit means "no swap at all"
  if (o.swapAccounting !== false) memory.swap = memBytes;

  const mounts: Array<Record<string, unknown>> = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    o.devDir
      ? { destination: '/dev', type: 'bind', source: o.devDir, options: ['bind', 'nosuid'] }
      : { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    o.shmDir
      ? { destination: '/dev/shm', type: 'bind', source: o.shmDir, options: ['bind', 'nosuid', 'noexec', 'nodev'] }
      : { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ];
  if (o.mountCgroupFs !== false && o.cgroupBinds) {
    const ro = ['bind', 'ro', 'nosuid', 'noexec', 'nodev'];
    mounts.push({ destination: '/sys/fs/cgroup', type: 'bind', source: o.cgroupBinds.root, options: ro });
    for (const h of o.cgroupBinds.hierarchies)
      mounts.push({ destination: `/sys/fs/cgroup/${h.name}`, type: 'bind', source: h.dir, options: ro });
  } else if (o.mountCgroupFs !== false) {
    mounts.push({
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    });
  }
  const boundMasks = o.emptyDir ? MASKED_PATHS.filter((p) => (o.bindProcMasks || !p.startsWith('/proc/')) && isDirectory(p)) : [];
  for (const destination of boundMasks) {
    mounts.push({ destination, type: 'bind', source: o.emptyDir, options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  }
  if (o.tmpSizeMb !== undefined) {
    mounts.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', `size=${o.tmpSizeMb}m`] });
  }
  mounts.push({ destination: AGENT_RUN_DIR, type: 'bind', source: o.agentRunDir, options: ['bind', 'nosuid', 'nodev', 'noexec'] });
  if (o.resolvConfPath) {
    mounts.push({
      destination: '/etc/resolv.conf',
      type: 'bind',
      source: o.resolvConfPath,
      options: ['bind', 'ro', 'nosuid', 'nodev', 'noexec'],
    });
  }

  const dev = (major: number, minor: number | null, type = 'c') => ({
    allow: true,
    type,
    major,
    ...(minor === null ? {} : { minor }),
    access: 'rwm',
  });

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: o.args ?? [AGENT_PATH, '--listen', `${AGENT_RUN_DIR}/${AGENT_SOCKET_NAME}`],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'container=scaibunker'],
      cwd: '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: o.nofile ?? 65536, soft: o.nofile ?? 65536 }],
      noNewPrivileges: true,
      oomScoreAdj: 500,
    },
    root: { path: o.rootfsPath, readonly: false },
    hostname: o.hostname,
    mounts,
    annotations: o.annotations ?? {},
    linux: {
      namespaces: [
        { type: 'pid' },
        o.netnsPath ? { type: 'network', path: o.netnsPath } : { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
      ],
      cgroupsPath: o.cgroupsPath,
      resources: {
        devices: [
          { allow: false, access: 'rwm' },
          dev(1, 3), // null
          dev(1, 5), // zero
          dev(1, 7), // full
          dev(1, 8), // random
          dev(1, 9), // urandom
          dev(5, 0), // tty
          dev(5, 2), // ptmx
          dev(136, null), // pts/*
        ],
        memory,
        cpu: {
          shares: Math.max(2, Math.round((o.cpuMillicores * 1024) / 1000)),
          quota: cpuQuotaUs(o.cpuMillicores),
          period: CPU_PERIOD_US,
        },
        pids: { limit: o.pidsLimit ?? DEFAULT_PIDS_LIMIT },
      },
      // ping without CAP_NET_RAW (namespaced sysctl of the bunker's own netns)
      sysctl: { 'net.ipv4.ping_group_range': '0 2147483647' },
      ...(o.seccomp === null ? {} : { seccomp: o.seccomp ?? defaultSeccompProfile() }),
      rootfsPropagation: 'private',
      maskedPaths: MASKED_PATHS.filter((p) => !boundMasks.includes(p)),
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

/** Whether `path` is a directory on this host (the same kernel's /sys is what a bunker sees). */
function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
