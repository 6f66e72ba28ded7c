/**
 * npm run bench:network — the worker's network plumbing measured on this machine, against the
 * fake internet of the e2e tests (a netns with its own DNS and web servers; nothing leaves the
 * machine). Bunkers here are bare network namespaces plumbed by WorkerNetwork exactly as a
 * container's would be; probes run inside them with `ip netns exec node`.
 *
 * - dns: BENCH_DNS_QUERIES (1000) sequential A queries for an allowed name from a `registry`
 *   bunker, through the worker's responder (which asks the fake upstream and fills the bunker's
 *   address set before answering): p50 / p99.
 * - connect_after_dns_failures: 200 distinct allowlisted names, each resolved and connected to at
 *   once (the address must be in the set when the answer arrives): failed connects.
 * - audit: BENCH_FLOWS (20000) short TCP connections from an `unrestricted` bunker (one source
 *   port each); once it is torn down, every flow must be recorded and sent as audit batches.
 * - shaped_mbit: a download through a 50 Mbit/s cap, for BENCH_SHAPE_SECONDS (4).
 * - teardown_leaks: kernel objects (netns, links, nft tables, qdiscs) left after teardown.
 *
 * Progress on stderr; the last stdout line is one JSON object. Needs root.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FLOWLOG_BINARY, WorkerNetwork } from '../packages/worker/src/network/WorkerNetwork.js';
import { runCommand } from '../packages/worker/src/providers/host/runCommand.js';
import type { BunkerSpec } from '../packages/worker/src/providers/Provider.js';
import { BENCH, FakeInternet, INET } from '../test/e2e/fakeInternet.js';
import { networkObjects } from '../test/e2e/kernelObjects.js';

const DNS_QUERIES = Number(process.env.BENCH_DNS_QUERIES ?? 1000);
const CONNECT_NAMES = 200;
const FLOWS = Number(process.env.BENCH_FLOWS ?? 20_000);
const SHAPE_MBIT = 50;
const SHAPE_SECONDS = Number(process.env.BENCH_SHAPE_SECONDS ?? 4);
const PREFIX = 'sbb';
const SUBNET = '10.217.0.0/24';
const ROOT = new URL('..', import.meta.url).pathname;

const log = (m: string) => process.stderr.write(`[bench] ${m}\n`);

function pct(sorted: number[], p: number): number {
  return Number((sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN).toFixed(3));
}

/** Runs a node script inside a netns (able to require the repository's dns-packet); its stdout, parsed. */
async function inNetns<T>(netns: string, script: string, arg: unknown): Promise<T> {
  const r = await runCommand('ip', ['netns', 'exec', netns, process.execPath, '-e', script, JSON.stringify(arg)], {
    env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') },
  });
  if (r.code !== 0) throw new Error(`probe in ${netns} failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as T;
}

const DNS_LATENCY = `
const dgram = require('node:dgram'); const packet = require('dns-packet');
const { server, name, count } = JSON.parse(process.argv[1]);
const s = dgram.createSocket('udp4'); const times = []; let id = 0; let t0 = 0;
const ask = () => { t0 = process.hrtime.bigint(); s.send(packet.encode({ type: 'query', id: ++id % 65536, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), 53, server); };
s.on('message', (m) => {
  const r = packet.decode(m); if (r.id !== id % 65536) return;
  if (r.rcode !== 'NOERROR' || !r.answers.length) { console.error('bad answer', r.rcode); process.exit(1); }
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (times.length === count) { process.stdout.write(JSON.stringify(times)); process.exit(0); } else ask();
});
s.bind(0, ask);
`;

const RESOLVE_THEN_CONNECT = `
const dgram = require('node:dgram'); const net = require('node:net'); const packet = require('dns-packet');
const { server, names, port } = JSON.parse(process.argv[1]);
const s = dgram.createSocket('udp4'); let failures = 0; const reasons = [];
const resolve = (name, id) => new Promise((ok, fail) => {
  const onMsg = (m) => { const r = packet.decode(m); if (r.id !== id) return; s.off('message', onMsg);
    const a = r.answers.find((x) => x.type === 'A'); a ? ok(a.data) : fail(new Error(name + ': ' + r.rcode)); };
  s.on('message', onMsg);
  s.send(packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), 53, server);
});
const connect = (host) => new Promise((ok) => {
  const c = net.connect({ host, port, timeout: 2000 });
  c.on('connect', () => { c.destroy(); ok(true); }); c.on('timeout', () => { c.destroy(); ok('timeout'); }); c.on('error', (e) => ok(e.code));
});
s.bind(0, async () => {
  for (let i = 0; i < names.length; i++) {
    try { const addr = await resolve(names[i], i + 1); const r = await connect(addr); if (r !== true) { failures++; reasons.push(names[i] + ' ' + r); } }
    catch (e) { failures++; reasons.push(String(e.message)); }
  }
  process.stdout.write(JSON.stringify({ failures, reasons: reasons.slice(0, 5) })); process.exit(0);
});
`;

const SHORT_FLOWS = `
const net = require('node:net');
const { host, port, count, firstPort, parallel } = JSON.parse(process.argv[1]);
let next = 0; let done = 0; let failed = 0; const t0 = Date.now();
const one = () => new Promise((ok) => {
  const i = next++; const c = net.connect({ host, port, localPort: firstPort + i });
  c.on('connect', () => c.end('GET / HTTP/1.0\\r\\n\\r\\n')); c.on('data', () => {}); c.on('close', () => ok()); c.on('error', () => { failed++; ok(); });
});
const worker = async () => { while (next < count) { await one(); done++; } };
Promise.all(Array.from({ length: parallel }, worker)).then(() => { process.stdout.write(JSON.stringify({ done, failed, ms: Date.now() - t0 })); process.exit(0); });
`;

const DOWNLOAD = `
const http = require('node:http');
const { host, port, seconds } = JSON.parse(process.argv[1]);
let bytes = 0; const t0 = process.hrtime.bigint(); let warm = null; let warmBytes = 0;
const req = http.get({ host, port, path: '/big?n=' + 4e9 }, (res) => {
  res.on('data', (d) => { bytes += d.length; const t = Number(process.hrtime.bigint() - t0) / 1e9;
    if (warm === null && t > 0.5) { warm = t; warmBytes = bytes; } // past the token bucket's burst
    if (t > seconds) { const mbit = ((bytes - warmBytes) * 8) / ((t - warm) * 1e6); process.stdout.write(JSON.stringify({ mbit })); process.exit(0); } });
});
req.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

function spec(id: string, networkProfile: BunkerSpec['networkProfile'], extra: Partial<BunkerSpec> = {}): BunkerSpec {
  return {
    id,
    networkProfile,
    imageSha256: '0'.repeat(64),
    imagePath: '',
    cpuMillicores: 1000,
    memoryMb: 64,
    diskMb: 64,
    hostname: id,
    ...extra,
  } as BunkerSpec;
}

if (process.getuid?.() !== 0) throw new Error('bench:network needs root (netns, nft, tc)');
const dataDir = mkdtempSync(join(tmpdir(), 'sb-bench-net-'));
const inet = await FakeInternet.start(CONNECT_NAMES);
let audited = 0;
const network = await WorkerNetwork.open({
  dataDir,
  subnet: SUBNET,
  namePrefix: PREFIX,
  dnsUpstream: { host: INET.dns, port: 53 },
  flowAudit: {
    binary: FLOWLOG_BINARY,
    sink: async (_id, _name, ndjson) => {
      audited += ndjson
        .toString()
        .split('\n')
        .filter((l) => l.includes(`"dst":"${INET.unnamed}"`)).length;
    },
  },
  log,
});
const attached: string[] = [];
const attach = async (s: BunkerSpec) => {
  const net = await network.attach(s);
  attached.push(s.id);
  return net.netnsPath.split('/').pop() as string;
};
try {
  // ---- DNS through the responder
  const registry = await attach(spec('bench-registry', 'registry'));
  const times = (await inNetns<number[]>(registry, DNS_LATENCY, { server: '198.51.100.53', name: 'pypi.org', count: DNS_QUERIES })).sort(
    (a, b) => a - b,
  );
  const dns = { p50: pct(times, 50), p99: pct(times, 99) };
  log(`dns: ${DNS_QUERIES} queries through the responder: p50 ${dns.p50} ms, p99 ${dns.p99} ms`);

  // ---- resolve, then connect at once
  const allow = await attach(spec('bench-allowlisted', 'allowlisted', { networkAllowlist: ['*.bench.example'] }));
  const names = Array.from({ length: CONNECT_NAMES }, (_, i) => BENCH.name(i + 1));
  const connects = await inNetns<{ failures: number; reasons: string[] }>(allow, RESOLVE_THEN_CONNECT, {
    server: '198.51.100.53',
    names,
    port: BENCH.port,
  });
  log(`connect right after DNS: ${connects.failures} of ${CONNECT_NAMES} failed ${connects.reasons.join('; ')}`);

  // ---- flow audit
  const unrestricted = await attach(spec('bench-unrestricted', 'unrestricted'));
  const flows = await inNetns<{ done: number; failed: number; ms: number }>(unrestricted, SHORT_FLOWS, {
    host: INET.unnamed,
    port: 80,
    count: FLOWS,
    firstPort: 20_000,
    parallel: 32,
  });
  log(`audit: ${flows.done} short flows in ${flows.ms} ms (${flows.failed} failed); tearing the bunker down reports them`);
  await network.detach('bench-unrestricted');
  attached.splice(attached.indexOf('bench-unrestricted'), 1);
  const deadline = Date.now() + 120_000;
  let stats = network.auditStats();
  while (Date.now() < deadline) {
    stats = network.auditStats();
    if (audited >= flows.done && stats && stats.pending === 0) break;
    await new Promise((r) => setTimeout(r, 200)); // conntrack reports asynchronously: there is no event to await here
  }
  log(`audit: ${audited} of the bench flows sent; auditor ${JSON.stringify(stats)}`);

  // ---- shaping
  const shaped = await attach(spec('bench-shaped', 'unrestricted', { bandwidthMbit: SHAPE_MBIT }));
  const { mbit } = await inNetns<{ mbit: number }>(shaped, DOWNLOAD, { host: INET.unnamed, port: 80, seconds: SHAPE_SECONDS });
  log(`shaping: ${mbit.toFixed(1)} Mbit/s through a ${SHAPE_MBIT} Mbit/s cap`);

  // ---- teardown
  for (const id of attached.splice(0)) await network.detach(id);
  const leaks = await networkObjects(PREFIX);
  if (leaks.length) log(`left behind: ${leaks.join(', ')}`);

  console.log(
    JSON.stringify({
      dns_p50_ms: dns.p50,
      dns_p99_ms: dns.p99,
      connect_after_dns_failures: connects.failures,
      audit_flows_made: flows.done,
      audit_flows_recorded: stats?.recorded ?? 0,
      audit_flows_sent: stats?.sent ?? 0,
      audit_bench_flows_in_batches: audited,
      audit_flows_lost: stats?.lost ?? 0,
      shaped_mbit: Number(mbit.toFixed(1)),
      shape_cap_mbit: SHAPE_MBIT,
      teardown_leaks: leaks.length,
    }),
  );
} finally {
  for (const id of attached) await network.detach(id).catch(() => undefined);
  await network.close();
  await inet.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
