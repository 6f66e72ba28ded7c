/** Shared by the provider suites: the test image, a shell helper, process and image utilities. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AgentClient } from '../../src/agent/AgentClient.js';
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

export interface ShResult {
  code: number | null;
  signal: string | null;
  out: string;
  err: string;
}

export async function sh(c: AgentClient, script: string, timeoutMs = 20_000): Promise<ShResult> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const r = await c.exec(
    { argv: ['/bin/sh', '-c', script], timeoutMs },
    {
      onStdout: (d) => {
        out.push(d);
      },
      onStderr: (d) => {
        err.push(d);
      },
    },
  );
  return { code: r.exitCode, signal: r.signal, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
}

export function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  return Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return false;
  }
}

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
 * Builds BunkerSpecs for one suite: ids `<prefix><pid>-<n>` (unique per run), the given image,
 * the suite's defaults, then the test's overrides.
 */
export function specFactory(
  prefix: string,
  image: () => CatalogEntry,
  defaults: Pick<BunkerSpec, 'cpuMillicores' | 'memoryMb' | 'diskMb'>,
): (over?: Partial<BunkerSpec>) => BunkerSpec {
  let seq = 0;
  return (over = {}) => {
    const id = over.id ?? `${prefix}${process.pid % 10000}-${++seq}`;
    const img = image();
    return {
      id,
      imageSha256: img.sha256,
      imagePath: join(IMAGE_DIR, img.file),
      ...defaults,
      hostname: `h-${id}`,
      networkProfile: 'isolated',
      ...over,
    };
  };
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
