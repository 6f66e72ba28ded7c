/**
 * npm run bench:density — how many idle `minimal` bunkers one box holds, and what each costs.
 * `scaibunker serve --memory-overcommit` (memory is otherwise reserved at each bunker's limit),
 * then BENCH_BUNKERS (2000) bunkers created 8 at a time; host memory is read from
 * /proc/meminfo (MemTotal − MemAvailable) before and after. Prints `bunkers` (how many run),
 * `mb_per_bunker`, `create_p99_ms_at_8_concurrent` and `exec_all_s` (one `true` in every
 * bunker, 8 at a time). Target: 2,000 running, ≤ 1 MB each. Every bunker is terminated at
 * the end. Last line: one JSON object.
 */
import { readFileSync } from 'node:fs';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { pct } from './percentile.js';

const N = Number(process.env.BENCH_BUNKERS ?? 2000);
const CONCURRENCY = 8;
const SHAPE = { image: 'minimal', cpu_millicores: 100, memory_mb: 32, disk_mb: 16 } as const;

/** Host memory in use (MB): MemTotal − MemAvailable. */
function usedMb(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(info)?.[1] ?? Number.NaN);
  return (kb('MemTotal') - kb('MemAvailable')) / 1024;
}

/** Runs `fn` over `items`, `CONCURRENCY` at a time. */
async function pool<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

const data = tempDataDir();
const server = await ServerProcess.start([
  'serve',
  '--port',
  String(await freePort()),
  '--data-dir',
  data.dir,
  '--image-dir',
  IMAGE_DIR,
  '--memory-overcommit',
  '100',
  '--cpu-overcommit',
  '100',
]);
const bunkers: Bunker[] = [];
try {
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
  await (await Bunker.create(SHAPE, client)).terminate(); // the image mounted, caches warm
  await new Promise((r) => setTimeout(r, 1000)); // let the terminated one's memory go back
  const before = usedMb();
  const createMs: number[] = [];
  let refused = '';
  await pool(
    Array.from({ length: N }, (_, i) => i),
    async () => {
      if (refused) return;
      const t0 = performance.now();
      try {
        bunkers.push(await Bunker.create(SHAPE, client));
        createMs.push(performance.now() - t0);
      } catch (err) {
        refused ||= (err as Error).message;
      }
      if (bunkers.length % 250 === 0) process.stderr.write(`[bench] ${bunkers.length} bunkers, ${(usedMb() - before).toFixed(0)} MB\n`);
    },
  );
  if (refused) process.stderr.write(`[bench] stopped at ${bunkers.length}: ${refused}\n`);
  const after = usedMb();
  const t0 = performance.now();
  let failedExecs = 0;
  await pool(bunkers, async (b) => {
    const r = await b.exec(['true']).catch(() => undefined);
    if (r?.exit_code !== 0) failedExecs++;
  });
  const execAllS = (performance.now() - t0) / 1000;
  const result = {
    bunkers: bunkers.length,
    mb_per_bunker: Number(((after - before) / Math.max(1, bunkers.length)).toFixed(2)),
    create_p50_ms_at_8_concurrent: pct(createMs, 50),
    create_p99_ms_at_8_concurrent: pct(createMs, 99),
    exec_all_s: Number(execAllS.toFixed(2)),
    failed_execs: failedExecs,
    ...(refused ? { stopped_by: refused.slice(0, 200) } : {}),
  };
  process.stderr.write(`[bench] terminating ${bunkers.length} bunkers\n`);
  await pool([...bunkers], (b) => b.terminate().then(() => undefined));
  bunkers.length = 0;
  console.log(JSON.stringify(result));
} finally {
  await pool([...bunkers], (b) =>
    b.terminate().then(
      () => undefined,
      () => undefined,
    ),
  );
  await server.kill();
  data.remove();
}
