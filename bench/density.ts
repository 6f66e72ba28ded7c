/**
 * npm run bench:density — how many idle `minimal` bunkers one box holds, and what each costs.
 * `scaibunker serve --memory-overcommit` (memory is otherwise reserved at each bunker's limit),
 * then BENCH_BUNKERS (2000) bunkers created 8 at a time. Prints `bunkers` (how many run),
 * `mb_per_bunker`, `create_p99_ms_at_8_concurrent` and `exec_all_s` (one `true` in every
 * bunker, 8 at a time). Target: 2,000 running, ≤ 1 MB each. The cost is measured once the
 * bunkers have sat idle BENCH_SETTLE_S (15) seconds — what a box of idle bunkers pays, after the
 * agents' and the server's idle trims — and `mb_per_bunker_at_burst_end` is the same total
 * right after the last create. The baseline is taken likewise, BENCH_SETTLE_S after a warm-up of
 * BENCH_WARMUP (64) bunkers created and terminated; `server_heap_releases_warmup` and
 * `server_heap_releases` say whether the server gave back an idle heap after each (see
 * IdleHeapRelease). Every bunker is terminated at the end. Last line: one JSON object.
 *
 * `mb_per_bunker` counts everything an idle bunker costs the host, from MemoryCharge:
 *   `bunker_cgroup_kb`  unreclaimable memory charged to the bunker's own cgroup: the agent's
 *                       pages (`agent_anon_kb`), its page tables, kernel stack and the kernel
 *                       objects it made (mounts, sockets), tmpfs pages; `bunker_kernel_kb`
 *                       is the kernel part;
 *   `server_cgroup_kb`  growth of the cgroup the server runs in: worker and controller JS
 *                       state, the helper shell, and what the runtime made for the bunker
 *                       from there (namespaces, the overlay and disk mounts, cgroup dirs;
 *                       `server_kernel_kb` is that kernel part); on cgroup v1 a cgroup of
 *                       the server's own (ServerCgroup), elsewhere shared with the bench
 *                       process, whose client objects then count too (`server_cgroup_alone`);
 *   `parent_cgroup_kb`  what the bunkers' parent cgroup is charged for them (per-CPU memcg data);
 *   `uncharged_kernel_kb` growth of the host's kernel memory that no cgroup above was charged
 *                       for — host-wide, so others' work adds noise. Most of it is the slot
 *                       every memory cgroup keeps for every superblock's shrinker (1 KiB per
 *                       64 superblocks, never shrunk below the host's peak superblock count):
 *                       it grows with bunkers × superblocks per bunker, so the figure at 2,000
 *                       is above the one at 300, and a host that once ran more is dearer.
 * `memcg_shrinker_kb_before` / `_after`: what one new memory cgroup takes for those slots
 *                       before the bunkers and with all of them running (MemoryCharge.
 *                       shrinkerUnitsKb; × 64 is the host's peak superblock count). Most of
 *                       `uncharged_kernel_kb` is this; when `before` already equals `after`,
 *                       an earlier peak (another run, more mounts per bunker) sets it, not
 *                       this run's superblocks.
 * `host_mb_per_bunker` is MemTotal − MemAvailable before and after, the bench's first figure:
 * on a shared box it moves by hundreds of MB with everyone else's work.
 */
import { readFileSync } from 'node:fs';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { type Charged, MemoryCharge } from './memoryCharge.js';
import { pct } from './percentile.js';
import { ServerCgroup } from './serverCgroup.js';

