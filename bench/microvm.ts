/**
 * npm run bench:microvm — the VMM path of the microvm provider, measured at the provider level
 * (MicrovmProvider → QEMU -M microvm → guest agent; no worker, server or SDK in between):
 *
 *   cold_boot_ready  spawn() with snapshots 'off' until it resolves (agent HELLO + identity op
 *                    done = "agent ready"); includes the qcow2 overlay, cgroup and QEMU start.
 *   restore_ready    the same with snapshots 'manual', restoring from the shape's memory
 *                    snapshot (built first with snapshots.ensure(), then one untimed warm-up
 *                    restore).
 *   exec_rtt         sequential agent.exec(['/bin/true']) on one restored bunker, after warm-up.
 *   bare_boot        bare QEMU with the provider's argv (QemuCommand: same kernel, initramfs,
 *                    machine and devices, same accel) but init = `busybox poweroff -f`, so the
 *                    guest powers off (ACPI S5, -no-reboot) as soon as userspace starts; timed
 *                    from spawning QEMU to its exit. No cgroup (the provider's QEMU runs under
 *                    a 1-CPU quota); the QMP SHUTDOWN reason checks it was a power-off, not a
 *                    panic. Cold and bare samples alternate so host load hits both alike.
 *
 * Shape for all: minimal image, 256 MiB, 1 vCPU (1000 millicores), 128 MiB disk. Targets are
 * printed, not asserted: restore→ready p50 ≤ 400 ms, exec RTT p50 ≤ 15 ms, cold ≤ 1.3× bare.
 * Needs root, QEMU and the guest kernel (scripts/build-guest-kernel.sh). Progress goes to
 * stderr; the last stdout line is one JSON object. Env: BENCH_COLD (5), BENCH_RESTORES (20),
 * BENCH_EXECS (200), BENCH_BARE (5).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentClient } from '../packages/worker/src/agent/AgentClient.js';
import { GuestAssets } from '../packages/worker/src/providers/microvm/GuestAssets.js';
import { MicrovmProvider } from '../packages/worker/src/providers/microvm/MicrovmProvider.js';
import { QemuCommand } from '../packages/worker/src/providers/microvm/QemuCommand.js';
import { Qmp } from '../packages/worker/src/providers/microvm/Qmp.js';
import { RootOverlay } from '../packages/worker/src/providers/microvm/RootOverlay.js';
import type { VmShape } from '../packages/worker/src/providers/microvm/SnapshotTemplates.js';
import type { BunkerSpec } from '../packages/worker/src/providers/Provider.js';
import { IMAGE_DIR, minimalImage } from '../packages/worker/test/providers/support.js';
import { pct } from './percentile.js';

const COLD = Number(process.env.BENCH_COLD ?? 5);
const RESTORES = Number(process.env.BENCH_RESTORES ?? 20);
const EXECS = Number(process.env.BENCH_EXECS ?? 200);
const BARE = Number(process.env.BENCH_BARE ?? 5);
const WARMUP = 20;
const SHAPE = { memoryMb: 256, cpuMillicores: 1000, cpus: 1, diskMb: 128 };

const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);
const logger = { info: (m: string) => log(`microvm: ${m}`), warn: (m: string) => log(`microvm warning: ${m}`) };

const run = `bm${process.pid % 100000}-${randomBytes(2).toString('hex')}`;
let seq = 0;
const coldDir = mkdtempSync('/tmp/sbbench-cold-');
const restoreDir = mkdtempSync('/tmp/sbbench-restore-');
const bareDir = mkdtempSync('/tmp/sbbench-bare-');
const cold = new MicrovmProvider({ dataDir: coldDir, snapshots: 'off', logger });
const restore = new MicrovmProvider({ dataDir: restoreDir, snapshots: 'manual', logger });
const live = new Map<string, { provider: MicrovmProvider; agent?: AgentClient }>();
const bareChildren = new Set<ChildProcess>();
let stopping = false;

let cleaned: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaned ??= (async () => {
    stopping = true; // nothing new starts once cleanup has begun (e.g. on SIGINT mid-run)
    for (const c of bareChildren) c.kill('SIGKILL');
    for (const [id, b] of live) {
      b.agent?.close();
      await b.provider.destroy(id).catch((e) => log(`destroy ${id}: ${(e as Error).message}`));
    }
    live.clear();
    await cold.shutdown().catch(() => {});
    await restore.shutdown().catch(() => {});
    for (const d of [coldDir, restoreDir, bareDir]) rmSync(d, { recursive: true, force: true });
  })();
  return cleaned;
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** Spawns a bunker of SHAPE and returns the spawn→ready time; it stays in `live` until destroyed. */
async function spawnReady(provider: MicrovmProvider, image: { sha256: string; path: string }) {
  if (stopping) throw new Error('interrupted');
  const id = `${run}-${++seq}`;
  const spec: BunkerSpec = {
    id,
    imageSha256: image.sha256,
    imagePath: image.path,
    cpuMillicores: SHAPE.cpuMillicores,
    memoryMb: SHAPE.memoryMb,
    diskMb: SHAPE.diskMb,
    hostname: `h-${id}`,
    networkProfile: 'isolated',
  };
  live.set(id, { provider });
  const t0 = performance.now();
  const b = await provider.spawn(spec).catch((e) => {
    live.delete(id); // a failed spawn cleans up after itself
    throw e;
  });
  const ms = performance.now() - t0;
  if (!b.agent) throw new Error(`spawn of ${id} returned no agent channel`);
  live.set(id, { provider, agent: b.agent });
  const meta = JSON.parse(readFileSync(provider.paths(id).meta, 'utf8')) as { snapshot: string | null };
  return { id, ms, agent: b.agent, restored: meta.snapshot !== null };
}

