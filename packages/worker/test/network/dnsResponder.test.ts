/**
 * The worker's DNS responder and its nft set writer against real parts on this machine: a
 * throwaway network namespace plays the internet, reached over a veth pair on 10.123.x.0/30 and
 * holding a tiny authoritative DNS server (a child node process using dns-packet, logging every
 * question it gets); a throwaway `inet sbtest_<random>` table holds the `allow4` / `allow6` sets.
 * Bunkers are told apart by source address: clients bind 127.0.0.2 (a known bunker) or 127.0.0.3
 * (a stranger) and query the responder on 127.0.0.1.
 *
 *   node --import tsx --test packages/worker/test/network/dnsResponder.test.ts
 *
 * Needs root, `ip` and `nft`. The after hooks delete the namespace (and with it the veth pair),
 * the tables and the server process even when a test fails.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { type DnsPolicy, DnsResponder } from '../../src/network/dns/DnsResponder.js';
import { NftSetWriter, type SetAddress } from '../../src/network/dns/NftSetWriter.js';

const isRoot = process.getuid?.() === 0;
const hasTools = (() => {
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = !isRoot ? 'needs root' : !hasTools ? 'needs ip and nft' : false;

const workerDir = join(import.meta.dirname, '..', '..');
const KNOWN = '127.0.0.2';
const STRANGER = '127.0.0.3';
const PATTERNS = ['registry.npmjs.org', '*.example.com'];

/** The fake internet's authoritative server (CommonJS, run with `node -e`): argv host port. */
const FAKE_DNS = String.raw`
const dp = require('dns-packet');
const dgram = require('node:dgram');
const net = require('node:net');
const [host, port] = process.argv.slice(1);
const zone = {
  'registry.npmjs.org': { A: ['10.200.0.1'], AAAA: ['fd00:200::1'], TXT: ['leak'], ttl: 120 },
  'a.example.com': { A: ['10.200.0.2'], ttl: 300 },
  'example.com': { A: ['10.200.0.3'], ttl: 300 },
  'a.b.example.com': { A: ['10.200.0.4'], ttl: 300 },
  'cdn.example.com': { CNAME: 'edge.cdnhost.net', ttl: 600 },
  'edge.cdnhost.net': { CNAME: 'e1.cdnhost.net', ttl: 60 },
  'e1.cdnhost.net': { A: ['10.200.0.5'], ttl: 30 },
  'big.example.com': { A: Array.from({ length: 40 }, (_, i) => '10.201.0.' + (i + 1)), ttl: 200 },
};
function lookup(name) {
  const n = name.toLowerCase().replace(/\.$/, '');
  if (/^sync\d+\.example\.com$/.test(n)) return { A: ['10.200.0.9'], ttl: 10 };
  return zone[n];
}
function answer(query, proto) {
  const q = query.questions[0];
  console.log(JSON.stringify({ proto, name: q.name, type: q.type, id: query.id, additionals: (query.additionals || []).length }));
  const answers = [];
  let name = q.name;
  let rec = lookup(name);
  if (!rec) return dp.encode({ type: 'response', id: query.id, flags: 3 | dp.RECURSION_AVAILABLE, questions: [q] });
  for (let i = 0; rec && rec.CNAME && i < 8; i++) {
    answers.push({ type: 'CNAME', name, ttl: rec.ttl, data: rec.CNAME });
    name = rec.CNAME;
    rec = lookup(name);
  }
  if (rec && rec[q.type]) for (const data of rec[q.type]) answers.push({ type: q.type, name, ttl: rec.ttl, data });
  if (q.name.toLowerCase() === 'cdn.example.com') {
    // Records off the chain that a hostile upstream might add: must never reach the sets.
    answers.push({ type: 'A', name: 'unrelated.evil.net', ttl: 300, data: '10.200.0.66' });
    answers.push({ type: 'A', name: 'other.cdnhost.net', ttl: 300, data: '10.200.0.67' });
    answers.push({ type: 'CNAME', name: 'x.cdnhost.net', ttl: 300, data: 'y.evil.net' });
  }
  return dp.encode({ type: 'response', id: query.id, flags: dp.RECURSION_AVAILABLE, questions: [q], answers });
}
const udp = dgram.createSocket('udp4');
udp.on('message', (msg, r) => {
  let out = answer(dp.decode(msg), 'udp');
  if (out.length > 512) {
    const q = dp.decode(out);
    out = dp.encode({ type: 'response', id: q.id, flags: dp.TRUNCATED_RESPONSE | dp.RECURSION_AVAILABLE, questions: q.questions });
  }
  udp.send(out, r.port, r.address);
});
const tcp = net.createServer((s) => {
  let buf = Buffer.alloc(0);
  s.on('error', () => {});
  s.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const len = buf.readUInt16BE(0);
      const out = answer(dp.decode(buf.subarray(2, 2 + len)), 'tcp');
      buf = buf.subarray(2 + len);
      const head = Buffer.alloc(2);
      head.writeUInt16BE(out.length);
      s.write(Buffer.concat([head, out]));
    }
  });
});
udp.bind(Number(port), host, () => tcp.listen(Number(port), host, () => console.log('ready')));
`;

