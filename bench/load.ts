/**
 * npm run bench:load — the scaled-out stack under load: two `scaibunker controller` processes on
 * one PostgreSQL database and one Redis, one `scaibunker worker`, all on this machine.
 *
 * 1. exec: 32 SDK clients (keep-alive; half on controller A, half on B), each with its own
 *    bunker, run `exec(['true'])` in a loop for BENCH_SECONDS (20). For reference, the same loop
 *    straight to the worker for BENCH_DIRECT_SECONDS (5): no controller, no database — the
 *    ceiling the worker, the agents and the machine allow. The two alternate in BENCH_SLICES (5)
 *    slices, so `exec_vs_direct_ratio` and `p99_vs_direct_ratio` compare like with like.
 * 2. churn: 8 clients create and terminate bunkers for BENCH_CHURN_SECONDS (10).
 * 3. quota: a profile capping concurrent bunkers at 10, 50 concurrent creates across both
 *    controllers; quota_overshoot = max(0, successes − 10); quota_counter_drift = |counter −
 *    active rows| while they run, plus the counter left once they are terminated (both must be 0).
 *
 * CPU per exec: the controllers' and the worker's CPU time (/proc/PID/stat) during each loop,
 * divided by the execs it ran (`controller_cpu_us_per_exec`: both controllers' time, as each exec
 * passes one of them); for both loops also this process's (the SDK or worker clients), the
 * PostgreSQL backends serving the cluster's database, and the whole machine's busy time (all
 * cores, whoever used them: on a shared machine, what the others ran too).
 *
 * Progress on stderr; the last stdout line is one JSON object.
 */
import { Bunker, type ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import { HttpWorkerClient } from '@scaibunker/worker';
import { Cluster, ensureTestServices, sqlQuery } from '../test/e2e/cluster.js';
import { type CpuGroup, ExecLoop } from './ExecLoop.js';
import { machineBusyUs, matchingProcessesCpuUs, processCpuUs } from './processCpu.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 32);
const CHURN_SECONDS = Number(process.env.BENCH_CHURN_SECONDS ?? 10);
const DIRECT_SECONDS = Number(process.env.BENCH_DIRECT_SECONDS ?? 5);
/** The direct and the controller loops alternate in this many slices each. */
const SLICES = Number(process.env.BENCH_SLICES ?? 5);
const CHURN_CLIENTS = Number(process.env.BENCH_CHURN_CLIENTS ?? 8);
const QUOTA_CAP = 10;
const QUOTA_CREATES = 50;
/** Small bunkers, so 32 of them fit the worker's CPU offer (2 cores × 8 overcommit). */
const SMALL = { image: 'minimal', cpu_millicores: 250, memory_mb: 64, disk_mb: 64 } as const;

const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);

/** Runs `fn(i)` for i < n, at most `limit` at a time. */
async function pool<T>(n: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, limit) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

