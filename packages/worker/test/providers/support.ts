/** Shared by the provider suites: the test image, a shell helper, process and image utilities. */

import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { specFactory as conformanceSpecFactory } from '../../src/conformance/providerConformance.js';
import { DockerEngine } from '../../src/providers/docker/DockerEngine.js';
import { MountTable } from '../../src/providers/host/MountTable.js';
import type { BunkerSpec } from '../../src/providers/Provider.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
export const IMAGE_DIR = process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images';
export const isRoot = process.getuid?.() === 0;

export interface CatalogEntry {
  name: string;
  sha256: string;
  size_bytes: number;
  file: string;
}

export function minimalImage(): CatalogEntry {
  // cached: < 1 s when nothing changed; re-bakes when the agent changed
  execFileSync('bash', [join(REPO, 'scripts/build-images.sh'), 'minimal'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, SCAIBUNKER_IMAGE_DIR: IMAGE_DIR },
  });
  const catalog = JSON.parse(readFileSync(join(IMAGE_DIR, 'catalog.json'), 'utf8')) as CatalogEntry[];
  const img = catalog.find((c) => c.name === 'minimal');
  assert.ok(img, 'minimal image in catalog');
  return img;
}

export { pidAlive, raceTimeout, type ShResult, sh } from '../../src/conformance/helpers.js';

/** Builds a tiny ext4 image from a dir spec (for failure-path tests). */
export function makeImage(
  dir: string,
  name: string,
  files: Record<string, { content: string; mode?: number } | 'busybox'>,
): { sha: string; path: string } {
  const root = join(dir, `${name}-root`);
  for (const [p, f] of Object.entries(files)) {
    const dest = join(root, p);
    mkdirSync(dirname(dest), { recursive: true });
    if (f === 'busybox') execFileSync('cp', ['/bin/busybox', dest]);
    else writeFileSync(dest, f.content, { mode: f.mode ?? 0o644 });
  }
  for (const d of ['proc', 'sys', 'dev', 'tmp', '.scaibunker/run']) mkdirSync(join(root, d), { recursive: true });
  const file = join(dir, `${name}.ext4`);
  execFileSync('mkfs.ext4', ['-q', '-F', '-O', '^has_journal', '-E', 'root_owner=0:0', '-d', root, file, '8M'], { stdio: 'ignore' });
  rmSync(root, { recursive: true, force: true });
  const sha = execFileSync('sha256sum', [file]).toString().split(' ')[0] as string;
  return { sha, path: file };
}

/**
 * Builds BunkerSpecs for one suite from a catalog image: the conformance suite's factory (ids
 * `<prefix><pid>-<n>`, the suite's defaults, then the test's overrides).
 */
export function specFactory(
  prefix: string,
  image: () => CatalogEntry,
  defaults: Pick<BunkerSpec, 'cpuMillicores' | 'memoryMb' | 'diskMb'>,
): (over?: Partial<BunkerSpec>) => BunkerSpec {
  return conformanceSpecFactory(
    prefix,
    () => {
      const img = image();
      return { sha256: img.sha256, path: join(IMAGE_DIR, img.file) };
    },
    defaults,
  );
}

/**
 * Why the microvm suites cannot run here, or false; builds the guest kernel first (cached,
 * < 1 s when nothing changed).
 */
export function microvmSkipReason(): string | false {
  if (!isRoot) return 'needs root';
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'no qemu-system-x86_64';
  }
  execFileSync('bash', [join(REPO, 'scripts/build-guest-kernel.sh')], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 600_000 });
  return false;
}

/** Why the proot suites cannot run here, or false (the provider needs root, proot and the nonet helper, built here). */
export function prootSkipReason(): string | false {
  if (!isRoot) return 'needs root';
  try {
    execFileSync('proot', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'proot is not installed (apt-get install proot)';
  }
  execFileSync('make', ['-s', '-C', join(REPO, 'packages/worker/native/nonet')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return false;
}

/** A dockerd of the tests' own: private socket, data and exec roots, no iptables, no bridge. */
export interface PrivateDockerd {
  host: string;
  stop(): Promise<void>;
}

/**
 * Why the Docker suites cannot run here, or false: SCAIBUNKER_DOCKER_HOST names a daemon to
 * use, else `dockerd` must be installed (the suite starts its own, see startPrivateDockerd).
 */
export function dockerSkipReason(): string | false {
  if (!isRoot) return 'needs root';
  if (process.env.SCAIBUNKER_DOCKER_HOST) return false;
  try {
    execFileSync('dockerd', ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return 'no dockerd socket configured (SCAIBUNKER_DOCKER_HOST) and dockerd is not installed (apt-get install docker.io)';
  }
}

/**
 * SCAIBUNKER_DOCKER_HOST when set (left running), else a private dockerd under a /tmp dir
 * (never the system socket), stopped and removed again by stop().
 */
export async function startPrivateDockerd(): Promise<PrivateDockerd> {
  const given = process.env.SCAIBUNKER_DOCKER_HOST;
  if (given) return { host: given, stop: async () => {} };
  const dir = mkdtempSync('/tmp/sbd-');
  const sock = join(dir, 'docker.sock');
  const log = openSync(join(dir, 'dockerd.log'), 'a');
  const ns = `sbtest${process.pid}`;
  const child = spawn(
    'dockerd',
    [
      `--host=unix://${sock}`,
      `--data-root=${join(dir, 'data')}`,
      `--exec-root=${join(dir, 'exec')}`,
      `--pidfile=${join(dir, 'dockerd.pid')}`,
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--bridge=none',
      `--containerd-namespace=${ns}`,
      `--containerd-plugins-namespace=${ns}p`,
      `--cgroup-parent=${ns}`,
    ],
    { stdio: ['ignore', log, log], detached: true },
  );
  closeSync(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    for (const mp of (await MountTable.read())
      .map((m) => m.mountPoint)
      .filter((m) => m.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length))
      spawnSync('umount', ['-l', mp]);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  const engine = new DockerEngine(`unix://${sock}`);
  const up = async () =>
    existsSync(sock) && (await engine.call('GET', '/_ping', { timeoutMs: 2000 }).catch(() => undefined))?.status === 200;
  while (!(await up())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const text = readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-2000);
      await stop();
      throw new Error(`private dockerd did not start: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host: `unix://${sock}`, stop };
}
