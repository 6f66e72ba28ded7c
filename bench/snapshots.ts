/**
 * npm run bench:snapshots — snapshots through the whole stack (HTTP → `scaibunker serve` →
 * worker → crun → blob store), with plain `tar | zstd` of the same files in the same run as
 * the reference. A bunker gets 100 MB of fresh files (half random, half text), then:
 * - snapshot_100mb_s: the snapshot's row written until it is `ready`, by the server's timestamps
 *   (`snapshot_100mb_wall_s`: the client's `POST` until its poll sees `ready`);
 * - tar_zstd_100mb_s: `tar -cf - | zstd -3 > /dev/null` of the bunker's writable layer on the host;
 * - restore_first_exec_ms: `POST /bunkers {snapshot_id}` → the first exec's answer;
 * - fork10_s: `POST …/fork {count: 10}` until all ten run;
 * - passivate_s: `POST …/pause {passivate: true}` of a persistent bunker with the same files;
 * - resume_first_exec_ms: the first exec of that passivated `auto_resume` bunker (it resumes it).
 * The snapshot and the tar | zstd reference are medians of BENCH_RUNS (5) alternated runs.
 * Targets: snapshot_100mb_s ≤ 1.5 × tar_zstd_100mb_s, restore_first_exec_ms ≤ 1500, fork10_s ≤ 3.
 * Last line: one JSON object.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { pct } from './percentile.js';

const API = '/v1/modules/scaibunker';
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SIZE = { cpu_millicores: 1000, memory_mb: 512, disk_mb: 512 } as const;
const SHAPE = { image: 'minimal', ...SIZE } as const;
const FILL = [
  'mkdir -p /srv/data',
  'for i in 1 2 3 4 5; do head -c 10000000 /dev/urandom > /srv/data/random-$i.bin; done',
  'for i in 1 2 3 4 5; do seq 1 1500000 | head -c 10000000 > /srv/data/text-$i.txt; done',
].join(' && ');

const data = tempDataDir();
const server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
const made: Bunker[] = [];
const seconds = (ms: number) => Number((ms / 1000).toFixed(3));
try {
  const key = adminKeyOf(data.dir);
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${API}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const fill = async (b: Bunker) => {
    const r = await b.exec(FILL, { timeoutS: 300 });
    if (r.exit_code !== 0) throw new Error(`filling ${b.id}: ${r.stderr}`);
  };
  /**
   * Polls (every 50 ms: the API has no completion event; polling faster would take CPU from the
   * snapshot on this 2-core box) until the snapshot left `creating`.
   */
  const readyAfter = async (id: string) => {
    for (;;) {
      const s = await call('GET', `/snapshots/${id}`);
      if (s.state === 'ready') return s;
      if (s.state === 'failed') throw new Error(`snapshot ${id} failed: ${s.error}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  /** The server's own measure of a snapshot: its row written → ready (what polling cannot blur). */
  const serverMs = (s: { created_at: string; ready_at: string }) => Date.parse(s.ready_at) - Date.parse(s.created_at);

  const source = await Bunker.create(SHAPE, client);
  made.push(source);
  await fill(source);

  // The reference: plain tar | zstd of the same writable layer, on the host, alternated with
  // the snapshots so both see the same machine; medians of RUNS each.
  const upper = join(data.dir, 'worker', 'bunkers', source.id, 'upper', 'u');
  const tarZstd: number[] = [];
  const snapshots: number[] = [];
  const snapshotsWall: number[] = [];
  let snap: { id: string; size_bytes: number } | undefined;
  let t0 = 0;
  for (let i = 0; i < RUNS; i++) {
    t0 = performance.now();
    execFileSync('sh', ['-c', `tar -cf - -C '${upper}' . | zstd -3 -q > /dev/null`]);
    tarZstd.push(performance.now() - t0);
    t0 = performance.now();
    const ready = await readyAfter((await call('POST', `/bunkers/${source.id}/snapshots`, {})).id);
    snapshotsWall.push(performance.now() - t0);
    snapshots.push(serverMs(ready));
    snap = ready;
  }
  const tarZstdMs = pct(tarZstd, 50);
  const snapshotMs = pct(snapshots, 50);
  if (!snap) throw new Error('no snapshot');
  process.stderr.write(
    `[bench] tar | zstd of the 100 MB layer: ${tarZstd.map((x) => x.toFixed(0)).join(', ')} ms; snapshot (server: created → ready): ${snapshots.map((x) => x.toFixed(0)).join(', ')} ms, (client, 50 ms polls) ${snapshotsWall.map((x) => x.toFixed(0)).join(', ')} ms; ${snap.size_bytes} bytes stored\n`,
  );

  t0 = performance.now();
  const restored = await Bunker.create({ ...SIZE, snapshot_id: snap.id }, client);
  made.push(restored);
  await restored.exec(['true']);
  const restoreMs = performance.now() - t0;
  process.stderr.write(`[bench] restore → first exec: ${restoreMs.toFixed(0)} ms\n`);

  t0 = performance.now();
  const forks = await source.fork(10);
  made.push(...forks);
  const forkMs = performance.now() - t0;
  process.stderr.write(`[bench] fork ×10: ${forkMs.toFixed(0)} ms\n`);
  for (const f of forks.splice(0)) await f.terminate();

  const persistent = await Bunker.create({ ...SHAPE, lifecycle: 'persistent', auto_resume: true }, client);
  made.push(persistent);
  await fill(persistent);
  t0 = performance.now();
  await persistent.pause({ passivate: true });
  const passivateMs = performance.now() - t0;
  t0 = performance.now();
  await persistent.exec(['true']);
  const resumeMs = performance.now() - t0;
  process.stderr.write(`[bench] passivate: ${passivateMs.toFixed(0)} ms; resume → first exec: ${resumeMs.toFixed(0)} ms\n`);

  const result = {
    snapshot_100mb_s: seconds(snapshotMs),
    snapshot_100mb_wall_s: seconds(pct(snapshotsWall, 50)),
    tar_zstd_100mb_s: seconds(tarZstdMs),
    snapshot_vs_tar_zstd: Number((snapshotMs / tarZstdMs).toFixed(2)),
    snapshot_bytes: snap.size_bytes,
    restore_first_exec_ms: Math.round(restoreMs),
    fork10_s: seconds(forkMs),
    passivate_s: seconds(passivateMs),
    resume_first_exec_ms: Math.round(resumeMs),
  };
  console.log(JSON.stringify(result));
} finally {
  for (const b of made) await b.terminate().catch(() => undefined);
  await server.kill();
  data.remove();
}
