/**
 * Does Firecracker boot a guest on this host's KVM? `/dev/kvm` existing proves nothing (a PVM
 * /dev/kvm hangs a stock kernel), so the guest kernel is booted once with no init: a working
 * KVM prints the kernel banner on the serial console within milliseconds. The answer is cached
 * per host boot, Firecracker version and kernel (as Accelerator.ts does for QEMU).
 */
import { spawn } from 'node:child_process';
import { type FSWatcher, watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { waitForFile } from '../../../util/waitForFile.js';
import { FirecrackerApi } from './FirecrackerApi.js';

export interface KvmProbeResult {
  ok: boolean;
  reason: string;
}

const PROBE_TIMEOUT_MS = 3000;
const BANNER = 'Linux version';

export class FirecrackerKvmProbe {
  constructor(private readonly binary: string) {}

  async run(o: { version: string; kernelPath: string; kernelSha256: string; cacheFile: string }): Promise<KvmProbeResult> {
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
    const key = `firecracker|${bootId}|${o.version}|${o.kernelSha256}`;
    try {
      const cached = JSON.parse(await readFile(o.cacheFile, 'utf8')) as { key?: string; probe?: KvmProbeResult };
      if (cached.key === key && cached.probe) return cached.probe;
    } catch {
      // no cache yet
    }
    const probe = await this.boot(o.kernelPath);
    await mkdir(dirname(o.cacheFile), { recursive: true })
      .then(() => writeFile(o.cacheFile, JSON.stringify({ key, probe })))
      .catch(() => {}); // a cache that cannot be written only costs the next start a probe
    return probe;
  }

  private async boot(kernelPath: string): Promise<KvmProbeResult> {
    const dir = await mkdtemp(join(os.tmpdir(), 'sbfckvm-'));
    const sock = join(dir, 'api.sock');
    const consoleLog = join(dir, 'console.log');
    const t0 = performance.now();
    const child = spawn(this.binary, ['--api-sock', sock], { cwd: dir, stdio: 'ignore' });
    const exited = new Promise<void>((res) => {
      child.once('exit', () => res());
      child.once('error', () => res());
    });
    const banner = watchForBanner(consoleLog);
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'timeout'>((res) => {
      timer = setTimeout(() => res('timeout'), PROBE_TIMEOUT_MS);
    });
    try {
      const steps = (async () => {
        await waitForFile(sock, PROBE_TIMEOUT_MS);
        const api = new FirecrackerApi(sock, PROBE_TIMEOUT_MS);
        await api.whenListening(PROBE_TIMEOUT_MS);
        await api.put('/machine-config', { vcpu_count: 1, mem_size_mib: 128, smt: false });
        await api.put('/boot-source', { kernel_image_path: kernelPath, boot_args: 'console=ttyS0 panic=-1 rdinit=/scaibunker-kvm-probe' });
        await api.put('/serial', { serial_out_path: 'console.log' });
        await api.put('/actions', { action_type: 'InstanceStart' });
        await banner.seen;
        return 'banner' as const;
      })();
      steps.catch(() => {});
      const outcome = await Promise.race([steps, bound, exited.then(() => 'exited' as const)]).catch((e: Error) => e);
      const ms = Math.round(performance.now() - t0);
      if (outcome === 'banner') return { ok: true, reason: `probe: kernel banner under Firecracker within ${ms} ms` };
      if (outcome instanceof Error) return { ok: false, reason: `probe failed: ${outcome.message}` };
      return {
        ok: false,
        reason:
          outcome === 'exited'
            ? 'probe: Firecracker exited before the guest kernel printed anything'
            : `probe: no kernel output within ${PROBE_TIMEOUT_MS} ms (e.g. a PVM /dev/kvm)`,
      };
    } finally {
      clearTimeout(timer);
      banner.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** `seen` resolves once `path` (created later) contains the kernel banner; close() stops watching. */
function watchForBanner(path: string): { seen: Promise<void>; close(): void } {
  let watcher: FSWatcher | undefined;
  const seen = new Promise<void>((resolve) => {
    const check = async () => {
      if ((await readFile(path, 'utf8').catch(() => '')).includes(BANNER)) resolve();
    };
    watcher = watch(dirname(path), () => void check());
    void check();
  });
  return { seen, close: () => watcher?.close() };
}
