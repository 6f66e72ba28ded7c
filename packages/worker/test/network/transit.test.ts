/**
 * The `transit` profile against the real kernel: TenantBridges (a Linux bridge per bridge id in
 * the root namespace) and TransitPorts (per bunker a netns whose only interfaces are veths on
 * those bridges, and the nft `bridge` spoof guard).
 *
 *   node --import tsx --test packages/worker/test/network/transit.test.ts
 *
 * Needs root. Every object carries the name prefix 'sbtb' (which no worker's reconcile matches);
 * addresses are 10.232.0.x, assigned inside the bunkers' namespaces by the test, on bridges with
 * no uplink and no address in the root namespace, so nothing leaves the machine. Frames are
 * sent and captured with python3 AF_PACKET sockets inside the namespaces. The after hook removes
 * every 'sbtb' link, netns and nft table even when a test fails.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TenantBridges } from '../../src/network/host/TenantBridges.js';
import { TransitPorts } from '../../src/network/host/TransitPorts.js';
import { runCommand } from '../../src/providers/host/runCommand.js';

const isRoot = process.getuid?.() === 0;
const PREFIX = 'sbtb';
const TENANT_A = 'tn_aaaaaaaaaaaaaaaaaaaa';
const TENANT_B = 'tn_bbbbbbbbbbbbbbbbbbbb';
const BR_A = 'br_transittestaaaaaaaa';
const BR_B = 'br_transittestbbbbbbbb';
const MAC = { b1: '02:00:00:e8:00:01', b2: '02:00:00:e8:00:02', open: '02:00:00:e8:00:04', foreign: '02:00:00:e8:00:99' };
const IP = { b1: '10.232.0.1', b2: '10.232.0.2', open: '10.232.0.4', foreign: '10.232.0.77' };

async function sh(cmd: string, args: string[]): Promise<string> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * Captures frames on eth0 until its stdin closes (the frames were sent by then), then for a
 * last 0.3 s in case one is still on its way; prints a JSON list of what it saw:
 * `ether:<marker>` and `arp:<sender mac>`.
 */
const CAPTURE = `
import socket, json, time, sys, select
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind(('eth0', 0))
print('ready', flush=True); seen = set(); end = None
while end is None or time.time() < end:
    r, _, _ = select.select([s] + ([sys.stdin] if end is None else []), [], [], 0.1)
    if sys.stdin in r:
        if not sys.stdin.buffer.read1(4096): end = time.time() + 0.3
        continue
    if s not in r: continue
    f = s.recv(2048)
    t = f[12:14]
    if t == b'\\x88\\xb5': seen.add('ether:' + f[14:30].rstrip(b'\\0').decode(errors='replace'))
    if t == b'\\x08\\x06': seen.add('arp:' + f[22:28].hex(':'))
print(json.dumps(sorted(seen)), flush=True)
`;

/** Sends one frame on eth0: argv[1] = 'ether' (ethertype 0x88b5, marker argv[4]) or 'arp' (gratuitous, sender mac argv[3], ip argv[4]); argv[2] = ether source. */
const SEND = `
import socket, sys
kind, src, a, b = sys.argv[1:5]
mac = lambda m: bytes.fromhex(m.replace(':', ''))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
if kind == 'ether': f = b'\\xff' * 6 + mac(src) + b'\\x88\\xb5' + b.encode().ljust(46, b'\\0')
else:
    ip = socket.inet_aton(b)
    f = b'\\xff' * 6 + mac(src) + b'\\x08\\x06' + b'\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x02' + mac(a) + ip + b'\\xff' * 6 + ip + b'\\0' * 18
for _ in range(3): s.send(f)
`;

