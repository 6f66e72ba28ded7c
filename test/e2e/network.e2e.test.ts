/**
 * Network profiles end to end: a real `scaibunker serve` (controller + worker, containers) whose
 * bunkers reach a fake internet built on this machine (fakeInternet.ts), driven through the SDK.
 * Each profile is probed from inside a bunker by one python process running every probe at once
 * (PROBE); a drop shows as TIMEOUT, a reject as ECONNREFUSED / EHOSTUNREACH.
 *
 *   node --import tsx --test test/e2e/network.e2e.test.ts
 *
 * Needs root (netns, nft, tc). The worker's kernel objects carry the prefix `sbe`, so a worker
 * running on this machine with the default prefix is never touched; the after hook removes them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Bunker, type FlowRecord, ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import { BunkerNames } from '../../packages/worker/src/network/host/BunkerNames.js';
import { WorkerNetwork } from '../../packages/worker/src/network/WorkerNetwork.js';
import { runCommand } from '../../packages/worker/src/providers/host/runCommand.js';
import { FakeInternet, INET } from './fakeInternet.js';
import { adminKeyOf, destroyLeftoverBunkers, eventually, FAST_INTERVALS, IMAGE_DIR, ServerProcess, tempDataDir } from './harness.js';
import { networkObjects } from './kernelObjects.js';

const PREFIX = 'sbe';
const SUBNET = '10.216.0.0/24';

/** Runs the probes (JSON argv) in threads; prints one JSON array of results. */
const PROBE = `
import json, socket, struct, sys, random, errno
from concurrent.futures import ThreadPoolExecutor
LIMIT = 2.0
TYPES = {'A': 1, 'TXT': 16, 'AAAA': 28}
def query(name, qtype):
    q = struct.pack('!HHHHHH', random.randint(0, 65535), 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(l)]) + l.encode() for l in name.split('.')) + b'\\0'
    return q + struct.pack('!HH', TYPES[qtype], 1)
def recv_all(s):
    data = b''
    while True:
        d = s.recv(4096)
        if not d: return data
        data += d
def run(p):
    k = p['kind']
    try:
        if k == 'self':
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect(('198.19.1.10', 9))
            gw = [l.split() for l in open('/proc/net/route').read().splitlines()[1:] if l.split()[1] == '00000000'][0][2]
            return {'ok': True, 'address': s.getsockname()[0], 'gateway': socket.inet_ntoa(struct.pack('<I', int(gw, 16)))}
        if k == 'resolve':
            return {'ok': True, 'data': sorted({a[4][0] for a in socket.getaddrinfo(p['name'], 80, socket.AF_INET)})}
        if k == 'dns':
            q = query(p['name'], p.get('type', 'A'))
            if p.get('proto', 'udp') == 'udp':
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(LIMIT); s.sendto(q, (p['server'], 53)); r = s.recv(4096)
            else:
                s = socket.create_connection((p['server'], 53), timeout=LIMIT); s.sendall(struct.pack('!H', len(q)) + q)
                hdr = s.recv(2); n = struct.unpack('!H', hdr)[0]; r = b''
                while len(r) < n: r += s.recv(n - len(r))
            return {'ok': True, 'rcode': r[3] & 15, 'answers': struct.unpack('!H', r[6:8])[0]}
        if k == 'http':
            s = socket.create_connection((p['host'], p.get('port', 80)), timeout=LIMIT)
            s.sendall(b'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')
            return {'ok': True, 'data': recv_all(s).split(b'\\r\\n\\r\\n', 1)[-1].decode()}
        if k == 'tcp':
            socket.create_connection((p['host'], p['port']), timeout=LIMIT).close(); return {'ok': True}
        if k == 'udp':
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(LIMIT); s.sendto(b'ping', (p['host'], p['port']))
            return {'ok': True, 'data': s.recv(100).decode()}
        if k == 'icmp':
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); s.settimeout(LIMIT)
            s.sendto(struct.pack('!BBHHH', 8, 0, 0, 0, 1) + b'sbprobe!', (p['host'], 0)); s.recv(100); return {'ok': True}
    except socket.timeout:
        return {'ok': False, 'err': 'TIMEOUT'}
    except socket.gaierror as e:
        return {'ok': False, 'err': 'NXDOMAIN' if e.errno == socket.EAI_NONAME else 'EAI%d' % e.errno}
    except OSError as e:
        return {'ok': False, 'err': errno.errorcode.get(e.errno, str(e))}
probes = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(probes)) as ex: print(json.dumps(list(ex.map(run, probes))))
`;

