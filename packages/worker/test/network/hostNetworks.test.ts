/**
 * BunkerNetworks against the real kernel: netns, veths, nft tables and shapers on this machine.
 *
 *   node --import tsx --test packages/worker/test/network/hostNetworks.test.ts
 *
 * Needs root. A fake "internet" is a netns (`sbnhinet`) behind a veth from the root namespace,
 * with web servers on 198.18.1.x and stand-ins for private destinations (10.99.0.10,
 * 192.168.77.10) and a protected address (198.18.1.30); the root namespace routes only those
 * prefixes there, and every probe targets them, so no test packet can leave the machine. The
 * worker side is played by this process: a "worker API" TCP listener and a DNS stand-in on
 * 0.0.0.0:<dnsPort> that answers with a marker, proving where a bunker's :53 traffic lands.
 *
 * Probes run inside a bunker's netns as one short node process each (PROBE below), all in
 * parallel with a 1.5 s bound, and report ok/data or the errno: a reject shows up as
 * ECONNREFUSED (tcp reset) or EHOSTUNREACH (icmp admin-prohibited), a drop as TIMEOUT.
 *
 * All objects use the name prefix 'sbnh' (and 'sbnc' for the connection-cap instance), which the
 * worker's default 'sb' reconcile never matches; the after hook removes every one of them and
 * the fake internet even when a test fails.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BunkerNetworks } from '../../src/network/host/BunkerNetworks.js';
import type { BunkerNetwork, BunkerNetworksOptions } from '../../src/network/host/types.js';
import { runCommand } from '../../src/providers/host/runCommand.js';

const isRoot = process.getuid?.() === 0;
const INET_NS = 'sbnhinet';
const WAN_IF = 'sbnhwan0';
const WEB_A = '198.18.1.10';
const WEB_B = '198.18.1.20';
const PROTECTED = '198.18.1.30';
const NO_HOST = '198.18.1.53';
const PRIVATE_10 = '10.99.0.10';
const PRIVATE_192 = '192.168.77.10';
const WAN_ROOT = '198.18.0.1';
const SUBNET = '10.213.0.0/24';

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** HTTP servers on 80/443/8080 (body: "hello <client address>", /big?n= streams n bytes, POST counts), UDP echo on 9999. */
const INET_SERVER = `
const http = require('node:http'); const dgram = require('node:dgram');
let pending = 4;
const ready = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
for (const port of [80, 443, 8080]) {
  http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/big') {
      const n = Number(url.searchParams.get('n')); const chunk = Buffer.alloc(65536, 120); let sent = 0;
      res.writeHead(200, { 'content-length': n });
      const pump = () => { while (sent < n) { const c = chunk.subarray(0, Math.min(chunk.length, n - sent)); sent += c.length; if (!res.write(c)) return res.once('drain', pump); } res.end(); };
      return pump();
    }
    if (req.method === 'POST') { let n = 0; req.on('data', (d) => { n += d.length; }); req.on('end', () => res.end(String(n))); return; }
    res.end('hello ' + req.socket.remoteAddress);
  }).listen(port, '0.0.0.0', ready);
}
// One socket per address: a reply from a 0.0.0.0 socket would leave from wan0's address and miss the NAT entry.
pending += 1;
for (const addr of ['${WEB_A}', '${WEB_B}']) { const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address)); u.bind(9999, addr, ready); }
`;