async function destroy(id: string): Promise<void> {
  const b = live.get(id);
  if (!b) return;
  b.agent?.close();
  await b.provider.destroy(id);
  live.delete(id);
}

/**
 * Builds the shape's snapshot and takes one untimed warm-up restore, which must really
 * restore (the provider falls back to a cold boot when a snapshot does not restore).
 */
async function readySnapshot(shape: VmShape, image: { sha256: string; path: string }): Promise<void> {
  const t0 = performance.now();
  const snap = await restore.snapshots.ensure(restore.snapshotKey(shape), shape);
  if (!snap) throw new Error('the snapshot of the bench shape was not built (see the warning above)');
  log(`snapshot built in ${(performance.now() - t0).toFixed(0)} ms (state.bin ${statSync(snap.state).size} bytes)`);
  const b = await spawnReady(restore, image);
  if (!b.restored) throw new Error(`bunker ${b.id} cold-booted instead of restoring: the snapshot did not restore`);
  log(`warm-up restore: ${b.ms.toFixed(0)} ms`);
  await destroy(b.id);
}

/** Bare QEMU, provider argv, init = busybox poweroff -f: ms from spawn to exit. */
async function bareBoot(guest: GuestAssets, disk: string, accel: 'kvm' | 'tcg', i: number): Promise<number> {
  if (stopping) throw new Error('interrupted');
  const qmpSock = join(bareDir, `qmp-${i}.sock`);
  const cmd = new QemuCommand({
    kernelPath: guest.kernelPath,
    initrdPath: guest.initrdPath,
    diskPath: disk,
    agentSocketPath: join(bareDir, `agent-${i}.sock`),
    consoleLogPath: join(bareDir, `console-${i}.log`),
    memoryMb: SHAPE.memoryMb,
    cpus: SHAPE.cpus,
    accel,
    qmpSocketPath: qmpSock, // as the provider: start paused (-S), `cont` once QMP is up
    // a later rdinit= overrides QemuCommand's rdinit=/init; words after `--` are init's argv
    extraAppend: ['rdinit=/bin/busybox', '--', 'poweroff', '-f'],
  });
  const timeoutMs = accel === 'kvm' ? 20_000 : 60_000;
  const t0 = performance.now();
  const child = spawn(cmd.binary, cmd.argv(), { stdio: ['ignore', 'ignore', 'pipe'] });
  bareChildren.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number>((res, rej) => {
    child.once('exit', () => res(performance.now() - t0));
    child.once('error', rej);
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`bare boot ${i} did not power off within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  const abort = Promise.race([exited.then(() => Promise.reject(new Error(`bare QEMU exited early: ${stderr.trim()}`))), deadline]);
  abort.catch(() => {});
  let qmp: Qmp | undefined;
  try {
    qmp = await Qmp.connect(qmpSock, { timeoutMs, abort });
    const shutdown = qmp.waitEvent('SHUTDOWN');
    shutdown.catch(() => {});
    await qmp.execute('cont');
    const ev = await Promise.race([shutdown, deadline]);
    const ms = await Promise.race([exited, deadline]);
    if (ev.data?.reason !== 'guest-shutdown') throw new Error(`bare boot ${i} ended with ${String(ev.data?.reason)}, not a power-off`);
    return ms;
  } finally {
    clearTimeout(timer);
    qmp?.close();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    bareChildren.delete(child);
  }
}

try {
  const img = minimalImage();
  const image = { sha256: img.sha256, path: join(IMAGE_DIR, img.file) };
  await cold.init();
  await restore.init();
  if (cold.accel !== restore.accel) throw new Error(`providers disagree on accel: ${cold.accel} vs ${restore.accel}`);
  const accel = cold.accel;
  const health = await cold.health();
  log(`QEMU ${health.runtime}`);
  log(
    accel === 'kvm'
      ? `note: ${health.details} — guest code runs natively; these are the production-like numbers`
      : `note: ${health.details} — under KVM the guest's code would run natively instead of through TCG's binary translation, so boot, restore and exec would all be much faster; treat these numbers as an upper bound`,
  );

  // ---- cold boot (snapshots off), alternating with bare boots of the same kernel + initramfs
  const guest = GuestAssets.load();
  const bareDisk = join(bareDir, 'root.qcow2');
  await RootOverlay.create(bareDisk, image.path, SHAPE.diskMb);
  const coldMs: number[] = [];
  const bareMs: number[] = [];
  for (let i = 0; i < Math.max(COLD, BARE); i++) {
    if (i < COLD) {
      const b = await spawnReady(cold, image);
      if (b.restored) throw new Error(`cold bunker ${b.id} was restored from a snapshot`);
      coldMs.push(b.ms);
      log(`cold boot ${i + 1}/${COLD}: ${b.ms.toFixed(0)} ms`);
      await destroy(b.id);
    }
    if (i < BARE) {
      const ms = await bareBoot(guest, bareDisk, accel, i);
      bareMs.push(ms);
      log(`bare boot ${i + 1}/${BARE}: ${ms.toFixed(0)} ms`);
    }
  }

  // ---- restore from the shape's memory snapshot
  const shape: VmShape = {
    imageSha256: image.sha256,
    imagePath: image.path,
    cpus: SHAPE.cpus,
    memoryMb: SHAPE.memoryMb,
    diskMb: SHAPE.diskMb,
  };
  await readySnapshot(shape, image);
  const restoreMs: number[] = [];
  for (let i = 0; i < RESTORES; i++) {
    const b = await spawnReady(restore, image);
    if (!b.restored) throw new Error(`bunker ${b.id} cold-booted instead of restoring`);
    restoreMs.push(b.ms);
    log(`restore ${i + 1}/${RESTORES}: ${b.ms.toFixed(0)} ms`);
    await destroy(b.id);
  }

  // ---- exec round trips on one restored bunker
  const b = await spawnReady(restore, image);
  for (let i = 0; i < WARMUP; i++) await b.agent.exec({ argv: ['/bin/true'] });
  const rtt: number[] = [];
  for (let i = 0; i < EXECS; i++) {
    const t0 = performance.now();
    const r = await b.agent.exec({ argv: ['/bin/true'] });
    rtt.push(performance.now() - t0);
    if (r.exitCode !== 0) throw new Error(`/bin/true exited ${r.exitCode} (signal ${r.signal})`);
  }
  await destroy(b.id);
  log(`${EXECS} exec round trips: p50 ${pct(rtt, 50)} ms, p99 ${pct(rtt, 99)} ms`);

  const ratio = Number((pct(coldMs, 50) / pct(bareMs, 50)).toFixed(2));
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  log(`cold boot→ready: p50 ${pct(coldMs, 50)} ms, p99 ${pct(coldMs, 99)} ms; bare boot p50 ${pct(bareMs, 50)} ms`);
  log(`restore→ready: p50 ${pct(restoreMs, 50)} ms, p99 ${pct(restoreMs, 99)} ms`);
  log(`target restore→ready p50 ≤ 400 ms: ${pct(restoreMs, 50)} ms — ${verdict(pct(restoreMs, 50) <= 400)}`);
  log(`target exec RTT p50 ≤ 15 ms: ${pct(rtt, 50)} ms — ${verdict(pct(rtt, 50) <= 15)}`);
  log(`target cold boot ≤ 1.3× bare boot: ${ratio}× — ${verdict(ratio <= 1.3)} (accel ${accel})`);

  console.log(
    JSON.stringify({
      cold_boot_ready_p50_ms: pct(coldMs, 50),
      cold_boot_ready_p99_ms: pct(coldMs, 99),
      restore_ready_p50_ms: pct(restoreMs, 50),
      restore_ready_p99_ms: pct(restoreMs, 99),
      exec_rtt_p50_ms: pct(rtt, 50),
      exec_rtt_p99_ms: pct(rtt, 99),
      accel,
      bare_boot_p50_ms: pct(bareMs, 50),
      cold_vs_bare_ratio: ratio,
      samples: { cold_boot: coldMs.length, restore: restoreMs.length, exec: rtt.length, exec_warmup: WARMUP, bare_boot: bareMs.length },
    }),
  );
} finally {
  await cleanup();
}
