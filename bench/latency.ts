/**
 * npm run bench:latency — create → first exec and exec round trip through the whole stack
 * (SDK → `scaibunker serve` → worker → crun → agent), against the bare OCI runtime starting the
 * same rootfs and running `true`, measured in the same run (the two alternate), with
 * `phases_p50_ms`: where create → first exec spends its time (the server runs with
 * SCAIBUNKER_TRACE_SPAWN=1 and writes its phase marks to stderr; see bench/phaseBreakdown.ts);
 * then `by_runtime`: the same two numbers at the provider level for crun, runc, docker (a
 * private dockerd) and proot, with ratios against crun (bench/byRuntime.ts). Last line: one
 * JSON object.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PhaseTrace } from '@scaibunker/core';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { bareRuntimeRun } from '../packages/worker/src/providers/container/bareRun.js';
import { adminKeyOf, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { latencyByRuntime } from './byRuntime.js';
import { pct } from './percentile.js';
import { type Mark, medianPhases, phasesOf, traceMarks } from './phaseBreakdown.js';

const CREATES = Number(process.env.BENCH_CREATES ?? 50);
const EXECS = Number(process.env.BENCH_EXECS ?? 500);
const RUNTIME_CREATES = Number(process.env.BENCH_RUNTIME_CREATES ?? 20);
const RUNTIME_EXECS = Number(process.env.BENCH_RUNTIME_EXECS ?? 200);

const data = tempDataDir();
const server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR], {
  SCAIBUNKER_TRACE_SPAWN: '1',
});
try {
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });

  // Warm-up: the first bunker mounts the image and warms caches.
  await (await Bunker.create({ image: 'minimal' }, client)).terminate();

  const catalog = JSON.parse(readFileSync(join(IMAGE_DIR, 'catalog.json'), 'utf8')) as Array<{ name: string; file: string }>;
  const minimal = catalog.find((c) => c.name === 'minimal');
  if (!minimal) throw new Error('no minimal image in the catalog');

  // Each bare run is followed by one create → first exec: the two alternate, so a load change on
  // this shared machine hits both sides of the ratio alike.
  const createFirstExec: number[] = [];
  const clientMarks = new Map<string, Mark[]>();
  const bare = await bareRuntimeRun({
    imagePath: join(IMAGE_DIR, minimal.file),
    runs: CREATES,
    config: 'bunker',
    between: async () => {
      const t0 = PhaseTrace.now();
      const b = await Bunker.create({ image: 'minimal' }, client);
      const t1 = PhaseTrace.now();
      const r = await b.exec(['true']);
      const t2 = PhaseTrace.now();
      createFirstExec.push(t2 - t0);
      clientMarks.set(b.id, [
        ['client.sent', t0],
        ['client.created', t1],
        ['client.exec-answered', t2],
      ]);
      if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
      await b.terminate();
    },
  });
  process.stderr.write(`[bench] ${CREATES} create→first exec: p50 ${pct(createFirstExec, 50)} ms, p99 ${pct(createFirstExec, 99)} ms\n`);
  const serverMarks = traceMarks(server.output());
  const phases = medianPhases([...clientMarks].map(([id, marks]) => phasesOf([...marks, ...(serverMarks.get(id) ?? [])])));
  process.stderr.write('[bench] create → first exec, median of each phase (ms):\n');
  for (const [name, ms] of Object.entries(phases)) process.stderr.write(`[bench]   ${ms.toFixed(2).padStart(7)}  ${name}\n`);

  const b = await Bunker.create({ image: 'minimal' }, client);
  for (let i = 0; i < 20; i++) await b.exec(['true']);
  const rtt: number[] = [];
  for (let i = 0; i < EXECS; i++) {
    const t0 = performance.now();
    await b.exec(['true']);
    rtt.push(performance.now() - t0);
  }
  await b.terminate();
  process.stderr.write(`[bench] ${EXECS} exec round trips: p50 ${pct(rtt, 50)} ms, p99 ${pct(rtt, 99)} ms\n`);

  process.stderr.write(`[bench] bare ${bare.runtime} run /bin/true on the same rootfs: p50 ${bare.p50Ms.toFixed(2)} ms\n`);

  const byRuntime = await latencyByRuntime(RUNTIME_CREATES, RUNTIME_EXECS);

  const result = {
    create_first_exec_p50_ms: pct(createFirstExec, 50),
    create_first_exec_p99_ms: pct(createFirstExec, 99),
    exec_rtt_p50_ms: pct(rtt, 50),
    exec_rtt_p99_ms: pct(rtt, 99),
    bare_p50_ms: Number(bare.p50Ms.toFixed(2)),
    ratio: Number((pct(createFirstExec, 50) / bare.p50Ms).toFixed(2)),
    by_runtime: byRuntime,
    phases_p50_ms: phases,
  };
  console.log(JSON.stringify(result));
} finally {
  await server.kill();
  data.remove();
}