ensureTestServices();
const cluster = await Cluster.start({ log });
// Interrupted: still stop every process and drop the database.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    cluster.close().finally(() => process.exit(130));
  });
}
try {
  const admin = cluster.client(0, cluster.adminKey);
  const tenant = await admin.admin.createTenant('bench');
  const { key } = await admin.admin.createApiKey(tenant.id, 'bench', ['scaibunker:admin:tenant']);
  const on = (i: number): ScaiBunkerClient => cluster.client(i % 2, key);

  // ---- exec throughput
  const clients = Array.from({ length: CLIENTS }, (_, i) => on(i));
  const bunkers = await pool(CLIENTS, 8, (i) => Bunker.create(SMALL, clients[i]));
  log(`${CLIENTS} bunkers running (${CLIENTS / 2} created through each controller)`);
  const warmUntil = Date.now() + 2000;
  await Promise.all(
    bunkers.map(async (b) => {
      while (Date.now() < warmUntil) await b.exec(['true']);
    }),
  );
  // Calibration: the same loop straight to the worker (its token, no controller, no database):
  // the ceiling the worker, the agents and this machine allow. The two loops alternate in
  // BENCH_SLICES slices, so a change of load on this shared machine hits both sides alike.
  const pidOf = (p: { child: { pid?: number | undefined } } | undefined): number => {
    if (!p?.child.pid) throw new Error('a cluster process has no pid');
    return p.child.pid;
  };
  const controllerPids = cluster.controllers.map(pidOf);
  const workerPid = pidOf(cluster.worker);
  const direct = new HttpWorkerClient(cluster.worker?.url ?? '', cluster.token);
  const dbName = new URL(cluster.db.url).pathname.slice(1);
  const groups: Record<string, CpuGroup> = {
    client: () => new Map([[process.pid, processCpuUs(process.pid)]]),
    // A backend's command line is `postgres: <cluster> <user> <database> <client> <state>`.
    postgres: () => matchingProcessesCpuUs(` ${dbName} `),
    machine: () => new Map([[0, machineBusyUs()]]),
  };
  const viaDirect = new ExecLoop(
    [workerPid],
    (b) => direct.exec(b.id, { argv: ['true'], env: {}, timeoutMs: 60_000 }, {}).then(() => undefined),
    undefined,
    groups,
  );
  const viaControllers = new ExecLoop(
    [...controllerPids, workerPid],
    async (b) => {
      const r = await b.exec(['true']);
      if (r.exit_code !== 0) throw new Error(`true exited ${r.exit_code}`);
    },
    undefined,
    groups,
  );
  for (let slice = 0; slice < SLICES; slice++) {
    await viaDirect.run(bunkers, DIRECT_SECONDS / SLICES);
    await viaControllers.run(bunkers, SECONDS / SLICES);
    log(`slice ${slice + 1}/${SLICES}: direct ${viaDirect.perS()}/s, through the controllers ${viaControllers.perS()}/s so far`);
  }
  direct.close();
  const directPerS = viaDirect.perS();
  const directP99 = viaDirect.pct(99);
  const directWorkerCpu = viaDirect.cpuUsPerExec(0);
  log(`worker direct (calibration, no controller): ${directPerS}/s, p50 ${viaDirect.pct(50)} ms, p99 ${directP99} ms`);
  const count = viaControllers.count;
  const errors = viaControllers.errors;
  const exec = { per_s: viaControllers.perS(), p50: viaControllers.pct(50), p99: viaControllers.pct(99) };
  const controllerCpu = viaControllers.cpuUsPerExec(0) + viaControllers.cpuUsPerExec(1);
  const workerCpu = viaControllers.cpuUsPerExec(2);
  log(`exec: ${count} in ${SECONDS} s = ${exec.per_s}/s, p50 ${exec.p50} ms, p99 ${exec.p99} ms, ${errors} errors`);
  log(`exec CPU: controllers ${controllerCpu} µs, worker ${workerCpu} µs per exec (worker direct: ${directWorkerCpu} µs)`);
  const cpu = (loop: ExecLoop, name: string) => loop.groupCpuUsPerExec(name);
  log(
    `exec CPU: client ${cpu(viaControllers, 'client')} µs, postgres ${cpu(viaControllers, 'postgres')} µs, machine ${cpu(viaControllers, 'machine')} µs per exec ` +
      `(direct: client ${cpu(viaDirect, 'client')} µs, postgres ${cpu(viaDirect, 'postgres')} µs, machine ${cpu(viaDirect, 'machine')} µs)`,
  );
  await pool(CLIENTS, 8, (i) => bunkers[i]!.terminate());

  // ---- create + terminate churn
  let creates = 0;
  let createErrors = 0;
  const c0 = performance.now();
  const churnDeadline = c0 + CHURN_SECONDS * 1000;
  await Promise.all(
    Array.from({ length: CHURN_CLIENTS }, async (_, i) => {
      const client = on(i);
      while (performance.now() < churnDeadline) {
        try {
          const b = await Bunker.create(SMALL, client);
          await b.terminate();
          creates++;
        } catch (err) {
          createErrors++;
          if (createErrors <= 5) log(`create failed: ${(err as Error).message}`);
        }
      }
    }),
  );
  const creates_per_s = Number((creates / ((performance.now() - c0) / 1000)).toFixed(1));
  log(`churn: ${creates} create+terminate in ${CHURN_SECONDS} s by ${CHURN_CLIENTS} clients = ${creates_per_s}/s, ${createErrors} errors`);

  // ---- quota: 50 concurrent creates against a cap of 10, across both controllers
  const tenantAdmin = on(0);
  const profile = await tenantAdmin.quotas.create({ name: 'bench-cap', max_bunkers: QUOTA_CAP });
  await tenantAdmin.quotas.assign(profile.id, 'user', 'bench-user');
  const { key: userKey } = await admin.admin.createApiKey(tenant.id, 'bench-user', ['scaibunker:create', 'scaibunker:read'], {
    user_id: 'bench-user',
  });
  const results = await Promise.allSettled(
    Array.from({ length: QUOTA_CREATES }, (_, i) => Bunker.create(SMALL, cluster.client(i % 2, userKey))),
  );
  const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const refused = results.filter(
    (r) => r.status === 'rejected' && r.reason instanceof ScaiBunkerError && r.reason.code === 'QUOTA_EXCEEDED',
  );
  const other = results.filter((r) => r.status === 'rejected' && !refused.includes(r));
  for (const r of other.slice(0, 3)) log(`quota phase: unexpected ${String((r as PromiseRejectedResult).reason)}`);
  const bucket = async () =>
    (await cluster.client(1, userKey).quotas.usage()).find((u) => u.bucket.kind === 'user')?.resources.bunkers.current ?? 0;
  const counted = await bucket();
  const [{ n: activeRows }] = (await sqlQuery<{ n: number }>(
    cluster.db.url,
    `SELECT count(*)::int AS n FROM bunkers WHERE tenant_id = $1 AND state IN ('pending','provisioning','running','paused','snapshotting') AND quota_charges IS NOT NULL`,
    [tenant.id],
  )) as [{ n: number }];
  const overshoot = Math.max(0, made.length - QUOTA_CAP);
  const drift = Math.abs(counted - activeRows);
  log(
    `quota: ${made.length} created, ${refused.length} QUOTA_EXCEEDED, ${other.length} other; counter ${counted}, active rows ${activeRows}`,
  );
  await Promise.all(made.map((b) => b.terminate()));
  const after = await bucket();
  log(`quota: after terminating, counter ${after}`);

  console.log(
    JSON.stringify({
      exec_per_s: exec.per_s,
      exec_p50_ms: exec.p50,
      exec_p99_ms: exec.p99,
      creates_per_s,
      quota_overshoot: overshoot,
      quota_counter_drift: drift + after,
      controllers: 2,
      clients: CLIENTS,
      exec_errors: errors,
      create_errors: createErrors,
      worker_direct_exec_per_s: directPerS,
      worker_direct_p99_ms: directP99,
      exec_vs_direct_ratio: Number((exec.per_s / directPerS).toFixed(2)),
      p99_vs_direct_ratio: Number((exec.p99 / directP99).toFixed(2)),
      controller_cpu_us_per_exec: controllerCpu,
      worker_cpu_us_per_exec: workerCpu,
      worker_direct_cpu_us_per_exec: directWorkerCpu,
      client_cpu_us_per_exec: cpu(viaControllers, 'client'),
      client_direct_cpu_us_per_exec: cpu(viaDirect, 'client'),
      postgres_cpu_us_per_exec: cpu(viaControllers, 'postgres'),
      // The database's background work (heartbeats, leases, activity) while no exec reaches it.
      postgres_direct_cpu_us_per_exec: cpu(viaDirect, 'postgres'),
      machine_cpu_us_per_exec: cpu(viaControllers, 'machine'),
      machine_direct_cpu_us_per_exec: cpu(viaDirect, 'machine'),
    }),
  );
} finally {
  const left = await cluster.close();
  if (left.orphans.length || left.mounts.length) log(`cleanup: ${left.orphans.length} orphaned bunkers, ${left.mounts.length} mounts left`);
}
