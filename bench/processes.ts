/**
 * npm run bench:processes — background processes and terminals through the whole stack
 * (HTTP → `scaibunker serve` → worker → crun → agent), with the blocking exec round trip of the
 * same run as the reference:
 * - background_start_p50_ms: `POST …/exec {background: true}` until its 202 (the process runs);
 * - pty_echo_p50_ms: one keystroke sent on a shell WebSocket until its echo comes back;
 * - replay_mb_s: reading 64 MiB of journaled output of an exec that ended, over SSE;
 * - exec_rtt_p50_ms: a blocking `true`, for reference.
 * Targets: pty_echo_p50_ms ≤ 3, background_start ≤ 1.5 × exec_rtt, replay_mb_s ≥ 200.
 * Last line: one JSON object.
 */
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { pct } from './percentile.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES ?? 300);
const REPLAY_BYTES = 64 * 1024 * 1024;
const API = '/v1/modules/scaibunker';

const data = tempDataDir();
const server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
try {
  const key = adminKeyOf(data.dir);
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });
  const b = await Bunker.create({ image: 'minimal', memory_mb: 256, disk_mb: 256 }, client);
  const post = (body: unknown) =>
    fetch(`${server.url}${API}/bunkers/${b.id}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  // Both kinds warmed up, then measured alternately so they see the same machine.
  for (let i = 0; i < 20; i++) {
    await (await post({ command: ['true'] })).json();
    await (await post({ command: ['true'], background: true })).json();
  }
  const rtt: number[] = [];
  const background: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    let t0 = performance.now();
    const r = await post({ command: ['true'] });
    await r.json();
    rtt.push(performance.now() - t0);
    t0 = performance.now();
    const s = await post({ command: ['true'], background: true });
    await s.json();
    if (s.status !== 202) throw new Error(`background start answered ${s.status}`);
    background.push(performance.now() - t0);
  }
  process.stderr.write(`[bench] exec rtt p50 ${pct(rtt, 50)} ms; background start p50 ${pct(background, 50)} ms\n`);

  // Keystroke → echo: `cat` in a terminal; the terminal echoes what is typed.
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}${API}/bunkers/${b.id}/shell?command=cat`, {
    headers: { authorization: `Bearer ${key}` },
  } as never);
  ws.binaryType = 'arraybuffer';
  let onOutput: ((text: string) => void) | null = null;
  ws.onmessage = (m) => {
    if (typeof m.data !== 'string') onOutput?.(Buffer.from(m.data as ArrayBuffer).toString('latin1'));
  };
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error('shell websocket failed'));
  });
  const echo: number[] = [];
  for (let i = 0; i < KEYSTROKES + 20; i++) {
    const ch = String.fromCharCode(97 + (i % 26));
    const seen = new Promise<void>((resolve) => {
      onOutput = (t) => {
        if (t.includes(ch)) resolve();
      };
    });
    const t0 = performance.now();
    ws.send(new TextEncoder().encode(ch));
    await seen;
    if (i >= 20) echo.push(performance.now() - t0);
  }
  ws.close();
  process.stderr.write(`[bench] pty echo p50 ${pct(echo, 50)} ms, p99 ${pct(echo, 99)} ms\n`);

  // 64 MiB journaled, then read back from the first chunk after the process ended.
  const flood = (await (await post({ command: `head -c ${REPLAY_BYTES} /dev/zero | tr '\\0' a`, background: true })).json()) as {
    exec_id: string;
  };
  const readAll = async (): Promise<{ bytes: number; ms: number }> => {
    const t0 = performance.now();
    const res = await fetch(`${server.url}${API}/bunkers/${b.id}/execs/${flood.exec_id}/events`, {
      headers: { authorization: `Bearer ${key}` },
    });
    let bytes = 0;
    let tail = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      tail = (tail + decoder.decode(chunk, { stream: true })).slice(-200);
      if (tail.includes('event: exit')) break;
    }
    return { bytes, ms: performance.now() - t0 };
  };
  await readAll(); // waits for the end (and warms the page cache the spill file is read from)
  const replay = await readAll();
  const replayMbS = Number((REPLAY_BYTES / 1e6 / (replay.ms / 1000)).toFixed(1));
  process.stderr.write(
    `[bench] replay of ${REPLAY_BYTES} bytes (${replay.bytes} on the wire): ${replay.ms.toFixed(0)} ms, ${replayMbS} MB/s\n`,
  );
  await b.terminate();

  const result = {
    background_start_p50_ms: pct(background, 50),
    exec_rtt_p50_ms: pct(rtt, 50),
    background_vs_exec: Number((pct(background, 50) / pct(rtt, 50)).toFixed(2)),
    pty_echo_p50_ms: pct(echo, 50),
    pty_echo_p99_ms: pct(echo, 99),
    replay_mb_s: replayMbS,
  };
  console.log(JSON.stringify(result));
} finally {
  await server.kill();
  data.remove();
}
