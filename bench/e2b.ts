/**
 * npm run bench:e2b — a sandbox's first command through the unmodified E2B SDK against
 * `scaibunker serve`, and the same through our own SDK, in one run, alternating:
 * - create_first_run_p50_ms (e2b): Sandbox.create('minimal') + commands.run('true');
 * - create_first_run_p50_ms (ours): Bunker.create({image: 'minimal'}) + exec('true').
 * Same resources both ways (128 MB). Target: e2b ≤ 1.2 × ours. Last line: one JSON object.
 */
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { Sandbox } from 'e2b';
import { adminKeyOf, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { pct } from './percentile.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 15);

const data = tempDataDir();
const server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
try {
  const key = adminKeyOf(data.dir);
  process.env.E2B_API_URL = server.url;
  process.env.E2B_SANDBOX_URL = server.url;
  process.env.E2B_API_KEY = key;
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });
  const e2b = async () => {
    const t0 = performance.now();
    const s = await Sandbox.create('minimal', { metadata: { 'scaibunker.memory_mb': '128' } });
    await s.commands.run('true');
    const ms = performance.now() - t0;
    await s.kill();
    return ms;
  };
  const ours = async () => {
    const t0 = performance.now();
    const b = await Bunker.create({ image: 'minimal', memory_mb: 128 }, client);
    await b.exec('true');
    const ms = performance.now() - t0;
    await b.terminate();
    return ms;
  };
  for (let i = 0; i < 3; i++) {
    await e2b();
    await ours();
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (i % 2 === 0) {
      a.push(await e2b());
      b.push(await ours());
    } else {
      b.push(await ours());
      a.push(await e2b());
    }
  }
  const e2bP50 = pct(a, 50);
  const oursP50 = pct(b, 50);
  console.log(
    JSON.stringify({
      e2b_create_first_run_p50_ms: e2bP50,
      scaibunker_create_first_run_p50_ms: oursP50,
      ratio: Math.round((e2bP50 / oursP50) * 100) / 100,
      target_ratio: 1.2,
      runs: RUNS,
    }),
  );
} finally {
  await server.kill();
  data.remove();
}