interface SeenQuery {
  proto: string;
  name: string;
  type: string;
  id: number;
  additionals: number;
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function shQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // cleanup of something that may not exist
  }
}

/** Elements of `inet <table> <set>` as addr → timeout seconds. */
function setElements(table: string, set: string): Map<string, number> {
  const json = JSON.parse(sh('nft', ['-j', 'list', 'set', 'inet', table, set])) as {
    nftables: Array<{ set?: { elem?: Array<{ elem?: { val: string; timeout: number } } | string> } }>;
  };
  const out = new Map<string, number>();
  for (const item of json.nftables) {
    for (const e of item.set?.elem ?? []) {
      if (typeof e === 'string') out.set(e, 0);
      else if (e.elem) out.set(e.elem.val, e.elem.timeout);
    }
  }
  return out;
}

/** Rejects if `p` has not settled in `ms`: a guard against hangs, never an assertion on time. */
function guard<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

let nextId = 1;
function query(name: string, type: dnsPacket.RecordType, extra: Partial<dnsPacket.Packet> = {}): { id: number; buf: Buffer } {
  const id = nextId++ & 0xffff;
  return {
    id,
    buf: dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }], ...extra }),
  };
}

/**
 * Sends `packets` over UDP from `source` and resolves with the reply to the last one. `onReply`
 * runs synchronously in the receive handler, before anything else can happen in this process.
 * Replies to earlier packets are collected in `others`.
 */
async function udpAsk(
  port: number,
  source: string,
  packets: Buffer[],
  onReply?: (res: dnsPacket.DecodedPacket) => void,
): Promise<{ res: dnsPacket.DecodedPacket; others: dnsPacket.DecodedPacket[] }> {
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, source, resolve));
  const lastId = packets[packets.length - 1]!.readUInt16BE(0);
  const others: dnsPacket.DecodedPacket[] = [];
  try {
    const res = await guard(
      new Promise<dnsPacket.DecodedPacket>((resolve) => {
        sock.on('message', (msg) => {
          const res = dnsPacket.decode(msg);
          if (res.id !== lastId) {
            others.push(res);
            return;
          }
          onReply?.(res);
          resolve(res);
        });
        for (const p of packets) sock.send(p, port, '127.0.0.1');
      }),
      10_000,
      'udp query',
    );
    return { res, others };
  } finally {
    sock.close();
  }
}

