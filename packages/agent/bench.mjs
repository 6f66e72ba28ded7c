#!/usr/bin/env node
// Agent micro-benchmark: exec round trip of `true` through the real TypeScript client,
// health round trip, stdout throughput, and the agent's RSS (idle / after load).
//
//   node --import tsx packages/agent/bench.mjs [iterations]
//
// The agent runs as an ordinary process (--no-init) on a temporary socket.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { AgentClient } from '../worker/src/agent/AgentClient.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = path.join(here, 'build/scaibunker-agent');
execFileSync('make', ['-C', here, '-s'], { stdio: 'inherit' });

const N = Number(process.argv[2] ?? 1000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-agent-bench-'));
const sock = path.join(dir, 'agent.sock');
const agent = spawn(bin, ['--listen', sock, '--no-init'], { stdio: 'inherit' });

const rss = () => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${agent.pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const ms = (x) => Number(x.toFixed(3));

try {
  const client = await AgentClient.connect(sock, { timeoutMs: 10_000 });
  await client.health();
  const rssIdleStart = rss();

  for (let i = 0; i < 50; i++) await client.exec({ argv: ['true'] }); // warm up

  const rtt = [];
  const inAgent = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    const r = await client.exec({ argv: ['true'] });
    rtt.push(performance.now() - t0);
    inAgent.push(r.durationMs);
  }

  const health = [];
  for (let i = 0; i < N; i++) {
    const t0 = performance.now();
    await client.health();
    health.push(performance.now() - t0);
  }

  // stdout throughput: 256 MiB of zeros through one exec
  const BYTES = 256 * 1024 * 1024;
  let got = 0;
  const t0 = performance.now();
  await client.exec(
    { argv: ['head', '-c', String(BYTES), '/dev/zero'] },
    {
      onStdout: (b) => {
        got += b.length;
      },
    },
  );
  const secs = (performance.now() - t0) / 1000;
  if (got !== BYTES) throw new Error(`short read: ${got}`);
  const rssAfterLoad = rss();

  // file write + read of 64 MiB
  const blob = Buffer.alloc(64 * 1024 * 1024, 7);
  const tw = performance.now();
  await client.writeFile(path.join(dir, 'blob'), blob);
  const writeSecs = (performance.now() - tw) / 1000;
  const tr = performance.now();
  let rd = 0;
  for await (const c of client.readFile(path.join(dir, 'blob'))) rd += c.length;
  const readSecs = (performance.now() - tr) / 1000;
  if (rd !== blob.length) throw new Error('short file read');

  await client.health();
  const rssIdleEnd = rss();

  const result = {
    iterations: N,
    exec_true_rtt_ms: { p50: ms(pct(rtt, 50)), p90: ms(pct(rtt, 90)), p99: ms(pct(rtt, 99)) },
    exec_true_spawn_to_reap_ms_p50: ms(pct(inAgent, 50)),
    exec_overhead_outside_child_ms_p50: ms(pct(rtt, 50) - pct(inAgent, 50)),
    health_rtt_ms: { p50: ms(pct(health, 50)), p90: ms(pct(health, 90)) },
    stdout_throughput_MiB_s: Math.round(BYTES / 1048576 / secs),
    write_file_MiB_s: Math.round(64 / writeSecs),
    read_file_MiB_s: Math.round(64 / readSecs),
    agent_rss_kib: {
      idle_at_start: rssIdleStart / 1024,
      after_load: rssAfterLoad / 1024,
      idle_after_load: rssIdleEnd / 1024,
    },
  };
  console.log(JSON.stringify(result, null, 2));
  client.close();
} finally {
  agent.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}
