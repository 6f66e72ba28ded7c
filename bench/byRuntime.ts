/**
 * bench:latency's `by_runtime`: create → first exec and exec round trip at the provider level
 * (provider.spawn → agent channel → `true`) for each container runtime and proot, one after the
 * other in the same run, with ratios against crun measured in that run. The whole-stack
 * numbers stay bench:latency's top-level fields; these compare the runtimes alone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '../packages/worker/src/agent/AgentClient.js';
import { ContainerProvider } from '../packages/worker/src/providers/container/ContainerProvider.js';
import { HostMounts } from '../packages/worker/src/providers/container/HostMounts.js';
import { DockerProvider } from '../packages/worker/src/providers/docker/DockerProvider.js';
import type { BunkerSpec, Provider } from '../packages/worker/src/providers/Provider.js';
import { ProotProvider } from '../packages/worker/src/providers/proot/ProotProvider.js';
import {
  dockerSkipReason,
  IMAGE_DIR,
  minimalImage,
  prootSkipReason,
  startPrivateDockerd,
} from '../packages/worker/test/providers/support.js';
import { pct } from './percentile.js';

export interface RuntimeLatency {
  create_first_exec_p50_ms: number;
  exec_p50_ms: number;
  create_ratio_to_crun?: number;
  exec_ratio_to_crun?: number;
}

type Subject = { name: string; skip: string | false; make(dataDir: string): Promise<{ provider: Provider; stop(): Promise<void> }> };

const SUBJECTS: Subject[] = [
  {
    name: 'crun',
    skip: false,
    make: async (dataDir) => ({ provider: new ContainerProvider({ dataDir, runtime: 'crun' }), stop: async () => {} }),
  },
  {
    name: 'runc',
    skip: false,
    make: async (dataDir) => ({ provider: new ContainerProvider({ dataDir, runtime: 'runc' }), stop: async () => {} }),
  },
  {
    name: 'docker',
    skip: dockerSkipReason(),
    make: async (dataDir) => {
      const dockerd = await startPrivateDockerd();
      return { provider: new DockerProvider({ dataDir, dockerHost: dockerd.host }), stop: () => dockerd.stop() };
    },
  },
  { name: 'proot', skip: prootSkipReason(), make: async (dataDir) => ({ provider: new ProotProvider({ dataDir }), stop: async () => {} }) },
];

/** One runtime: `creates` bunkers each timed from spawn to its first exec's result, then `execs` round trips on one. */
async function measure(s: Subject, creates: number, execs: number): Promise<RuntimeLatency> {
  const img = minimalImage();
  const dataDir = mkdtempSync('/tmp/sbl-');
  const { provider, stop } = await s.make(dataDir);
  const live = new Set<string>();
  let seq = 0;
  const spec = (): BunkerSpec => {
    const id = `bl${process.pid % 10000}-${++seq}`;
    return {
      id,
      imageSha256: img.sha256,
      imagePath: join(IMAGE_DIR, img.file),
      cpuMillicores: 1000,
      memoryMb: 128,
      diskMb: 64,
      hostname: id,
      networkProfile: 'isolated',
    };
  };
  const start = async () => {
    const sp = spec();
    live.add(sp.id);
    const b = await provider.spawn(sp);
    const c = b.agent ?? (await AgentClient.connect(b.agentSocketPath, { awaitHello: true }));
    return { id: sp.id, c };
  };
  const run = async (c: AgentClient) => {
    const r = await c.exec({ argv: ['true'] });
    if (r.exitCode !== 0) throw new Error(`${s.name}: true exited ${r.exitCode}`);
  };
  const end = async (id: string, c: AgentClient) => {
    c.close();
    await provider.destroy(id);
    live.delete(id);
  };
  try {
    await provider.init();
    const warm = await start(); // image import / extraction, caches
    await run(warm.c);
    await end(warm.id, warm.c);
    const createFirstExec: number[] = [];
    for (let i = 0; i < creates; i++) {
      const t0 = performance.now();
      const b = await start();
      await run(b.c);
      createFirstExec.push(performance.now() - t0);
      await end(b.id, b.c);
    }
    const b = await start();
    for (let i = 0; i < 10; i++) await run(b.c);
    const rtt: number[] = [];
    for (let i = 0; i < execs; i++) {
      const t0 = performance.now();
      await run(b.c);
      rtt.push(performance.now() - t0);
    }
    await end(b.id, b.c);
    return { create_first_exec_p50_ms: pct(createFirstExec, 50), exec_p50_ms: pct(rtt, 50) };
  } finally {
    for (const id of live) await provider.destroy(id).catch(() => {});
    await provider.shutdown().catch(() => {});
    await stop();
    if ((await HostMounts.mountsUnder(dataDir)).length === 0) rmSync(dataDir, { recursive: true, force: true });
    else process.stderr.write(`[bench] mounts left under ${dataDir}: not removing it\n`);
  }
}

/** Every runtime this host has, in turn; those it lacks appear as `{ skipped: reason }`. */
export async function latencyByRuntime(creates: number, execs: number): Promise<Record<string, RuntimeLatency | { skipped: string }>> {
  const out: Record<string, RuntimeLatency | { skipped: string }> = {};
  for (const s of SUBJECTS) {
    if (s.skip) {
      out[s.name] = { skipped: s.skip };
      continue;
    }
    const m = await measure(s, creates, execs);
    process.stderr.write(`[bench] ${s.name}: create→first exec p50 ${m.create_first_exec_p50_ms} ms, exec p50 ${m.exec_p50_ms} ms\n`);
    out[s.name] = m;
  }
  const crun = out.crun as RuntimeLatency | undefined;
  if (crun && 'exec_p50_ms' in crun)
    for (const m of Object.values(out)) {
      if (!('exec_p50_ms' in m)) continue;
      m.create_ratio_to_crun = Number((m.create_first_exec_p50_ms / crun.create_first_exec_p50_ms).toFixed(2));
      m.exec_ratio_to_crun = Number((m.exec_p50_ms / crun.exec_p50_ms).toFixed(2));
    }
  return out;
}