/** A TCP connection from `source` with DNS framing; `replies` collects decoded answers. */
async function tcpConnect(port: number, source: string): Promise<{ sock: Socket; next(): Promise<dnsPacket.DecodedPacket> }> {
  const sock = connect({ port, host: '127.0.0.1', localAddress: source });
  await once(sock, 'connect');
  let buf: Buffer = Buffer.alloc(0);
  const ready: dnsPacket.DecodedPacket[] = [];
  const waiting: Array<(r: dnsPacket.DecodedPacket) => void> = [];
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
      const res = dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      buf = buf.subarray(2 + buf.readUInt16BE(0));
      const w = waiting.shift();
      if (w) w(res);
      else ready.push(res);
    }
  });
  sock.on('error', () => {});
  return {
    sock,
    next: () => {
      const r = ready.shift();
      return guard(r ? Promise.resolve(r) : new Promise((resolve) => waiting.push(resolve)), 10_000, 'tcp reply');
    },
  };
}

function frame(p: Buffer): Buffer {
  const head = Buffer.alloc(2);
  head.writeUInt16BE(p.length);
  return Buffer.concat([head, p]);
}

function rcode(res: dnsPacket.DecodedPacket): string {
  return (res as dnsPacket.DecodedPacket & { rcode: string }).rcode;
}

function addrs(res: dnsPacket.DecodedPacket): string[] {
  return (res.answers ?? []).flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : []));
}

