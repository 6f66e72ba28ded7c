/**
 * "Bare runtime" baseline for the latency benchmark: the OCI runtime alone starting the
 * minimal image's rootfs and running /bin/true — no overlay, no disk tmpfs, no agent, no
 * socket wait. The difference to ContainerProvider.spawn() is the provider's own overhead.
 *
 *   node --import tsx packages/worker/src/providers/container/bareRun.ts [--runs 30] [--runtime crun|runc] [--config bunker|default] [--image minimal]
 *
 * `--config bunker` (default) uses the very config.json a bunker gets (namespaces incl. net,
 * cgroup limits, seccomp, masked paths) with a read-only root; `--config default` uses the
 * runtime's stock `spec`-like config (closest to "crun run /bin/true" in DESIGN.md).
 * Each run goes through the same resident shell the provider uses to launch the runtime.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Cgroups } from '../host/Cgroups.js';
import { HostMounts } from './HostMounts.js';
import { HostShell, shq } from './HostShell.js';
import { buildOciConfig, hostNofileHardLimit } from './OciBundle.js';
import { OciRuntime, type RuntimeName } from './OciRuntime.js';

export interface BareRunOptions {
  /** The image's ext4 file (the minimal image). */
  imagePath: string;
  runtime?: RuntimeName;
  runs?: number;
  config?: 'bunker' | 'default';
  /** Scratch dir (default /tmp/sb-bare-<pid>); removed afterwards. */
  workDir?: string;
  /**
   * Called after each measured run (the latency bench does one create → first exec there), so
   * the baseline and what is compared with it alternate and see the same machine load.
   */
  between?: (run: number) => Promise<void>;
}

export interface BareRunResult {
  runtime: RuntimeName;
  config: 'bunker' | 'default';
  runs: number;
  p50Ms: number;
  minMs: number;
  maxMs: number;
  samplesMs: number[];
}

/** A runtime-spec config close to `crun spec` / `runc spec` (rootless bits removed). */
function stockConfig(rootfs: string, cgroupsPath: string): Record<string, unknown> {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/bin/true'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      capabilities: {
        bounding: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
        effective: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
        permitted: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'],
      },
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'bare',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    ],
    linux: {
      cgroupsPath,
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

export async function bareRuntimeRun(o: BareRunOptions): Promise<BareRunResult> {
  const runs = o.runs ?? 30;
  const configKind = o.config ?? 'bunker';
  const work = o.workDir ?? `/tmp/sb-bare-${process.pid}`;
  const rootfs = join(work, 'rootfs');
  const shell = new HostShell(join(work, 'tmp'));
  const mounts = new HostMounts(shell);
  mkdirSync(rootfs, { recursive: true });
  mkdirSync(join(work, 'run'), { recursive: true, mode: 0o700 });

  const cg = await Cgroups.detect();
  if (cg.layout === 'hybrid') await cg.fixHybrid().catch(() => []);
  const name: RuntimeName = o.runtime ?? 'crun';
  const rt = OciRuntime.locate(name, join(work, 'state'));
  if (!rt) throw new Error(`${name} not found`);
  mkdirSync(rt.stateRoot, { recursive: true });

  await mounts.mountImage(o.imagePath, rootfs);
  const samples: number[] = [];
  try {
    const swap =
      cg.layout === 'v2' || !!(cg.v1.get('memory') && readable(join(cg.v1.get('memory') as string, 'memory.memsw.limit_in_bytes')));
    for (let i = 0; i < runs + 1; i++) {
      const id = `bare-${process.pid}-${i}`;
      const cgPath = `/scaibunker/${id}`;
      const config =
        configKind === 'default'
          ? stockConfig(rootfs, cgPath)
          : {
              ...buildOciConfig({
                rootfsPath: rootfs,
                agentRunDir: join(work, 'run'),
                hostname: 'bare',
                cgroupsPath: cgPath,
                cpuMillicores: 1000,
                memoryMb: 128,
                tmpSizeMb: 64,
                swapAccounting: swap,
                nofile: Math.min(65536, hostNofileHardLimit() ?? 65536),
                args: ['/bin/true'],
              }),
            };
      (config.root as { readonly: boolean }).readonly = true;
      writeFileSync(join(work, 'config.json'), JSON.stringify(config));
      const cmd = [rt.bin, '--root', rt.stateRoot, 'run', '--bundle', work, id].map(shq).join(' ');
      const t0 = performance.now();
      const r = await shell.run(cmd);
      const ms = performance.now() - t0;
      if (r.code !== 0) throw new Error(`${name} run /bin/true failed (exit ${r.code}): ${r.stderr.trim()}`);
      await cg.remove(cgPath).catch(() => {});
      if (i > 0) {
        samples.push(ms); // the first run warms caches
        await o.between?.(i - 1);
      }
    }
  } finally {
    await mounts.unmount([rootfs], { loop: true }).catch(() => {});
    shell.close();
    if ((await HostMounts.mountsUnder(work)).length === 0) rmSync(work, { recursive: true, force: true });
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    runtime: name,
    config: configKind,
    runs,
    p50Ms: sorted[Math.floor(sorted.length / 2)] as number,
    minMs: sorted[0] as number,
    maxMs: sorted[sorted.length - 1] as number,
    samplesMs: samples,
  };
}

function readable(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch {
    return false;
  }
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const imageDir = process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images';
  const imageName = arg('image') ?? 'minimal';
  const catalog = JSON.parse(readFileSync(join(imageDir, 'catalog.json'), 'utf8')) as Array<{ name: string; file: string }>;
  const img = catalog.find((c) => c.name === imageName);
  if (!img) {
    console.error(`image ${imageName} not in ${imageDir}/catalog.json (run scripts/build-images.sh)`);
    process.exit(1);
  }
  const res = await bareRuntimeRun({
    imagePath: join(imageDir, img.file),
    runtime: (arg('runtime') as RuntimeName | undefined) ?? 'crun',
    runs: Number(arg('runs') ?? 30),
    config: (arg('config') as 'bunker' | 'default' | undefined) ?? 'bunker',
  });
  console.log(
    `[bare-runtime] ${res.runtime} run /bin/true (${res.config} config, ${imageName} rootfs): p50 ${res.p50Ms.toFixed(1)} ms, min ${res.minMs.toFixed(1)} ms, max ${res.maxMs.toFixed(1)} ms over ${res.runs} runs`,
  );
}