/** Runs probes (JSON argv) concurrently inside a bunker netns; prints one JSON array of results. */
const PROBE = `
const net = require('node:net'); const dgram = require('node:dgram'); const http = require('node:http');
const probes = JSON.parse(process.argv[1]); const LIMIT = 1500;
const bounded = (p) => Promise.race([p, new Promise((r) => setTimeout(() => r({ ok: false, err: 'TIMEOUT' }), LIMIT))]);
function tcp(p) { return new Promise((resolve) => {
  const s = net.connect({ host: p.host, port: p.port, localAddress: p.localAddress });
  let data = ''; s.setEncoding('utf8');
  s.on('connect', () => { if (p.send) s.write(p.send); else { resolve({ ok: true, data: '' }); s.destroy(); } });
  s.on('data', (d) => { data += d; }); s.on('end', () => resolve({ ok: true, data }));
  s.on('error', (e) => resolve({ ok: false, err: e.code })); setTimeout(() => s.destroy(), LIMIT + 100);
}); }
function udp(p) { return new Promise((resolve) => {
  const s = dgram.createSocket('udp4'); s.on('error', (e) => { resolve({ ok: false, err: e.code }); s.close(); });
  s.on('message', (m) => { resolve({ ok: true, data: m.toString() }); s.close(); });
  s.connect(p.port, p.host, () => s.send(p.send || 'ping')); setTimeout(() => { try { s.close(); } catch {} }, LIMIT + 100);
}); }
function hold(p) { return new Promise((resolve) => {
  const socks = []; let ok = 0; let left = p.count;
  const done = () => { if (--left === 0) { resolve({ ok: true, data: String(ok) }); for (const s of socks) s.destroy(); } };
  const one = () => { const s = net.connect({ host: p.host, port: p.port }); socks.push(s);
    let settled = false; const fin = (good) => { if (settled) return; settled = true; if (good) ok++; done(); if (socks.length < p.count) one(); };
    s.on('connect', () => fin(true)); s.on('error', () => fin(false)); setTimeout(() => fin(false), LIMIT - 200); };
  one();
}); }
function transfer(p) { return new Promise((resolve) => {
  const t0 = process.hrtime.bigint(); const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  if (p.dir === 'down') { http.get({ host: p.host, port: p.port, path: '/big?n=' + p.bytes }, (res) => { let n = 0; res.on('data', (d) => { n += d.length; }); res.on('end', () => resolve({ ok: true, data: JSON.stringify({ n, ms: ms() }) })); }).on('error', (e) => resolve({ ok: false, err: e.code })); }
  else { const req = http.request({ host: p.host, port: p.port, method: 'POST', path: '/' }, (res) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => resolve({ ok: true, data: JSON.stringify({ n: Number(b), ms: ms() }) })); });
    req.on('error', (e) => resolve({ ok: false, err: e.code })); const chunk = Buffer.alloc(65536, 121); let sent = 0;
    const pump = () => { while (sent < p.bytes) { sent += chunk.length; if (!req.write(chunk)) return req.once('drain', pump); } req.end(); }; pump(); }
}); }
const run = (p) => p.kind === 'tcp' ? bounded(tcp(p)) : p.kind === 'udp' ? bounded(udp(p)) : p.kind === 'hold' ? hold(p) : transfer(p);
Promise.all(probes.map(run)).then((r) => { process.stdout.write(JSON.stringify(r)); process.exit(0); });
`;

/** One ICMP echo from inside a netns (no ping binary here): exit 0 on a reply within 1 s. */
const ICMP_PROBE = `
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(1.0)
def csum(b):
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b)); t = (t >> 16) + (t & 0xffff); t += t >> 16; return ~t & 0xffff
hdr = struct.pack('!BBHHH', 8, 0, 0, 0x5b, 1) + b'sbtest'; hdr = hdr[:2] + struct.pack('!H', csum(hdr)) + hdr[4:]
s.sendto(hdr, (sys.argv[1], 0))
try:
    while True:
        data, addr = s.recvfrom(1500)
        if addr[0] == sys.argv[1] and data[20] == 0: sys.exit(0)
except socket.timeout:
    sys.exit(1)
`;

interface ProbeResult {
  ok: boolean;
  data?: string;
  err?: string;
}
type Probe =
  | { kind: 'tcp'; host: string; port: number; send?: string; localAddress?: string }
  | { kind: 'udp'; host: string; port: number; send?: string }
  | { kind: 'hold'; host: string; port: number; count: number }
  | { kind: 'transfer'; dir: 'down' | 'up'; host: string; port: number; bytes: number };