/** Runs `python3 -c CAPTURE` in `netns` while `send()` runs; what the capture saw. */
async function capture(netns: string, send: () => Promise<void>): Promise<string[]> {
  const child = spawn('ip', ['netns', 'exec', netns, 'python3', '-c', CAPTURE], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  // listened for at once: however slow send() is, the exit is never missed
  const closed = new Promise<number | null>((r) => child.once('close', r));
  const ready = new Promise<boolean>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready')) resolve(true);
    });
    void closed.then(() => resolve(false));
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  try {
    assert.ok(await ready, `capture did not start: ${err}`);
    await send();
  } finally {
    child.stdin.end(); // the capture stops once it read what is still on its way
  }
  const code = await closed;
  assert.equal(code, 0, err);
  return JSON.parse(out.trim().split('\n').at(-1) ?? '[]') as string[];
}

function sendFrame(netns: string, kind: 'ether' | 'arp', src: string, a: string, b: string): Promise<void> {
  return sh('ip', ['netns', 'exec', netns, 'python3', '-c', SEND, kind, src, a, b]).then(() => undefined);
}

/** A TCP exchange from one namespace to a listener in another, over the bridge. */
async function tcpExchange(fromNs: string, toNs: string, toIp: string): Promise<string> {
  const server = spawn(
    'ip',
    [
      ...['netns', 'exec', toNs, process.execPath, '-e'],
      `require('node:net').createServer((s) => s.end('pong ' + s.remoteAddress)).listen(7100, '${toIp}', () => console.log('ready'))`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  try {
    let out = '';
    server.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const deadline = Date.now() + 5000;
    while (!out.includes('ready') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const r = await runCommand('ip', [
      ...['netns', 'exec', fromNs, process.execPath, '-e'],
      `const s = require('node:net').connect(7100, '${toIp}'); let d = ''; s.on('data', (x) => { d += x; }); s.on('end', () => { console.log(d); process.exit(0); }); s.on('error', (e) => { console.log('ERR ' + e.code); process.exit(0); }); setTimeout(() => { console.log('TIMEOUT'); process.exit(0); }, 2000);`,
    ]);
    return r.stdout.trim();
  } finally {
    server.kill('SIGKILL');
  }
}

async function leftovers(): Promise<string[]> {
  const links = JSON.parse((await sh('ip', ['-j', 'link', 'show'])) || '[]') as { ifname: string }[];
  const out = links.map((l) => l.ifname).filter((n) => n.startsWith(PREFIX));
  if (existsSync('/run/netns')) out.push(...readdirSync('/run/netns').filter((n) => n.startsWith(PREFIX)));
  const tables = await sh('nft', ['list', 'tables']);
  out.push(...tables.split('\n').filter((l) => l.includes(` ${PREFIX}`)));
  return out;
}

async function removeEverything(): Promise<void> {
  if (existsSync('/run/netns'))
    for (const n of readdirSync('/run/netns')) if (n.startsWith(PREFIX)) await runCommand('ip', ['netns', 'del', n]);
  const links = JSON.parse((await runCommand('ip', ['-j', 'link', 'show'])).stdout || '[]') as { ifname: string }[];
  for (const l of links) if (l.ifname.startsWith(PREFIX)) await runCommand('ip', ['link', 'del', l.ifname]);
  await runCommand('nft', ['delete', 'table', 'bridge', `${PREFIX}_guard`]);
}

describe('transit bridges and ports on the kernel', { skip: !isRoot && 'needs root' }, () => {
  let dir: string;
  let bridges: TenantBridges;
  let ports: TransitPorts;
  const ns: Record<string, string> = {};

  before(async () => {
    await removeEverything();
    dir = mkdtempSync(join(tmpdir(), 'sbtb-'));
    bridges = new TenantBridges(join(dir, 'bridges'), PREFIX);
    ports = new TransitPorts(join(dir, 'transit'), PREFIX, bridges);
    await bridges.create(BR_A, TENANT_A);
    await bridges.create(BR_B, TENANT_B);
    for (const [name, mac, spoofGuard] of [
      ['b1', MAC.b1, true],
      ['b2', MAC.b2, true],
      ['open', MAC.open, false],
    ] as const) {
      const att = await ports.attach(`bk_transit_${name}`, [{ bridgeId: BR_A, tenantId: TENANT_A, mac, spoofGuard }]);
      ns[name] = att.netnsName;
      await sh('ip', ['-n', att.netnsName, 'addr', 'add', `${IP[name]}/24`, 'dev', 'eth0']);
    }
  });

  after(async () => {
    await removeEverything();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a bridge is a root-namespace bridge without addresses; ports have the given MAC, no route', async () => {
    const br = bridges.get(BR_A);
    assert.ok(br && br.ifName.length <= 15 && br.ifName.startsWith(`${PREFIX}b`));
    const addrs = JSON.parse(await sh('ip', ['-j', 'addr', 'show', 'dev', br.ifName])) as { addr_info: unknown[] }[];
    assert.deepEqual(addrs[0]?.addr_info, []);
    const link = JSON.parse(await sh('ip', ['-n', ns.b1 as string, '-j', 'link', 'show', 'dev', 'eth0'])) as { address: string }[];
    assert.equal(link[0]?.address, MAC.b1);
    assert.equal((await sh('ip', ['-n', ns.b1 as string, 'route', 'show', 'default'])).trim(), '');
    const links = JSON.parse(await sh('ip', ['-n', ns.b1 as string, '-j', 'link', 'show'])) as { ifname: string }[];
    assert.deepEqual(links.map((l) => l.ifname).sort(), ['eth0', 'lo']);
  });

  test('two bunkers on one bridge reach each other over TCP', async () => {
    assert.equal(await tcpExchange(ns.b1 as string, ns.b2 as string, IP.b2), `pong ${IP.b1}`);
    assert.equal(await tcpExchange(ns.b2 as string, ns.b1 as string, IP.b1), `pong ${IP.b2}`);
  });

  test("a bunker on another tenant's bridge, or on a bridge the worker lacks, is refused and leaves nothing", async () => {
    const before = await leftovers();
    await assert.rejects(
      ports.attach('bk_transit_intruder', [{ bridgeId: BR_A, tenantId: TENANT_B, mac: '02:00:00:e8:00:66', spoofGuard: true }]),
      /another tenant/,
    );
    await assert.rejects(
      ports.attach('bk_transit_intruder', [
        { bridgeId: 'br_nosuchbridge', tenantId: TENANT_A, mac: '02:00:00:e8:00:66', spoofGuard: true },
      ]),
      /no bridge/,
    );
    assert.equal(ports.get('bk_transit_intruder'), undefined);
    assert.deepEqual(await leftovers(), before);
    // The bridge of tenant B is not reachable from tenant A's bridge: different broadcast domains.
    const att = await ports.attach('bk_transit_other', [
      { bridgeId: BR_B, tenantId: TENANT_B, mac: '02:00:00:e8:00:05', spoofGuard: true },
    ]);
    try {
      await sh('ip', ['-n', att.netnsName, 'addr', 'add', '10.232.0.5/24', 'dev', 'eth0']);
      assert.match(await tcpExchange(att.netnsName, ns.b2 as string, IP.b2), /TIMEOUT|EHOSTUNREACH/);
    } finally {
      await ports.detach('bk_transit_other');
    }
  });

  test('spoof guard: a foreign source MAC and a gratuitous ARP with a foreign sender are dropped', async () => {
    const seen = await capture(ns.b2 as string, async () => {
      await sendFrame(ns.b1 as string, 'ether', MAC.b1, '', 'legit');
      await sendFrame(ns.b1 as string, 'ether', MAC.foreign, '', 'spoofed');
      await sendFrame(ns.b1 as string, 'ether', MAC.b2, '', 'stolen');
      await sendFrame(ns.b1 as string, 'arp', MAC.b1, MAC.foreign, IP.foreign);
      await sendFrame(ns.b1 as string, 'arp', MAC.b1, MAC.b1, IP.b1);
    });
    assert.ok(seen.includes('ether:legit'), JSON.stringify(seen));
    assert.ok(seen.includes(`arp:${MAC.b1}`), 'its own gratuitous ARP passes');
    assert.ok(!seen.includes('ether:spoofed'), JSON.stringify(seen));
    assert.ok(!seen.includes('ether:stolen'), JSON.stringify(seen));
    assert.ok(!seen.includes(`arp:${MAC.foreign}`), JSON.stringify(seen));
  });

  test('spoof_guard false lets the same frames through', async () => {
    const seen = await capture(ns.b2 as string, async () => {
      await sendFrame(ns.open as string, 'ether', MAC.foreign, '', 'spoofed-open');
      await sendFrame(ns.open as string, 'arp', MAC.open, MAC.foreign, IP.foreign);
    });
    assert.ok(seen.includes('ether:spoofed-open'), JSON.stringify(seen));
    assert.ok(seen.includes(`arp:${MAC.foreign}`), JSON.stringify(seen));
  });

  test('a restarted worker restores bridges and ports from its state files, and removes leftovers', async () => {
    const br = bridges.get(BR_A)?.ifName as string;
    await sh('ip', ['link', 'del', br]); // its ports fall off the bridge
    await sh('ip', ['link', 'add', `${PREFIX}b0123456789`, 'type', 'bridge']); // a leftover without a state file
    const bridges2 = new TenantBridges(join(dir, 'bridges'), PREFIX);
    const ports2 = new TransitPorts(join(dir, 'transit'), PREFIX, bridges2);
    const b = await bridges2.reconcile();
    assert.deepEqual(b.restored, [BR_A, BR_B]);
    assert.deepEqual(b.removed, [`${PREFIX}b0123456789`]);
    const p = await ports2.reconcile(new Set(['bk_transit_b1', 'bk_transit_b2', 'bk_transit_open']));
    assert.deepEqual(p.restored, ['bk_transit_b1', 'bk_transit_b2', 'bk_transit_open']);
    assert.equal(await tcpExchange(ns.b1 as string, ns.b2 as string, IP.b2), `pong ${IP.b1}`);
    // Ports of a bunker that is no longer live go at reconcile.
    const q = await ports2.reconcile(new Set(['bk_transit_b1', 'bk_transit_b2']));
    assert.deepEqual(q.removed, ['bk_transit_open']);
    assert.equal(existsSync(`/run/netns/${ns.open}`), false);
    bridges = bridges2;
    ports = ports2;
  });

  test('bandwidth: each port gets a tbf both ways (the upload side on its own ifb), and loses it with the bunker', async () => {
    const att = await ports.attach(
      'bk_transit_shaped',
      [
        { bridgeId: BR_A, tenantId: TENANT_A, mac: '02:00:00:e8:00:07', spoofGuard: true },
        { bridgeId: BR_A, tenantId: TENANT_A, mac: '02:00:00:e8:00:08', spoofGuard: true },
      ],
      50,
    );
    for (const p of att.ports) {
      assert.ok(p.ifb && p.ifb.length <= 15);
      const qdiscs = (dev: string) =>
        JSON.parse(execFileSync('tc', ['-j', 'qdisc', 'show', 'dev', dev], { encoding: 'utf8' })) as {
          kind: string;
          options?: { rate?: number };
        }[];
      const tbf = (dev: string) => qdiscs(dev).find((q) => q.kind === 'tbf');
      assert.equal(tbf(p.hostIf)?.options?.rate, 50_000_000 / 8, `${p.hostIf}: download capped at 50 Mbit`);
      assert.equal(tbf(p.ifb as string)?.options?.rate, 50_000_000 / 8, `${p.ifb}: upload capped at 50 Mbit`);
      const filters = execFileSync('tc', ['filter', 'show', 'dev', p.hostIf, 'parent', 'ffff:'], { encoding: 'utf8' });
      assert.match(filters, new RegExp(`Redirect to device ${p.ifb}`));
    }
    await ports.detach('bk_transit_shaped');
    for (const p of att.ports) {
      assert.equal(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).includes(`${p.ifb}:`), false, `${p.ifb} removed`);
    }
  });

  test('teardown leaves no link, netns or nft table', async () => {
    for (const a of ports.list()) await ports.detach(a.bunkerId);
    await ports.detach('bk_transit_b1'); // idempotent
    for (const id of bridges.ids()) await bridges.delete(id);
    assert.deepEqual(await leftovers(), []);
  });
});