const N = Number(process.env.BENCH_BUNKERS ?? 2000);
const CONCURRENCY = 8;
/** Seconds the bunkers (and the server after the warm-up) sit idle before they are measured. */
const SETTLE_S = Number(process.env.BENCH_SETTLE_S ?? 15);
/** Bunkers created and terminated before the baseline. */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 64);
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
const charge = new MemoryCharge();
const port = await freePort();
const { cgroup: serverCgroup, started: server } = await ServerCgroup.start(charge, () =>
  ServerProcess.start([
    'serve',
    '--port',
    String(port),
    '--data-dir',
    data.dir,
    '--image-dir',
    IMAGE_DIR,
    '--memory-overcommit',
    '100',
    '--cpu-overcommit',
    '100',
  ]),
);
const bunkers: Bunker[] = [];
/** What is charged for everything: the server's cgroup, the bunkers' parent's own charge, each of `ids`' cgroup. */
function snapshot(ids: string[]): { server: Charged; parent: Charged; bunkers: Charged; hostKernelKb: number } {
  const bunkersCharged: Charged = { unreclaimable: 0, kernel: 0, anon: 0 };
  for (const id of ids) {
    const dir = charge.dirOf(`/scaibunker/${id}`);
    const c = charge.charged(dir);
    if (!c) throw new Error(`bunker ${id} has no memory cgroup at ${dir}`);
    bunkersCharged.unreclaimable += c.unreclaimable;
    bunkersCharged.kernel += c.kernel;
    bunkersCharged.anon += c.anon;
  }
  const serverDir = charge.cgroupOf(server.child.pid as number);
  const serverCharged = charge.charged(serverDir);
  if (!serverCharged) throw new Error(`cannot read the server's memory cgroup ${serverDir}`);
  return {
    server: serverCharged,
    parent: charge.ownCharge(charge.dirOf('/scaibunker')),
    bunkers: bunkersCharged,
    hostKernelKb: charge.hostKernelKb(),
  };
}
try {
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
  // A warm-up burst, created and terminated: the image mounted, caches warm, and the server's
  // heap grown by a burst and then, idle, given back (as it is after the bunkers' burst), so
  // the baseline and the measure are alike.
  const warm: Bunker[] = [];
  await pool(
    Array.from({ length: WARMUP }, (_, i) => i),
    async () => {
      warm.push(await Bunker.create(SHAPE, client));
    },
  );
  await pool(warm, (b) => b.terminate().then(() => undefined));
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const heapReleasesBefore = server.output().match(/released an idle heap/g)?.length ?? 0;
  const shrinkerUnitsBefore = charge.shrinkerUnitsKb();
  const before = usedMb();
  const chargedBefore = snapshot([]);
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
  const chargedAtBurstEnd = snapshot(bunkers.map((b) => b.id));
  // Idle: the agents trim after 1 s of quiet, the server gives back the heap the burst grew at
  // its first quiet look (IdleHeapRelease, every 5 s). No event says both are done.
  process.stderr.write(`[bench] ${SETTLE_S} s idle\n`);
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  const after = usedMb();
  const chargedAfter = snapshot(bunkers.map((b) => b.id));
  /** How often the server had given back an idle heap by then (IdleHeapRelease's log line). */
  const heapReleases = server.output().match(/released an idle heap/g)?.length ?? 0;
  const shrinkerUnitsAfter = charge.shrinkerUnitsKb();
  const t0 = performance.now();
  let failedExecs = 0;
  await pool(bunkers, async (b) => {
    const r = await b.exec(['true']).catch(() => undefined);
    if (r?.exit_code !== 0) failedExecs++;
  });
  const execAllS = (performance.now() - t0) / 1000;
  const n = Math.max(1, bunkers.length);
  const perBunkerKb = (kb: number) => Number((kb / n).toFixed(1));
  const delta = (pick: (x: ReturnType<typeof snapshot>) => number, at = chargedAfter) => pick(at) - pick(chargedBefore);
  /** KiB all the bunkers cost at `at`: their cgroups, the server's and the parent's growth, uncharged kernel memory. */
  const costKb = (at: ReturnType<typeof snapshot>) => {
    const charged = delta((x) => x.server.unreclaimable + x.parent.unreclaimable + x.bunkers.unreclaimable, at);
    const chargedKernel = delta((x) => x.server.kernel + x.parent.kernel + x.bunkers.kernel, at);
    return charged + Math.max(0, delta((x) => x.hostKernelKb, at) - chargedKernel);
  };
  const serverKb = delta((x) => x.server.unreclaimable);
  const parentKb = delta((x) => x.parent.unreclaimable);
  const bunkerKb = delta((x) => x.bunkers.unreclaimable);
  const chargedKernelKb = delta((x) => x.server.kernel + x.parent.kernel + x.bunkers.kernel);
  const unchargedKernelKb = Math.max(0, delta((x) => x.hostKernelKb) - chargedKernelKb);
  const result = {
    bunkers: bunkers.length,
    mb_per_bunker: Number((costKb(chargedAfter) / 1024 / n).toFixed(3)),
    mb_per_bunker_at_burst_end: Number((costKb(chargedAtBurstEnd) / 1024 / n).toFixed(3)),
    server_heap_releases_warmup: heapReleasesBefore,
    server_heap_releases: heapReleases - heapReleasesBefore,
    bunker_cgroup_kb: perBunkerKb(bunkerKb),
    agent_anon_kb: perBunkerKb(delta((x) => x.bunkers.anon)),
    bunker_kernel_kb: perBunkerKb(delta((x) => x.bunkers.kernel)),
    server_cgroup_kb: perBunkerKb(serverKb),
    server_kernel_kb: perBunkerKb(delta((x) => x.server.kernel)),
    server_cgroup_alone: serverCgroup !== undefined,
    parent_cgroup_kb: perBunkerKb(parentKb),
    uncharged_kernel_kb: perBunkerKb(unchargedKernelKb),
    memcg_shrinker_kb_before: Math.round(shrinkerUnitsBefore),
    memcg_shrinker_kb_after: Math.round(shrinkerUnitsAfter),
    host_mb_per_bunker: Number(((after - before) / n).toFixed(2)),
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
  serverCgroup?.remove();
  data.remove();
}