async function probe(net: BunkerNetwork, probes: Probe[]): Promise<ProbeResult[]> {
  const out = await sh('ip', ['netns', 'exec', net.netnsName, process.execPath, '-e', PROBE, JSON.stringify(probes)]);
  return JSON.parse(out) as ProbeResult[];
}

async function icmpReaches(net: BunkerNetwork, host: string): Promise<boolean> {
  return (await runCommand('ip', ['netns', 'exec', net.netnsName, 'python3', '-c', ICMP_PROBE, host])).code === 0;
}

const GET = 'GET / HTTP/1.0\r\n\r\n';
const http = (host: string, port: number): Probe => ({ kind: 'tcp', host, port, send: GET });

/** Objects BunkerNetworks made with a name prefix that still exist: links, netns, inet tables, qdiscs. */
async function footprint(prefix: string): Promise<string[]> {
  const key = '[0-9a-f]{10}';
  const link = new RegExp(`^${prefix}[vi]${key}$`);
  const found: string[] = [];
  const links = JSON.parse(await sh('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
  found.push(...links.map((l) => l.ifname).filter((n) => link.test(n)));
  if (existsSync('/run/netns')) found.push(...readdirSync('/run/netns').filter((n) => new RegExp(`^${prefix}n-${key}$`).test(n)));
  found.push(...(await sh('nft', ['list', 'tables'])).split('\n').filter((l) => new RegExp(`^table inet ${prefix}_${key}$`).test(l)));
  found.push(...(await sh('tc', ['qdisc', 'show'])).split('\n').filter((l) => new RegExp(`dev ${prefix}[vi]${key} `).test(l)));
  return found;
}

describe('BunkerNetworks on this host', { skip: isRoot ? false : 'needs root' }, () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'sbnet-state-'));
  const capStateDir = mkdtempSync(join(tmpdir(), 'sbnet-cap-'));
  const logs: string[] = [];
  let opts: BunkerNetworksOptions | undefined;
  let nets: BunkerNetworks;
  let inetServer: ReturnType<typeof spawn> | undefined;
  let workerApi: Server;
  let workerPort: number;
  let dnsUdp: UdpSocket;
  let dnsTcp: Server;
  let dnsPort: number;
  const ids = { reg: 'bunker-registry', allow: 'bunker-allowlisted', unr: 'bunker-unrestricted' };
  const byId = new Map<string, BunkerNetwork>();

  before(async () => {
    // Leftovers of an aborted earlier run.
    await runCommand('ip', ['netns', 'del', INET_NS]);
    await runCommand('ip', ['link', 'del', WAN_IF]);
    await sh('ip', ['netns', 'add', INET_NS]);
    await sh('ip', ['link', 'add', WAN_IF, 'type', 'veth', 'peer', 'name', 'wan0', 'netns', INET_NS]);
    await sh('ip', ['addr', 'add', `${WAN_ROOT}/30`, 'dev', WAN_IF]);
    await sh('ip', ['link', 'set', WAN_IF, 'up']);
    for (const a of [WEB_A, WEB_B, PROTECTED, PRIVATE_10, PRIVATE_192])
      await sh('ip', ['-n', INET_NS, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    await sh('ip', ['-n', INET_NS, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', INET_NS, 'addr', 'add', '198.18.0.2/30', 'dev', 'wan0']);
    await sh('ip', ['-n', INET_NS, 'link', 'set', 'wan0', 'up']);
    await sh('ip', ['-n', INET_NS, 'route', 'add', 'default', 'via', WAN_ROOT]);
    for (const p of ['198.18.1.0/24', '10.99.0.0/24', '192.168.77.0/24']) await sh('ip', ['route', 'add', p, 'via', '198.18.0.2']);
    inetServer = spawn('ip', ['netns', 'exec', INET_NS, process.execPath, '-e', INET_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      inetServer!.once('exit', (code) => reject(new Error(`fake internet server exited ${code}`)));
      inetServer!.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    });

    workerApi = createServer((s) => s.end('worker-api'));
    await new Promise<void>((r) => workerApi.listen(0, '0.0.0.0', r));
    workerPort = (workerApi.address() as { port: number }).port;
    // The DNS stand-in: one port for udp and tcp, like the responder.
    for (;;) {
      dnsUdp = createSocket('udp4');
      dnsUdp.on('message', (m, r) => dnsUdp.send(`dns:${m.toString()}`, r.port, r.address));
      await new Promise<void>((r) => dnsUdp.bind(0, '0.0.0.0', r));
      dnsPort = dnsUdp.address().port;
      dnsTcp = createServer((s) => s.end('dns-tcp'));
      const ok = await new Promise<boolean>((r) => {
        dnsTcp.once('error', () => r(false));
        dnsTcp.listen(dnsPort, '0.0.0.0', () => r(true));
      });
      if (ok) break;
      dnsUdp.close();
    }
    opts = { stateDir, subnet: SUBNET, dnsPort, protectedAddresses: [PROTECTED], namePrefix: 'sbnh', log: (m) => logs.push(m) };
    nets = new BunkerNetworks(opts);
  });

  after(async () => {
    // Each step on its own, so a failure (or a before hook that stopped half-way) skips nothing.
    const attempt = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (e) {
        console.error(`cleanup ${what}:`, e);
      }
    };
    // A fresh instance with no live bunkers removes every 'sbnh'/'sbnc' object, state file or not.
    const base = opts ?? { stateDir, subnet: SUBNET, dnsPort: 53, protectedAddresses: [], namePrefix: 'sbnh' };
    await attempt('bunkers', () => new BunkerNetworks(base).reconcile(new Set()));
    await attempt('capped bunkers', () =>
      new BunkerNetworks({ ...base, stateDir: capStateDir, subnet: '10.214.0.0/24', namePrefix: 'sbnc' }).reconcile(new Set()),
    );
    await attempt('acct table', () => runCommand('nft', ['delete', 'table', 'inet', 'sbnhacct']));
    await attempt('fake internet', async () => {
      inetServer?.kill('SIGKILL');
      await runCommand('ip', ['netns', 'del', INET_NS]);
      await runCommand('ip', ['link', 'del', WAN_IF]);
      for (const p of ['198.18.1.0/24', '10.99.0.0/24', '192.168.77.0/24']) await runCommand('ip', ['route', 'del', p]);
    });
    workerApi?.close();
    dnsTcp?.close();
    await attempt('dns socket', () => dnsUdp?.close());
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(capStateDir, { recursive: true, force: true });
  });

  test('concurrent setups get distinct addresses from the pool, found by address', async () => {
    const many = Array.from({ length: 6 }, (_, i) => `bunker-many-${i}`);
    const got = await Promise.all(many.map((id) => nets.setup(id, { profile: 'registry', bandwidthMbit: 100 })));
    const addresses = new Set(got.map((n) => n.address));
    assert.equal(addresses.size, 6);
    for (const n of got) {
      assert.match(n.address, /^10\.213\.0\.\d+$/);
      assert.equal(nets.lookupByAddress(n.address)?.bunkerId, n.bunkerId);
      assert.ok(existsSync(n.netnsPath));
      assert.ok(n.hostIf.length <= 15);
    }
    assert.equal(nets.lookupByAddress(got[0]!.gateway), undefined);
    for (const id of many) await nets.teardown(id);
    assert.deepEqual(nets.list(), []);
    // Freed slots are reused lowest first.
    const first = await nets.setup(ids.reg, { profile: 'registry', bandwidthMbit: 100 });
    assert.equal(first.address, '10.213.0.2');
    assert.equal(first.gateway, '10.213.0.1');
    byId.set(ids.reg, first);
  });

  /** What every profile shares: DNS lands on the responder, the worker's ports and spoofing do not work. */
  async function commonChecks(net: BunkerNetwork): Promise<void> {
    const [dnsA, dnsB, dnsGw, dnsTcpB, direct, apiGw, apiWan, v6] = await probe(net, [
      { kind: 'udp', host: WEB_A, port: 53, send: 'q1' },
      { kind: 'udp', host: NO_HOST, port: 53, send: 'q2' },
      { kind: 'udp', host: net.gateway, port: 53, send: 'q3' },
      { kind: 'tcp', host: NO_HOST, port: 53, send: 'x' },
      { kind: 'udp', host: net.gateway, port: dnsPort, send: 'q4' },
      { kind: 'tcp', host: net.gateway, port: workerPort, send: 'x' },
      { kind: 'tcp', host: WAN_ROOT, port: workerPort, send: 'x' },
      { kind: 'tcp', host: 'fd00::2', port: workerPort },
    ]);
    assert.deepEqual(dnsA, { ok: true, data: 'dns:q1' }, 'udp :53 to a fake-internet host lands on the responder');
    assert.deepEqual(dnsB, { ok: true, data: 'dns:q2' }, 'udp :53 to an address without a host lands on the responder');
    assert.deepEqual(dnsGw, { ok: true, data: 'dns:q3' });
    assert.deepEqual(dnsTcpB, { ok: true, data: 'dns-tcp' }, 'tcp :53 lands on the responder');
    assert.deepEqual(direct, { ok: true, data: 'dns:q4' });
    assert.deepEqual(apiGw, { ok: false, err: 'TIMEOUT' }, 'worker port via the gateway address is dropped');
    assert.deepEqual(apiWan, { ok: false, err: 'TIMEOUT' }, "worker port via the host's other address is dropped");
    assert.equal(v6?.ok, false, 'no IPv6 at all');
    // A second address inside the bunker (it may hold CAP_NET_ADMIN there) must not get anything through.
    const spoofed = net.address.replace(/\.\d+$/, '.250');
    await sh('ip', ['-n', net.netnsName, 'addr', 'add', `${spoofed}/32`, 'dev', 'eth0']);
    try {
      const [viaSpoof, dnsSpoof] = await probe(net, [
        { kind: 'tcp', host: WEB_A, port: 80, send: GET, localAddress: spoofed },
        { kind: 'tcp', host: NO_HOST, port: 53, send: 'x', localAddress: spoofed },
      ]);
      assert.deepEqual(viaSpoof, { ok: false, err: 'TIMEOUT' }, 'spoofed source dropped');
      assert.deepEqual(dnsSpoof, { ok: false, err: 'TIMEOUT' }, 'spoofed source dropped before the DNAT');
    } finally {
      await sh('ip', ['-n', net.netnsName, 'addr', 'del', `${spoofed}/32`, 'dev', 'eth0']);
    }
  }

  for (const profile of ['registry', 'allowlisted'] as const) {
    test(`${profile}: only allow4 addresses on tcp 80/443; every other way out fails`, async () => {
      const id = profile === 'registry' ? ids.reg : ids.allow;
      const net = await nets.setup(id, {
        profile,
        bandwidthMbit: 100,
        ...(profile === 'allowlisted' ? { allowlist: ['web-b.example'] } : {}),
      });
      byId.set(id, net);
      // The allowlisted bunker gets the other web host, so each proves the set is its own.
      const [allowed, other] = profile === 'registry' ? [WEB_A, WEB_B] : [WEB_B, WEB_A];
      // The private address too, as an allowed name's rebinding DNS answer would put it there.
      await sh('nft', ['add', 'element', 'inet', net.table, 'allow4', `{ ${allowed}, ${PRIVATE_10} timeout 120s }`]);
      const r = await probe(net, [
        http(allowed, 80),
        http(allowed, 443),
        { kind: 'tcp', host: allowed, port: 8080 },
        { kind: 'tcp', host: other, port: 80 },
        { kind: 'udp', host: allowed, port: 9999 },
        { kind: 'tcp', host: PRIVATE_10, port: 80 },
      ]);
      assert.equal(r[0]?.ok, true, JSON.stringify(r[0]));
      assert.match(r[0]!.data!, new RegExp(`hello ${WAN_ROOT.replace(/\./g, '\\.')}$`), 'masqueraded to the uplink address');
      assert.equal(r[1]?.ok, true, JSON.stringify(r[1]));
      assert.deepEqual(r[2], { ok: false, err: 'ECONNREFUSED' }, 'other port: tcp reset');
      assert.deepEqual(r[3], { ok: false, err: 'ECONNREFUSED' }, 'address not in allow4: tcp reset');
      assert.equal(r[4]?.ok, false, 'udp out');
      assert.deepEqual(r[5], { ok: false, err: 'EHOSTUNREACH' }, 'a private address, even in allow4');
      assert.equal(await icmpReaches(net, allowed), false, 'no ICMP out');
      await commonChecks(net);
    });
  }

  test('unrestricted: the internet works; private ranges, protected addresses and other bunkers do not', async () => {
    await sh('nft', ['add', 'table', 'inet', 'sbnhacct']);
    try {
      const net = await nets.setup(ids.unr, { profile: 'unrestricted', bandwidthMbit: 100 });
      byId.set(ids.unr, net);
      await applyAcctProbe(net.hostIf);
      const reg = byId.get(ids.reg)!;
      const r = await probe(net, [
        http(WEB_A, 80),
        http(WEB_B, 8080),
        { kind: 'udp', host: WEB_A, port: 9999, send: 'u' },
        { kind: 'tcp', host: PRIVATE_10, port: 80 },
        { kind: 'tcp', host: PRIVATE_192, port: 80 },
        { kind: 'tcp', host: PROTECTED, port: 80 },
        { kind: 'tcp', host: reg.address, port: 80 },
        { kind: 'tcp', host: reg.gateway, port: workerPort },
      ]);
      assert.equal(r[0]?.ok, true, JSON.stringify(r[0]));
      assert.match(r[0]!.data!, /hello 198\.18\.0\.1$/, 'masqueraded');
      assert.equal(r[1]?.ok, true, JSON.stringify(r[1]));
      assert.deepEqual(r[2], { ok: true, data: 'echo:u' });
      assert.deepEqual(r[3], { ok: false, err: 'EHOSTUNREACH' }, '10/8 rejected');
      assert.deepEqual(r[4], { ok: false, err: 'EHOSTUNREACH' }, '192.168/16 rejected');
      assert.deepEqual(r[5], { ok: false, err: 'EHOSTUNREACH' }, 'protected address rejected');
      assert.deepEqual(r[6], { ok: false, err: 'EHOSTUNREACH' }, 'another bunker rejected');
      assert.deepEqual(r[7], { ok: false, err: 'TIMEOUT' }, "the worker via another bunker's gateway is dropped");
      assert.equal(await icmpReaches(net, WEB_A), true, 'ICMP out');
      // The same private targets answer the host itself: the rejects above are the bunker's rules.
      const fromHost = await sh('curl', ['-sS', '--max-time', '2', `http://${PRIVATE_10}/`]);
      assert.equal(fromHost, `hello ${WAN_ROOT}`);
      await commonChecks(net);

      // Flow accounting must be on where the forwarded flows are tracked: the root namespace.
      assert.equal(readFileSync('/proc/sys/net/netfilter/nf_conntrack_acct', 'utf8').trim(), '1');
      assert.equal(readFileSync('/proc/sys/net/netfilter/nf_conntrack_timestamp', 'utf8').trim(), '1');
      const counted = JSON.parse(await sh('nft', ['-j', 'list', 'chain', 'inet', 'sbnhacct', 'c'])) as {
        nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[];
      };
      const packets = counted.nftables.flatMap((o) => o.rule?.expr ?? []).find((e) => e.counter)?.counter?.packets ?? 0;
      assert.ok(packets > 0, 'forwarded bunker flows carry conntrack byte/packet counters in the root namespace');
      const inBunker = await sh('ip', ['netns', 'exec', net.netnsName, 'cat', '/proc/sys/net/netfilter/nf_conntrack_acct']).catch(
        () => 'n/a',
      );
      console.log(
        `# nf_conntrack_acct root=1 bunker-netns=${inBunker.trim()} (flows are tracked in root); acct-matched packets=${packets}`,
      );
    } finally {
      await runCommand('nft', ['delete', 'table', 'inet', 'sbnhacct']);
    }
  });

  test('the per-bunker connection cap rejects new flows beyond maxConnections', async () => {
    const capped = new BunkerNetworks({ ...opts!, stateDir: capStateDir, subnet: '10.214.0.0/24', namePrefix: 'sbnc', maxConnections: 4 });
    try {
      const net = await capped.setup('bunker-capped', { profile: 'unrestricted', bandwidthMbit: 100 });
      const [held] = await probe(net, [{ kind: 'hold', host: WEB_A, port: 80, count: 7 }]);
      assert.deepEqual(held, { ok: true, data: '4' });
    } finally {
      await capped.teardown('bunker-capped');
    }
    assert.deepEqual(await footprint('sbnc'), []);
  });

  test('setup is idempotent: same address, allow4 elements and rules survive a re-apply', async () => {
    const before = byId.get(ids.reg)!;
    const again = await nets.setup(ids.reg, { profile: 'registry', bandwidthMbit: 100 });
    assert.deepEqual(again, before);
    assert.match(await sh('nft', ['list', 'set', 'inet', before.table, 'allow4']), new RegExp(WEB_A.replace(/\./g, '\\.')));
    const [r] = await probe(again, [http(WEB_A, 443)]);
    assert.equal(r?.ok, true, JSON.stringify(r));
    const ruleCount = (await sh('nft', ['list', 'table', 'inet', before.table])).split('\n').filter((l) => l.includes('iifname')).length;
    await nets.setup(ids.reg, { profile: 'registry', bandwidthMbit: 100 });
    assert.equal(
      (await sh('nft', ['list', 'table', 'inet', before.table])).split('\n').filter((l) => l.includes('iifname')).length,
      ruleCount,
    );
  });

  test('bandwidth: tbf both ways at the planned rate (transfer rates printed, not asserted)', async () => {
    const net = await nets.setup(ids.unr, { profile: 'unrestricted', bandwidthMbit: 20 });
    const ifb = net.hostIf.replace(/^sbnhv/, 'sbnhi');
    const egress = JSON.parse(await sh('tc', ['-j', 'qdisc', 'show', 'dev', net.hostIf])) as { kind: string; options: { rate?: number } }[];
    const shaped = JSON.parse(await sh('tc', ['-j', 'qdisc', 'show', 'dev', ifb])) as { kind: string; options: { rate?: number } }[];
    assert.equal(egress.find((q) => q.kind === 'tbf')?.options.rate, 2_500_000, 'download tbf, bytes/s');
    assert.ok(egress.some((q) => q.kind === 'ingress'));
    assert.equal(shaped.find((q) => q.kind === 'tbf')?.options.rate, 2_500_000, 'upload tbf on the ifb');
    assert.match(await sh('tc', ['filter', 'show', 'dev', net.hostIf, 'parent', 'ffff:']), new RegExp(`mirred.*Redirect to device ${ifb}`));
    const bytes = 5_000_000;
    const [down, up] = [
      ...(await probe(net, [{ kind: 'transfer', dir: 'down', host: WEB_A, port: 80, bytes }])),
      ...(await probe(net, [{ kind: 'transfer', dir: 'up', host: WEB_A, port: 80, bytes }])),
    ];
    for (const [name, r] of [
      ['download', down],
      ['upload', up],
    ] as const) {
      assert.equal(r?.ok, true, JSON.stringify(r));
      const { n, ms } = JSON.parse(r!.data!) as { n: number; ms: number };
      assert.ok(n >= bytes);
      console.log(`# ${name}: ${n} bytes in ${ms.toFixed(0)} ms = ${((n * 8) / ms / 1000).toFixed(1)} Mbit/s (cap 20)`);
    }
  });

  test('state survives a new instance; reconcile restores live bunkers and removes everything else', async () => {
    const reg = byId.get(ids.reg)!;
    const fresh = new BunkerNetworks(opts!);
    assert.deepEqual(
      fresh.list().sort((a, b) => a.address.localeCompare(b.address)),
      nets.list().sort((a, b) => a.address.localeCompare(b.address)),
    );
    assert.equal(fresh.lookupByAddress(reg.address)?.bunkerId, ids.reg);
    // Out-of-band damage and leftovers: the live bunker's table gone, objects without state, a torn temporary.
    await sh('nft', ['delete', 'table', 'inet', reg.table]);
    await sh('ip', ['link', 'add', 'sbnhv0123456789', 'type', 'ifb']);
    await sh('ip', ['link', 'add', 'sbnhi0123456789', 'type', 'ifb']);
    await sh('ip', ['netns', 'add', 'sbnhn-0123456789']);
    await sh('nft', ['add', 'table', 'inet', 'sbnh_0123456789']);
    writeFileSync(join(stateDir, '0123456789.json.abcd.tmp'), '{');
    const result = await fresh.reconcile(new Set([ids.reg, 'bunker-never-set-up']));
    assert.deepEqual(result, { restored: [ids.reg], removed: [ids.allow, ids.unr].sort() });
    assert.deepEqual(
      fresh.list().map((n) => n.bunkerId),
      [ids.reg],
    );
    const left = await footprint('sbnh');
    const regKey = reg.table.slice('sbnh_'.length);
    assert.deepEqual(
      left.filter((o) => !o.includes(regKey)),
      [],
      'only the live bunker remains',
    );
    assert.deepEqual(readdirSync(stateDir), [`${regKey}.json`]);
    // Rules are back (the set is empty again after the out-of-band delete: the responder refills it).
    await sh('nft', ['add', 'element', 'inet', reg.table, 'allow4', `{ ${WEB_A} timeout 60s }`]);
    const [ok, refused] = await probe(reg, [http(WEB_A, 80), { kind: 'tcp', host: WEB_B, port: 80 }]);
    assert.equal(ok?.ok, true, JSON.stringify(ok));
    assert.deepEqual(refused, { ok: false, err: 'ECONNREFUSED' });
    nets = fresh;
  });

  test('teardown leaves nothing behind and is idempotent', async () => {
    await nets.teardown(ids.reg);
    await nets.teardown(ids.reg);
    await nets.teardown('bunker-never-set-up');
    assert.deepEqual(await footprint('sbnh'), []);
    assert.deepEqual(readdirSync(stateDir), []);
    assert.deepEqual(nets.list(), []);
    assert.equal(nets.lookupByAddress('10.213.0.2'), undefined);
  });
});

/** A counter that only matches packets whose conntrack entry has accounting (ct packets stays 0 otherwise). */
async function applyAcctProbe(hostIf: string): Promise<void> {
  const r = await runCommand('nft', [
    `add chain inet sbnhacct c { type filter hook forward priority 10; policy accept; }; add rule inet sbnhacct c iifname "${hostIf}" ct original packets > 1 counter`,
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
}
