/**
 * npm run bench:ports — a web server inside a bunker (`python3 -m http.server` on 127.0.0.1),
 * read through the controller's path proxy (HTTP → controller → worker → agent tunnel) against
 * the same server read from inside the bunker over loopback, in the same run, by the same client
 * (python's urllib, 1 MiB reads, timed by itself): on the host through the proxy, inside the
 * bunker directly. So the ratio compares the paths, not two clients.
 * - proxy_mb_s: a 256 MB file through the proxy;
 * - direct_loopback_mb_s: the same file read by that client inside the bunker;
 * (both the best of BENCH_ROUNDS alternating rounds, default 3);
 * - proxy_node_client_mb_s: the proxy read by node:http in this process instead (best of the
 *   rounds): what the figure was before, when the client alone (~1.5 s of CPU per GB on 2
 *   shared cores) capped it;
 * - proxy_rtt_p50_ms: a small GET through the proxy;
 * - proxy_server_cpu_s_per_gb: CPU seconds the serve process spent per GB relayed (best round
 *   of the python client's): unlike the rates, hardly moved by whatever else shares the host.
 * Target: proxy_mb_s ≥ 0.5 × direct_loopback_mb_s. Last line: one JSON object.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { promisify } from 'node:util';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, eventually, freePort, IMAGE_DIR, ServerProcess, tempDataDir } from '../test/e2e/harness.js';
import { pct } from './percentile.js';

const BYTES = 256 * 1000 * 1000;
const RTTS = Number(process.env.BENCH_RTTS ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const API = '/v1/modules/scaibunker';

/** CPU seconds the `serve` process (controller and worker) has used: what relaying costs, whatever else the host runs. */
function serverCpuS(): number {
  const stat = readFileSync(`/proc/${server.child.pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

const data = tempDataDir();
const server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
try {
  const key = adminKeyOf(data.dir);
  const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });
  const b = await Bunker.create({ image: 'python', memory_mb: 512, disk_mb: 1024 }, client);
  await b.exec(['sh', '-c', `mkdir -p /srv && echo hi > /srv/small.txt && head -c ${BYTES} /dev/zero > /srv/big.bin`]);
  await b.processes.start(['python3', '-m', 'http.server', '8000', '--bind', '127.0.0.1', '--directory', '/srv'], { tag: 'bench' });
  const url = (path: string) => `${server.url}${API}/bunkers/${b.id}/ports/8000${path}`;
  const auth = { authorization: `Bearer ${key}` };
  await eventually('the server answers', async () =>
    (await fetch(url('/small.txt'), { headers: auth })).status === 200 ? true : undefined,
  );

  /** The client, both sides: argv[1] the URL, argv[2] an Authorization header or ''; prints bytes and seconds. */
  const reader = [
    'import sys, time, urllib.request',
    't = time.perf_counter()',
    "r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={'Authorization': sys.argv[2]} if sys.argv[2] else {}))",
    'n = 0',
    'while True:',
    '    c = r.read(1 << 20)',
    '    if not c: break',
    '    n += len(c)',
    'print(n, time.perf_counter() - t)',
  ].join('\n');
  const rate = (where: string, out: { stdout: string; stderr: string }): number => {
    const [bytes, s] = out.stdout.trim().split(' ').map(Number) as [number, number];
    if (bytes !== BYTES) throw new Error(`${where} read ${bytes} bytes: ${out.stderr}`);
    return BYTES / 1e6 / s;
  };
  // Inside the bunker: the same file over loopback.
  const direct = async (): Promise<number> => rate('inside', await b.exec(['python3', '-c', reader, 'http://127.0.0.1:8000/big.bin', '']));
  // The same client on the host, through the proxy; the serve process's CPU meanwhile.
  const proxied = async (): Promise<number> => {
    const cpu0 = serverCpuS();
    const out = await promisify(execFile)('python3', ['-c', reader, url('/big.bin'), auth.authorization]);
    cpuPerGb.push((serverCpuS() - cpu0) / (BYTES / 1e9));
    return rate('proxy', out);
  };
  // Through the proxy with node:http in this process, counting bytes as they arrive.
  const proxiedNode = async (): Promise<number> => {
    const t0 = performance.now();
    const got = await new Promise<number>((resolve, reject) => {
      http
        .get(url('/big.bin'), { headers: auth }, (res) => {
          let n = 0;
          res.on('data', (chunk: Buffer) => (n += chunk.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    if (got !== BYTES) throw new Error(`proxy read ${got} bytes`);
    return BYTES / 1e6 / ((performance.now() - t0) / 1000);
  };
  // Alternating rounds, best of each: the host is shared, and a round that lost the CPU to
  // something else says nothing about either path.
  const cpuPerGb: number[] = [];
  const directs: number[] = [];
  const proxies: number[] = [];
  const nodeProxies: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    directs.push(await direct());
    proxies.push(await proxied());
    nodeProxies.push(await proxiedNode());
  }
  const directMbS = Math.max(...directs);
  const proxyMbS = Math.max(...proxies);
  const mbs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
  process.stderr.write(
    `[bench] rounds: direct ${mbs(directs)}; proxy ${mbs(proxies)}; proxy, node:http client ${mbs(nodeProxies)} MB/s; serve ${cpuPerGb.map((x) => x.toFixed(2)).join(' ')} s/GB\n`,
  );

  const rtt: number[] = [];
  for (let i = 0; i < RTTS + 10; i++) {
    const t0 = performance.now();
    const r = await fetch(url('/small.txt'), { headers: auth });
    await r.text();
    if (i >= 10) rtt.push(performance.now() - t0);
  }
  await b.terminate();
  process.stderr.write(`[bench] direct ${directMbS.toFixed(1)} MB/s, proxy ${proxyMbS.toFixed(1)} MB/s, rtt p50 ${pct(rtt, 50)} ms\n`);
  console.log(
    JSON.stringify({
      proxy_mb_s: Number(proxyMbS.toFixed(1)),
      direct_loopback_mb_s: Number(directMbS.toFixed(1)),
      ratio: Number((proxyMbS / directMbS).toFixed(2)),
      proxy_node_client_mb_s: Number(Math.max(...nodeProxies).toFixed(1)),
      proxy_rtt_p50_ms: pct(rtt, 50),
      proxy_server_cpu_s_per_gb: Number(Math.min(...cpuPerGb).toFixed(2)),
    }),
  );
} finally {
  await server.kill();
  data.remove();
}