describe('dns responder', { skip }, () => {
  const tag = randomBytes(3).toString('hex');
  const ns = `sbt_inet_${tag}`;
  const vethHost = `sbt${tag}h`;
  const vethNs = `sbt${tag}n`;
  const octet = 1 + (randomBytes(1)[0]! % 250);
  const hostAddr = `10.123.${octet}.1`;
  const upstreamAddr = `10.123.${octet}.2`;
  const table = `sbtest_${tag}`;
  const tables = [table];
  let server: ChildProcess | undefined;
  const seen: SeenQuery[] = [];
  const seenWaiters: Array<{ match: (q: SeenQuery) => boolean; resolve: () => void }> = [];
  let writer: NftSetWriter;
  let responder: DnsResponder;
  let port = 0;
  const order: string[] = [];
  const answered: Array<{ bunkerId: string; name: string; addrs: readonly string[] }> = [];
  const policies = new Map<string, DnsPolicy>([[KNOWN, { bunkerId: 'b-known', table, patterns: PATTERNS }]]);

  /** Resolves once the fake upstream has logged a question matching `match`. */
  function upstreamSaw(match: (q: SeenQuery) => boolean): Promise<void> {
    if (seen.some(match)) return Promise.resolve();
    return guard(new Promise<void>((resolve) => seenWaiters.push({ match, resolve })), 10_000, 'upstream log');
  }

  /** A question the upstream must see; once it has, everything sent before it was logged too. */
  let syncN = 0;
  async function syncUpstream(): Promise<void> {
    const name = `sync${++syncN}.example.com`;
    const { res } = await udpAsk(port, KNOWN, [query(name, 'A').buf]);
    assert.equal(rcode(res), 'NOERROR');
    await upstreamSaw((q) => q.name === name);
  }

  function makeTable(name: string): void {
    sh('nft', ['add', 'table', 'inet', name]);
    sh('nft', ['add', 'set', 'inet', name, 'allow4', '{ type ipv4_addr; flags timeout; }']);
    sh('nft', ['add', 'set', 'inet', name, 'allow6', '{ type ipv6_addr; flags timeout; }']);
  }

  before(async () => {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs, 'netns', ns]);
    sh('ip', ['addr', 'add', `${hostAddr}/30`, 'dev', vethHost]);
    sh('ip', ['link', 'set', vethHost, 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${upstreamAddr}/30`, 'dev', vethNs]);
    sh('ip', ['-n', ns, 'link', 'set', vethNs, 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    makeTable(table);

    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', FAKE_DNS, upstreamAddr, '53'], {
      cwd: workerDir,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    server = child;
    const lines = createInterface({ input: child.stdout! });
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`fake dns exited (${code})`)));
      lines.on('line', (line) => {
        if (line === 'ready') {
          resolve();
          return;
        }
        const q = JSON.parse(line) as SeenQuery;
        seen.push(q);
        for (let i = seenWaiters.length - 1; i >= 0; i--) {
          const w = seenWaiters[i]!;
          if (w.match(q)) {
            seenWaiters.splice(i, 1);
            w.resolve();
          }
        }
      });
    });
    await guard(ready, 15_000, 'fake dns start');

    writer = new NftSetWriter();
    responder = new DnsResponder({
      host: '127.0.0.1',
      port: 0,
      upstream: { host: upstreamAddr, port: 53 },
      policyFor: (ip) => policies.get(ip),
      sets: {
        add: async (t: string, v4: readonly SetAddress[], v6: readonly SetAddress[]) => {
          await writer.add(t, v4, v6);
          order.push(`inserted ${[...v4, ...v6].map((a) => a.addr).join(',')}`);
        },
      },
      onAnswer: (bunkerId, name, a) => answered.push({ bunkerId, name, addrs: a }),
    });
    await responder.start();
    port = responder.port();
  });

  after(async () => {
    await responder?.stop();
    writer?.close();
    server?.kill('SIGKILL');
    shQuiet('ip', ['netns', 'del', ns]);
    shQuiet('ip', ['link', 'del', vethHost]);
    for (const t of tables) shQuiet('nft', ['delete', 'table', 'inet', t]);
  });

  test('an allowed name is answered and its addresses are in the sets before the reply arrives', async () => {
    const q4 = query('registry.npmjs.org', 'A');
    let setAtReply = new Map<string, number>();
    const { res } = await udpAsk(port, KNOWN, [q4.buf], () => {
      order.push('reply');
      setAtReply = setElements(table, 'allow4');
    });
    assert.equal(rcode(res), 'NOERROR');
    assert.equal(res.id, q4.id);
    assert.deepEqual(addrs(res), ['10.200.0.1']);
    assert.equal((res.answers?.[0] as dnsPacket.StringAnswer | undefined)?.ttl, 120, 'reply TTL is the upstream TTL');
    assert.equal(setAtReply.get('10.200.0.1'), 150, 'element timeout = max(TTL 120, floor 60) + grace 30');
    assert.deepEqual(order.slice(-2), ['inserted 10.200.0.1', 'reply']);
    assert.deepEqual(answered.at(-1), { bunkerId: 'b-known', name: 'registry.npmjs.org', addrs: ['10.200.0.1'] });

    let set6 = new Map<string, number>();
    const { res: res6 } = await udpAsk(port, KNOWN, [query('REGISTRY.npmjs.org.', 'AAAA').buf], () => {
      set6 = setElements(table, 'allow6');
    });
    assert.equal(rcode(res6), 'NOERROR');
    assert.deepEqual(addrs(res6), ['fd00:200::1']);
    assert.equal(set6.get('fd00:200::1'), 150);
  });

  test('the upstream gets a fresh query: new id, no EDNS or options from the client', async () => {
    const name = 'a.example.com';
    const q = query(name, 'A', {
      additionals: [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: 4096,
          flags: 0,
          options: [{ code: 'CLIENT_SUBNET', ip: '192.0.2.0', sourcePrefixLength: 24 } as never],
        } as never,
      ],
    });
    const { res } = await udpAsk(port, KNOWN, [q.buf]);
    assert.equal(rcode(res), 'NOERROR');
    assert.deepEqual(addrs(res), ['10.200.0.2']);
    await upstreamSaw((s) => s.name === name);
    const forwarded = seen.filter((s) => s.name === name);
    assert.ok(forwarded.length > 0);
    for (const f of forwarded) {
      assert.equal(f.additionals, 0, 'no OPT record went upstream');
      assert.equal(f.type, 'A');
    }
    assert.ok(setElements(table, 'allow4').has('10.200.0.2'));
  });

  test('names outside the patterns get NXDOMAIN, go nowhere and add nothing; *.example.com is one label deep', async () => {
    for (const name of ['evil.org', 'example.com', 'a.b.example.com', 'registry.npmjs.org.evil.org', 'npmjs.org']) {
      const { res } = await udpAsk(port, KNOWN, [query(name, 'A').buf]);
      assert.equal(rcode(res), 'NXDOMAIN', name);
      assert.equal(res.answers?.length ?? 0, 0);
      assert.equal(res.questions?.[0]?.name, name, 'the question is echoed');
    }
    const { res: txt } = await udpAsk(port, KNOWN, [query('evil.org', 'TXT').buf]);
    assert.equal(rcode(txt), 'NXDOMAIN');
    await syncUpstream();
    for (const name of ['evil.org', 'example.com', 'a.b.example.com', 'registry.npmjs.org.evil.org', 'npmjs.org']) {
      assert.ok(!seen.some((s) => s.name.toLowerCase() === name), `${name} went upstream`);
    }
    const set = setElements(table, 'allow4');
    assert.ok(!set.has('10.200.0.3'), 'bare domain address added');
    assert.ok(!set.has('10.200.0.4'), 'two-label-deep address added');
  });

  test('TXT, MX and ANY for an allowed name: empty NOERROR, nothing but A/AAAA goes upstream', async () => {
    for (const type of ['TXT', 'MX', 'ANY', 'SRV', 'NS'] as dnsPacket.RecordType[]) {
      const { res } = await udpAsk(port, KNOWN, [query('registry.npmjs.org', type).buf]);
      assert.equal(rcode(res), 'NOERROR', type);
      assert.equal(res.answers?.length ?? 0, 0, type);
      assert.equal(res.questions?.[0]?.type, type);
    }
    await syncUpstream();
    assert.deepEqual(
      seen.filter((s) => s.type !== 'A' && s.type !== 'AAAA'),
      [],
      'only A and AAAA questions ever reach the upstream',
    );
  });

  test('a CNAME chain is followed from the query name only; records off the chain are dropped', async () => {
    let setAtReply = new Map<string, number>();
    const { res } = await udpAsk(port, KNOWN, [query('cdn.example.com', 'A').buf], () => {
      setAtReply = setElements(table, 'allow4');
    });
    assert.equal(rcode(res), 'NOERROR');
    assert.deepEqual(
      (res.answers ?? []).map((a) => [a.type, a.name, (a as dnsPacket.StringAnswer).data, a.type === 'OPT' ? 0 : a.ttl]),
      [
        ['CNAME', 'cdn.example.com', 'edge.cdnhost.net', 600],
        ['CNAME', 'edge.cdnhost.net', 'e1.cdnhost.net', 60],
        ['A', 'e1.cdnhost.net', '10.200.0.5', 30],
      ],
    );
    assert.equal(setAtReply.get('10.200.0.5'), 90, 'TTL 30 → floor 60 + grace 30');
    assert.ok(!setAtReply.has('10.200.0.66'));
    assert.ok(!setAtReply.has('10.200.0.67'));
    assert.deepEqual(answered.at(-1), { bunkerId: 'b-known', name: 'cdn.example.com', addrs: ['10.200.0.5'] });
  });

  test('an unknown source gets REFUSED and nothing goes upstream', async () => {
    const name = 'sync-stranger.example.com';
    const { res } = await udpAsk(port, STRANGER, [query(name, 'A').buf]);
    assert.equal(rcode(res), 'REFUSED');
    assert.equal(res.answers?.length ?? 0, 0);
    await syncUpstream();
    assert.ok(!seen.some((s) => s.name === name));
  });

  test('an allowed name the upstream does not know gets the upstream NXDOMAIN', async () => {
    const { res } = await udpAsk(port, KNOWN, [query('nothere.example.com', 'A').buf]);
    assert.equal(rcode(res), 'NXDOMAIN');
  });

  test('upstream down or a failing nft insert gives SERVFAIL', async () => {
    const down = new DnsResponder({
      host: '127.0.0.1',
      port: 0,
      upstream: { host: upstreamAddr, port: 5399 },
      upstreamTimeoutMs: 500,
      policyFor: (ip) => policies.get(ip),
      sets: writer,
    });
    await down.start();
    try {
      const { res } = await udpAsk(down.port(), KNOWN, [query('registry.npmjs.org', 'A').buf]);
      assert.equal(rcode(res), 'SERVFAIL');
      assert.equal(down.stats().failed, 1);
    } finally {
      await down.stop();
    }

    const missing = `sbtest_${tag}_gone`;
    policies.set('127.0.0.4', { bunkerId: 'b-gone', table: missing, patterns: PATTERNS });
    try {
      const { res } = await udpAsk(port, '127.0.0.4', [query('registry.npmjs.org', 'A').buf]);
      assert.equal(rcode(res), 'SERVFAIL', 'no table → nft error → SERVFAIL');
      const { res: ok } = await udpAsk(port, KNOWN, [query('registry.npmjs.org', 'A').buf]);
      assert.equal(rcode(ok), 'NOERROR', 'the writer recovers from an nft error');
    } finally {
      policies.delete('127.0.0.4');
    }
  });

  test('malformed input is dropped without a crash; several questions get FORMERR', async () => {
    const before = responder.stats().malformed;
    const response = dnsPacket.encode({ type: 'response', id: 7, questions: [{ name: 'a.example.com', type: 'A' }] });
    const loop = Buffer.from([0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    const short = Buffer.from([1, 2, 3]);
    const lying = Buffer.from([0, 10, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 3, 97, 98]);
    const garbage = randomBytes(300);
    garbage.writeUInt16BE(0x0100, 2); // a query header with random counts
    const good = query('a.example.com', 'A');
    const { res, others } = await udpAsk(port, KNOWN, [response, loop, short, lying, garbage, good.buf]);
    assert.equal(rcode(res), 'NOERROR');
    assert.deepEqual(others, [], 'nothing answered the malformed datagrams');
    assert.equal(responder.stats().malformed - before, 5);

    const two = dnsPacket.encode({
      type: 'query',
      id: 4242,
      questions: [
        { name: 'a.example.com', type: 'A' },
        { name: 'registry.npmjs.org', type: 'A' },
      ],
    });
    const { res: formerr } = await udpAsk(port, KNOWN, [two]);
    assert.equal(rcode(formerr), 'FORMERR');
    assert.equal(formerr.questions?.length ?? 0, 0);

    const c = await tcpConnect(port, KNOWN);
    const closed = once(c.sock, 'close');
    c.sock.write(frame(randomBytes(40)));
    await guard(closed, 10_000, 'close after a malformed tcp frame');

    const z = await tcpConnect(port, KNOWN);
    const zClosed = once(z.sock, 'close');
    z.sock.write(Buffer.from([0, 0]));
    await guard(zClosed, 10_000, 'close after an empty tcp frame');

    const { res: still } = await udpAsk(port, KNOWN, [query('registry.npmjs.org', 'A').buf]);
    assert.equal(rcode(still), 'NOERROR', 'the responder still answers');
  });

  test('TCP: several queries on one connection; big answers come truncated over UDP and whole over TCP', async () => {
    const { res: udpBig } = await udpAsk(port, KNOWN, [query('big.example.com', 'A').buf]);
    assert.equal(udpBig.flag_tc, true, 'UDP reply over 512 bytes is truncated');
    assert.equal(udpBig.answers?.length ?? 0, 0);

    const c = await tcpConnect(port, KNOWN);
    try {
      const qs = [
        query('big.example.com', 'A'),
        query('registry.npmjs.org', 'AAAA'),
        query('evil.org', 'A'),
        query('registry.npmjs.org', 'TXT'),
      ];
      c.sock.write(Buffer.concat(qs.map((q) => frame(q.buf))));
      const replies = new Map<number, dnsPacket.DecodedPacket>();
      for (let i = 0; i < qs.length; i++) {
        const r = await c.next();
        replies.set(r.id ?? -1, r);
      }
      const big = replies.get(qs[0]!.id)!;
      assert.equal(rcode(big), 'NOERROR');
      assert.equal(addrs(big).length, 40);
      const set = setElements(table, 'allow4');
      for (const a of addrs(big)) assert.equal(set.get(a), 230, `${a}: TTL 200 + grace 30`);
      assert.deepEqual(addrs(replies.get(qs[1]!.id)!), ['fd00:200::1']);
      assert.equal(rcode(replies.get(qs[2]!.id)!), 'NXDOMAIN');
      assert.equal(rcode(replies.get(qs[3]!.id)!), 'NOERROR');
      assert.equal(replies.get(qs[3]!.id)!.answers?.length ?? 0, 0);
      await upstreamSaw((s) => s.name === 'big.example.com' && s.proto === 'tcp');

      const again = query('a.example.com', 'A');
      c.sock.write(frame(again.buf));
      const r = await c.next();
      assert.equal(r.id, again.id);
      assert.deepEqual(addrs(r), ['10.200.0.2']);
    } finally {
      c.sock.destroy();
    }

    const stranger = await tcpConnect(port, STRANGER);
    try {
      stranger.sock.write(frame(query('registry.npmjs.org', 'A').buf));
      assert.equal(rcode(await stranger.next()), 'REFUSED');
    } finally {
      stranger.sock.destroy();
    }
  });

  test('TCP: an idle connection is closed', async () => {
    const idle = new DnsResponder({
      host: '127.0.0.1',
      port: 0,
      upstream: { host: upstreamAddr, port: 53 },
      policyFor: (ip) => policies.get(ip),
      sets: writer,
      tcpIdleMs: 100,
    });
    await idle.start();
    try {
      const c = await tcpConnect(idle.port(), KNOWN);
      await guard(once(c.sock, 'close'), 10_000, 'idle close');
    } finally {
      await idle.stop();
    }
  });

  test('a bunker over its query rate gets REFUSED until its bucket refills; other bunkers are unaffected', async () => {
    let clock = 1_000_000;
    const limited = new DnsResponder({
      host: '127.0.0.1',
      port: 0,
      upstream: { host: upstreamAddr, port: 53 },
      policyFor: (ip) => policies.get(ip),
      sets: writer,
      ratePerBunker: { perSecond: 2, burst: 3 },
      now: () => clock,
    });
    await limited.start();
    try {
      const ask = async (from: string) => rcode((await udpAsk(limited.port(), from, [query('nope.invalid', 'A').buf])).res);
      // Denied names are cheap to answer, and count against the rate all the same.
      assert.deepEqual([await ask(KNOWN), await ask(KNOWN), await ask(KNOWN)], ['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN']);
      assert.equal(await ask(KNOWN), 'REFUSED', 'the burst is spent');
      assert.equal(limited.stats().rate_limited, 1);
      policies.set('127.0.0.5', { bunkerId: 'b-other', table, patterns: PATTERNS });
      assert.equal(await ask('127.0.0.5'), 'NXDOMAIN', 'another bunker has its own bucket');
      clock += 500; // one token back at 2/s
      assert.equal(await ask(KNOWN), 'NXDOMAIN');
      assert.equal(await ask(KNOWN), 'REFUSED');
    } finally {
      policies.delete('127.0.0.5');
      await limited.stop();
    }
  });

  test('stats count answered, denied, refused and failed replies', () => {
    const s = responder.stats();
    assert.ok(s.answered > 0);
    assert.ok(s.denied > 0);
    assert.ok(s.refused > 0);
    assert.ok(s.failed > 0);
    assert.ok(s.rejected > 0);
    assert.ok(s.malformed > 0);
  });
});

describe('nft set writer', { skip }, () => {
  const table = `sbtest_${randomBytes(3).toString('hex')}`;
  const writer = new NftSetWriter();

  before(() => {
    sh('nft', ['add', 'table', 'inet', table]);
    sh('nft', ['add', 'set', 'inet', table, 'allow4', '{ type ipv4_addr; flags timeout; }']);
    sh('nft', ['add', 'set', 'inet', table, 'allow6', '{ type ipv6_addr; flags timeout; }']);
  });

  after(() => {
    writer.close();
    shQuiet('nft', ['delete', 'table', 'inet', table]);
  });

  test('element timeout is max(TTL, 60) + 30 and is never shortened', async () => {
    await writer.add(table, [{ addr: '192.0.2.1', ttlS: 1000 }], []);
    assert.equal(setElements(table, 'allow4').get('192.0.2.1'), 1030);
    await writer.add(table, [{ addr: '192.0.2.1', ttlS: 5 }], []);
    const kept = setElements(table, 'allow4').get('192.0.2.1')!;
    assert.ok(kept >= 1028 && kept <= 1030, `a shorter TTL left ${kept}s`);
    await writer.add(table, [{ addr: '192.0.2.1', ttlS: 2000 }], [{ addr: '2001:db8::1', ttlS: 0 }]);
    assert.equal(setElements(table, 'allow4').get('192.0.2.1'), 2030);
    assert.equal(setElements(table, 'allow6').get('2001:db8::1'), 90);
  });

  test('an element that vanished comes back even though the writer remembers it', async () => {
    await writer.add(table, [{ addr: '192.0.2.2', ttlS: 600 }], []);
    sh('nft', ['delete', 'element', 'inet', table, 'allow4', '{ 192.0.2.2 }']);
    await writer.add(table, [{ addr: '192.0.2.2', ttlS: 600 }], []);
    assert.equal(setElements(table, 'allow4').get('192.0.2.2'), 630);
  });

  test('errors reject the add and the next add still works', async () => {
    await assert.rejects(writer.add(`${table}_missing`, [{ addr: '192.0.2.3', ttlS: 60 }], []), /nft: .*No such file or directory/);
    await assert.rejects(writer.add(table, [{ addr: 'registry.npmjs.org', ttlS: 60 }], []), /not an IPv4 address/);
    await assert.rejects(writer.add(table, [], [{ addr: '192.0.2.3', ttlS: 60 }]), /not an IPv6 address/);
    await assert.rejects(writer.add('t; flush ruleset', [{ addr: '192.0.2.3', ttlS: 60 }], []), /invalid nft table name/);
    await writer.add(table, [{ addr: '192.0.2.4', ttlS: 60 }], []);
    assert.equal(setElements(table, 'allow4').get('192.0.2.4'), 90);
  });

  test('concurrent adds all land, in one nft child', async () => {
    const pid = writer.pid();
    const addrs4 = Array.from({ length: 200 }, (_, i) => `198.51.100.${i}`);
    await Promise.all(addrs4.map((addr) => writer.add(table, [{ addr, ttlS: 300 }], [])));
    const set = setElements(table, 'allow4');
    for (const a of addrs4) assert.equal(set.get(a), 330, a);
    assert.equal(writer.pid(), pid);
  });

  test('commands the nft child had not confirmed when it died are re-sent to a new child', async () => {
    await writer.add(table, [{ addr: '192.0.2.5', ttlS: 60 }], []);
    const pid = writer.pid();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await writer.add(table, [{ addr: '192.0.2.6', ttlS: 60 }], []);
    assert.notEqual(writer.pid(), pid);
    assert.equal(setElements(table, 'allow4').get('192.0.2.6'), 90);
  });
});