/** Waits for eth0's IPv6 link-local address to finish DAD; prints it (as in /proc/net/if_inet6, grouped). */
const LINK_LOCAL = `
import time
end = time.time() + 20
while time.time() < end:
    for l in open('/proc/net/if_inet6'):
        a, idx, plen, scope, flags, name = l.split()
        if name == 'eth0' and a.startswith('fe80') and not int(flags, 16) & 0x40:
            print(':'.join(a[i:i + 4] for i in range(0, 32, 4))); raise SystemExit
    time.sleep(0.2)
print('NONE')
`;

/** Accepts one TCP connection on [::]:7200 and greets it with the bunker's hostname; prints the peer. */
const L2_SERVER = `
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', 7200)); s.listen(1); s.settimeout(25)
c, addr = s.accept(); c.sendall(('hello from ' + socket.gethostname().replace('-', '_', 1)).encode()); c.close(); print(addr[0])
`;

/** Connects to argv[1] (link-local, over eth0) port 7200, retrying while the server starts; prints what it got. */
const L2_CLIENT = `
import socket, sys, time
addr = sys.argv[1]; idx = socket.if_nametoindex('eth0'); end = time.time() + 20
while True:
    try:
        c = socket.socket(socket.AF_INET6); c.settimeout(2); c.connect((addr, 7200, 0, idx)); print(c.recv(200).decode()); break
    except OSError as e:
        if time.time() > end: print('ERR', e); break
        time.sleep(0.3)
`;

interface Result {
  ok: boolean;
  err?: string;
  data?: string | string[];
  rcode?: number;
  answers?: number;
  address?: string;
  gateway?: string;
}
type Probe = Record<string, string | number>;

async function probe(b: Bunker, probes: Probe[]): Promise<Result[]> {
  const r = await b.exec(['python3', '-c', PROBE, JSON.stringify(probes)], { timeoutS: 30 });
  assert.equal(r.exit_code, 0, r.stderr);
  return JSON.parse(r.stdout) as Result[];
}

const skip = process.getuid?.() !== 0 ? 'needs root (netns, nft, tc)' : false;

/** Why this host runs no microVM (the scenario that needs one is skipped), or false. */
function microvmSkip(): string | false {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'qemu-system-x86_64 is not installed';
  }
  const guest = process.env.SCAIBUNKER_GUEST_DIR ?? '/var/lib/scaibunker/guest';
  return existsSync(join(guest, 'guest.json')) ? false : 'no guest kernel (run scripts/build-guest-kernel.sh)';
}

/**
 * busybox sh in a `minimal` microVM: an allowed name, a denied name, an address no answer gave,
 * another resolver. HTTP by hand over `nc` (Debian's static busybox `wget` segfaults).
 */
const VM_PROBE = `
get() { out=$(printf 'GET / HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n' | nc -w 3 "$1" 80 2>&1); rc=$?; echo "$1:$(echo "$out" | tail -n1) rc=$rc"; }
get allowed.example
get blocked.example
get ${INET.hosts['pypi.org']}
nslookup -type=a blocked.example ${INET.dns} >/dev/null 2>&1; echo "nslookup rc=$?"
grep -c '^nameserver ' /etc/resolv.conf
`;

describe('network profiles through serve', { skip }, () => {
  const data = tempDataDir();
  let inet: FakeInternet | undefined;
  let server: ServerProcess | undefined;
  let client: ScaiBunkerClient;
  let port: number;
  const bunkers: Bunker[] = [];

  const serveArgs = () => [
    'serve',
    '--host',
    '0.0.0.0', // the controller listens on every host address: bunkers must still not reach it
    '--port',
    String(port || 0),
    '--data-dir',
    data.dir,
    '--image-dir',
    IMAGE_DIR,
    '--dns-upstream',
    `${INET.dns}:53`,
    '--bunker-subnet',
    SUBNET,
    '--network',
    'auto',
    '--network-name-prefix',
    PREFIX,
    ...FAST_INTERVALS,
  ];

  async function startServer(): Promise<void> {
    server = await ServerProcess.start(serveArgs());
    port = Number(new URL(server.url).port);
    client = new ScaiBunkerClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: adminKeyOf(data.dir) });
  }

  async function create(network: Record<string, unknown>): Promise<Bunker> {
    const b = await Bunker.create({ image: 'python', ...network }, client);
    bunkers.push(b);
    return b;
  }

  before(async () => {
    inet = await FakeInternet.start();
    await startServer();
  });

  after(async () => {
    for (const b of bunkers) await b.terminate().catch(() => undefined);
    await server?.kill();
    await destroyLeftoverBunkers(join(data.dir, 'worker')).catch(() => undefined);
    // Whatever a failed test left: a worker network with no live bunkers removes every `sbe` object.
    const net = await WorkerNetwork.open({
      dataDir: join(data.dir, 'worker'),
      namePrefix: PREFIX,
      subnet: SUBNET,
      dnsUpstream: { host: INET.dns, port: 53 },
    });
    await net.reconcile(new Set());
    for (const id of net.bridgeIds()) await net.deleteBridge(id);
    await net.close();
    await inet?.stop();
    data.remove();
  });

  test('the worker offers every profile it plumbs', async () => {
    const [w] = await client.workers.list();
    assert.deepEqual([...(w?.network_profiles ?? [])].sort(), ['allowlisted', 'isolated', 'registry', 'transit', 'unrestricted']);
  });

  test('registry: registry names resolve and connect on 80/443; every other name, address, protocol and resolver fails', async () => {
    const b = await create({ network_profile: 'registry' });
    const [self] = await probe(b, [{ kind: 'self' }]);
    const r = await probe(b, [
      { kind: 'resolve', name: 'pypi.org' },
      { kind: 'http', host: 'pypi.org' },
      { kind: 'resolve', name: 'blocked.example' },
      // Other resolvers, over UDP and TCP: redirected to the responder, which denies the name.
      { kind: 'dns', server: INET.dns, name: 'blocked.example', proto: 'udp' },
      { kind: 'dns', server: INET.dns, name: 'blocked.example', proto: 'tcp' },
      { kind: 'dns', server: '8.8.8.8', name: 'pypi.org', proto: 'udp' },
      // TXT for an allowed name: empty (the upstream has a TXT record for it).
      { kind: 'dns', server: INET.dns, name: 'pypi.org', type: 'TXT' },
      // An address no allowed answer gave, a hard-coded DoT/DoH-style connect, UDP (QUIC) and ICMP.
      { kind: 'http', host: INET.hosts['allowed.example'] as string },
      { kind: 'tcp', host: INET.unnamed, port: 443 },
      { kind: 'udp', host: INET.hosts['pypi.org'] as string, port: 9999 },
      { kind: 'icmp', host: INET.hosts['pypi.org'] as string },
      // The controller's port on the host, through the gateway and through another host address.
      { kind: 'tcp', host: self?.gateway as string, port },
      { kind: 'tcp', host: INET.rootAddress, port },
    ]);
    assert.deepEqual(r[0], { ok: true, data: [INET.hosts['pypi.org']] });
    assert.deepEqual(r[1], { ok: true, data: 'pypi.org' });
    assert.deepEqual(r[2], { ok: false, err: 'NXDOMAIN' });
    assert.deepEqual(r[3], { ok: true, rcode: 3, answers: 0 }, 'a direct UDP query to another resolver is answered by the responder');
    assert.deepEqual(r[4], { ok: true, rcode: 3, answers: 0 }, 'so is one over TCP');
    assert.deepEqual(r[5], { ok: true, rcode: 0, answers: 1 });
    assert.deepEqual(r[6], { ok: true, rcode: 0, answers: 0 }, 'no TXT answers: no exfiltration channel');
    for (const [i, what] of [
      [7, 'an unresolved address'],
      [8, 'a hard-coded address on 443'],
      [9, 'UDP'],
      [10, 'ICMP'],
      [11, "the controller's port via the gateway"],
      [12, "the controller's port via another host address"],
    ] as const) {
      assert.equal(r[i]?.ok, false, `${what} must fail: ${JSON.stringify(r[i])}`);
    }
  });

  test('allowlisted: exactly its hostnames (one-label wildcards), and its own address set', async () => {
    const b = await create({ network_profile: 'allowlisted', network_allowlist: ['allowed.example', '*.wild.example'] });
    const r = await probe(b, [
      { kind: 'http', host: 'allowed.example' },
      { kind: 'http', host: 'a.wild.example' },
      { kind: 'resolve', name: 'wild.example' },
      { kind: 'resolve', name: 'pypi.org' },
      // pypi.org's address is in the registry bunker's set, not in this one's.
      { kind: 'http', host: INET.hosts['pypi.org'] as string },
    ]);
    assert.deepEqual(r[0], { ok: true, data: 'allowed.example' });
    assert.deepEqual(r[1], { ok: true, data: 'a.wild.example' });
    assert.deepEqual(r[2], { ok: false, err: 'NXDOMAIN' }, '*.wild.example does not match the bare domain');
    assert.deepEqual(r[3], { ok: false, err: 'NXDOMAIN' });
    assert.equal(r[4]?.ok, false, JSON.stringify(r[4]));
  });

  test('a microVM bunker (allowlisted): its NIC sits behind the same host-side rules; terminating it leaves none of its objects', {
    skip: microvmSkip(),
    timeout: 120_000,
  }, async () => {
    const b = await create({
      image: 'minimal',
      isolation: 'microvm',
      memory_mb: 256,
      disk_mb: 128,
      network_profile: 'allowlisted',
      network_allowlist: ['allowed.example'],
    });
    bunkers.splice(bunkers.indexOf(b), 1); // terminated in the finally below, pass or fail
    try {
      const r = await b.exec(['sh', '-c', VM_PROBE], { timeoutS: 60 });
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], 'allowed.example:allowed.example rc=0', r.stdout + r.stderr);
      assert.match(lines[1] ?? '', /^blocked\.example:.*bad address.* rc=1$/, 'a name not on the allowlist does not resolve');
      assert.match(lines[2] ?? '', /^198\.19\.1\.10:.*refused.* rc=1$/, 'an address no allowed answer gave is rejected');
      assert.equal(lines[3], 'nslookup rc=1', 'another resolver is answered by the responder, which denies the name');
      assert.equal(lines[4], '1', 'the guest has the nameserver a container gets');
    } finally {
      assert.equal((await b.terminate()).state, 'terminated');
    }
    const key = new BunkerNames(PREFIX).key(b.id);
    assert.deepEqual(
      (await networkObjects(PREFIX)).filter((o) => o.includes(key)),
      [],
      'no netns, veth, ifb, table or qdisc of the VM is left',
    );
    assert.equal(existsSync(join(data.dir, 'worker', 'microvm', 'vms', b.id)), false, 'the VM directory is gone');
  });

  test('unrestricted: any public address and protocol; never private ranges, the host or another bunker', async () => {
    const other = bunkers[0] as Bunker;
    const [otherSelf] = await probe(other, [{ kind: 'self' }]);
    const b = await create({ network_profile: 'unrestricted' });
    const [self] = await probe(b, [{ kind: 'self' }]);
    const r = await probe(b, [
      { kind: 'http', host: INET.unnamed },
      { kind: 'http', host: 'blocked.example' },
      { kind: 'udp', host: INET.unnamed, port: 9999 },
      { kind: 'icmp', host: INET.unnamed },
      { kind: 'tcp', host: otherSelf?.address as string, port: 80 },
      { kind: 'tcp', host: self?.gateway as string, port },
      { kind: 'tcp', host: INET.rootAddress, port },
      { kind: 'tcp', host: '192.168.77.10', port: 80 },
    ]);
    assert.deepEqual(r[0], { ok: true, data: 'unnamed' });
    assert.deepEqual(r[1], { ok: true, data: 'blocked.example' });
    assert.deepEqual(r[2], { ok: true, data: 'echo:unnamed' });
    assert.deepEqual(r[3], { ok: true });
    for (const i of [4, 5, 6, 7]) assert.equal(r[i]?.ok, false, JSON.stringify(r[i]));
  });

  test("unrestricted: every flow ends up in the bunker's audit batches, with bytes and the hostname it resolved", async () => {
    const b = await create({ network_profile: 'unrestricted' });
    const [self] = await probe(b, [{ kind: 'self' }]);
    const r = await probe(b, [
      { kind: 'http', host: 'blocked.example' },
      { kind: 'http', host: INET.unnamed },
      { kind: 'udp', host: INET.unnamed, port: 9999 },
    ]);
    assert.ok(
      r.every((x) => x.ok),
      JSON.stringify(r),
    );
    bunkers.splice(bunkers.indexOf(b), 1);
    await b.terminate(); // its remaining connections end here, and are reported now
    const flows = await eventually('three flows in the audit batches', async () => {
      const all: FlowRecord[] = [];
      for await (const batch of b.auditBatchPages()) all.push(...(await b.auditBatch(batch.name)));
      const wanted = all.filter((f) => f.dst !== self?.gateway);
      return wanted.length >= 3 ? wanted : undefined;
    });
    const named = flows.find((f) => f.dst === INET.hosts['blocked.example']);
    assert.equal(named?.hostname, 'blocked.example');
    assert.equal(named?.proto, 'tcp');
    assert.equal(named?.dport, 80);
    const unnamed = flows.find((f) => f.dst === INET.unnamed && f.proto === 'tcp');
    assert.equal(unnamed?.hostname, null);
    const udp = flows.find((f) => f.dst === INET.unnamed && f.proto === 'udp');
    assert.equal(udp?.dport, 9999);
    for (const f of [named, unnamed, udp]) {
      assert.equal(f?.bunker_id, b.id);
      assert.equal(f?.src, self?.address);
      assert.ok((f?.bytes_out ?? 0) > 0 && (f?.bytes_in ?? 0) > 0, JSON.stringify(f));
      assert.ok(f?.start_us !== null && f?.end_us !== null && (f?.start_us ?? 0) <= (f?.end_us ?? 0), JSON.stringify(f));
    }
    // Another tenant learns nothing of them.
    const tenant = await client.admin.createTenant('net-other');
    const { key } = await client.admin.createApiKey(tenant.id, 'other', ['scaibunker:read']);
    const stranger = await Bunker.connect(b.id, new ScaiBunkerClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: key })).catch(
      (e: unknown) => e,
    );
    assert.ok(stranger instanceof ScaiBunkerError && stranger.code === 'BUNKER_NOT_FOUND', String(stranger));
    await assert.rejects(
      b.auditBatch('0000000000000001-1.ndjson'),
      (e: unknown) => e instanceof ScaiBunkerError && e.code === 'AUDIT_BATCH_NOT_FOUND',
    );
  });

  test('without the permission: NETWORK_PROFILE_DENIED before anything is made', async () => {
    const tenant = await client.admin.createTenant('net-denied');
    const { key } = await client.admin.createApiKey(tenant.id, 'plain', ['scaibunker:create', 'scaibunker:read']);
    const plain = new ScaiBunkerClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: key });
    await assert.rejects(
      Bunker.create({ image: 'python', network_profile: 'unrestricted' }, plain),
      (e: unknown) => e instanceof ScaiBunkerError && e.code === 'NETWORK_PROFILE_DENIED',
    );
  });

  test('a worker restart puts back the rules of running bunkers (removed out of band meanwhile)', async () => {
    const b = bunkers[0] as Bunker;
    const tables = (await runCommand('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.startsWith(`table inet ${PREFIX}_`));
    assert.ok(tables.length >= 3, tables.join('\n'));
    await server?.kill('SIGKILL');
    for (const t of tables) await runCommand('nft', ['delete', ...t.split(' ').slice(1)]);
    await startServer();
    const after = (await runCommand('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => l.startsWith(`table inet ${PREFIX}_`));
    assert.deepEqual(after.sort(), tables.sort());
    const r = await probe(b, [
      { kind: 'http', host: 'pypi.org' },
      { kind: 'resolve', name: 'blocked.example' },
    ]);
    assert.deepEqual(r[0], { ok: true, data: 'pypi.org' });
    assert.deepEqual(r[1], { ok: false, err: 'NXDOMAIN' });
  });

  test("transit: two bunkers on a tenant admin's bridge reach each other at layer 2 and nothing else; the bridge goes last", async () => {
    const tenant = await client.admin.createTenant('transit');
    const { key } = await client.admin.createApiKey(tenant.id, 'admin', ['scaibunker:admin:tenant']);
    const tc = new ScaiBunkerClient({ baseUrl: `http://127.0.0.1:${port}`, apiKey: key });
    const br = await tc.bridges.create('lan');
    assert.equal(br.state, 'ready');
    const a = await Bunker.create({ image: 'python', network_profile: 'transit', interfaces: [{ bridge_id: br.id }] }, tc);
    bunkers.push(a);
    const b = await Bunker.create(
      { image: 'python', network_profile: 'transit', interfaces: [{ bridge_id: br.id, mac: '02:00:00:e2:e0:02' }] },
      tc,
    );
    bunkers.push(b);
    // The python image has no `ip` and bunkers have no CAP_NET_ADMIN: they talk over the IPv6
    // link-local addresses their interfaces get on their own (EUI-64 of the MAC).
    const linkLocal = await b.exec(['python3', '-c', LINK_LOCAL], { timeoutS: 30 });
    assert.match(linkLocal.stdout.trim(), /^fe80:0000:0000:0000:0000:00ff:fee2:e002$/, linkLocal.stdout + linkLocal.stderr);
    const served = b.exec(['python3', '-c', L2_SERVER], { timeoutS: 30 });
    const reached = await a.exec(['python3', '-c', L2_CLIENT, linkLocal.stdout.trim()], { timeoutS: 30 });
    assert.equal(reached.stdout.trim(), `hello from ${b.id}`, reached.stderr);
    assert.match((await served).stdout, /^fe80:/);
    // Nothing else: no route, no DNS, not the fake internet, not the controller.
    const r = await probe(a, [
      { kind: 'tcp', host: INET.unnamed, port: 80 },
      { kind: 'udp', host: INET.unnamed, port: 9999 },
      { kind: 'resolve', name: 'pypi.org' },
      { kind: 'dns', server: INET.dns, name: 'pypi.org', proto: 'udp' },
      { kind: 'tcp', host: INET.rootAddress, port },
    ]);
    for (const x of r) assert.equal(x.ok, false, JSON.stringify(r));

    await assert.rejects(tc.bridges.delete(br.id), (e: unknown) => e instanceof ScaiBunkerError && e.code === 'BRIDGE_CONFLICT');
    for (const x of [a, b]) {
      bunkers.splice(bunkers.indexOf(x), 1);
      assert.equal((await x.terminate()).state, 'terminated');
    }
    await tc.bridges.delete(br.id);
    assert.deepEqual(await tc.bridges.list(), []);
    assert.deepEqual(
      (await networkObjects(PREFIX)).filter((o) => /^(sbe[tbp]|table bridge)/.test(o)),
      [],
      'no transit netns, port, bridge or guard table is left',
    );
  });

  test('terminating every bunker leaves no netns, link, table or qdisc behind', async () => {
    for (const b of bunkers.splice(0)) assert.equal((await b.terminate()).state, 'terminated');
    assert.deepEqual(await networkObjects(PREFIX), []);
  });
});
