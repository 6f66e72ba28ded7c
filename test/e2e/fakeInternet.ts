/**
 * A fake "internet" on this machine for network-profile tests: a netns behind a veth from the
 * root namespace, holding an authoritative DNS server (UDP + TCP) and HTTP/UDP-echo servers on
 * addresses of 198.19.0.0/16. The root namespace routes only 198.19.1.0/24 there, and the test
 * bunkers only ever target those addresses (or private ones that must fail), so no packet a test
 * makes can leave the machine.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { runCommand } from '../../packages/worker/src/providers/host/runCommand.js';

export const INET = {
  ns: 'sbe2einet',
  hostIf: 'sbe2ewan',
  /** The root namespace's end (the masqueraded source the servers see). */
  rootAddress: '198.19.0.1',
  dns: '198.19.0.2',
  /** Named hosts, each with an HTTP server on 80 and 443 answering `<name>`, and UDP echo on 9999. */
  hosts: {
    'pypi.org': '198.19.1.10',
    'allowed.example': '198.19.1.20',
    'a.wild.example': '198.19.1.21',
    'wild.example': '198.19.1.22',
    'blocked.example': '198.19.1.30',
  } as Record<string, string>,
  /** A routable address no name points at. */
  unnamed: '198.19.1.40',
};

/** `bench.hosts(n)`: `h1.bench.example` … `h<n>.bench.example` on 198.19.2.1 … (one HTTP server on :443 for all). */
export const BENCH = {
  route: '198.19.2.0/24',
  name: (i: number) => `h${i}.bench.example`,
  address: (i: number) => `198.19.2.${i}`,
  port: 443,
};

const ROUTE = '198.19.1.0/24';

/**
 * Every address answers A for its name(s); any name answers TXT "secret" (a would-be exfil channel).
 * HTTP `GET /big?n=BYTES` streams that many bytes (for shaping measurements).
 */
const serverScript = (benchHosts: number) => `
const dgram = require('node:dgram'); const net = require('node:net'); const http = require('node:http');
const packet = require('dns-packet');
const HOSTS = ${JSON.stringify(INET.hosts)};
const BENCH_HOSTS = ${benchHosts};
for (let i = 1; i <= BENCH_HOSTS; i++) HOSTS['h' + i + '.bench.example'] = '198.19.2.' + i;
const UNNAMED = ${JSON.stringify(INET.unnamed)};
function answer(buf) {
  const q = packet.decode(buf); const question = q.questions[0]; const name = question.name.toLowerCase();
  const reply = { id: q.id, type: 'response', flags: packet.AUTHORITATIVE_ANSWER | packet.RECURSION_DESIRED, questions: q.questions, answers: [] };
  if (question.type === 'TXT') reply.answers.push({ name, type: 'TXT', ttl: 60, data: ['secret'] });
  else if (HOSTS[name] && question.type === 'A') reply.answers.push({ name, type: 'A', ttl: 60, data: HOSTS[name] });
  else if (!HOSTS[name]) reply.rcode = 'NXDOMAIN';
  return packet.encode(reply);
}
const serve = (name) => (req, res) => {
  const big = /^\\/big\\?n=(\\d+)$/.exec(req.url);
  if (!big) return res.end(name);
  const n = Number(big[1]); const chunk = Buffer.alloc(65536, 120); let sent = 0;
  res.writeHead(200, { 'content-length': n });
  const pump = () => { while (sent < n) { const c = chunk.subarray(0, Math.min(chunk.length, n - sent)); sent += c.length; if (!res.write(c)) return res.once('drain', pump); } res.end(); };
  pump();
};
const named = Object.entries(HOSTS).filter(([n]) => !n.endsWith('.bench.example'));
let pending = 2 + 2 * (named.length + 1) + (BENCH_HOSTS ? 1 : 0);
const ready = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
const udp = dgram.createSocket('udp4');
udp.on('message', (m, r) => { try { udp.send(answer(m), r.port, r.address); } catch {} });
udp.bind(53, ${JSON.stringify(INET.dns)}, ready);
net.createServer((s) => { let buf = Buffer.alloc(0); s.on('data', (d) => { buf = Buffer.concat([buf, d]);
  while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { const n = buf.readUInt16BE(0); const a = answer(buf.subarray(2, 2 + n)); buf = buf.subarray(2 + n);
    const len = Buffer.alloc(2); len.writeUInt16BE(a.length); s.write(Buffer.concat([len, a])); } }); s.on('error', () => {}); })
  .listen(53, ${JSON.stringify(INET.dns)}, ready);
if (BENCH_HOSTS) http.createServer(serve('bench')).listen(443, '0.0.0.0', ready);
for (const [name, addr] of [...named, ['unnamed', UNNAMED]]) {
  http.createServer(serve(name)).listen(80, addr, ready);
  const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(Buffer.from('echo:' + name), r.port, r.address)); u.bind(9999, addr, ready);
}
`;

async function sh(cmd: string, args: string[]): Promise<void> {
  const r = await runCommand(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

export class FakeInternet {
  private constructor(private readonly server: ChildProcess) {}

  /** `benchHosts`: also that many `h<i>.bench.example` hosts (at most 250). */
  static async start(benchHosts = 0): Promise<FakeInternet> {
    await FakeInternet.remove(); // leftovers of an aborted run
    await sh('ip', ['netns', 'add', INET.ns]);
    await sh('ip', ['link', 'add', INET.hostIf, 'type', 'veth', 'peer', 'name', 'wan0', 'netns', INET.ns]);
    await sh('ip', ['addr', 'add', `${INET.rootAddress}/30`, 'dev', INET.hostIf]);
    await sh('ip', ['link', 'set', INET.hostIf, 'up']);
    await sh('ip', ['-n', INET.ns, 'addr', 'add', `${INET.dns}/30`, 'dev', 'wan0']);
    await sh('ip', ['-n', INET.ns, 'link', 'set', 'wan0', 'up']);
    await sh('ip', ['-n', INET.ns, 'link', 'set', 'lo', 'up']);
    for (const a of [...Object.values(INET.hosts), INET.unnamed]) await sh('ip', ['-n', INET.ns, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
    if (benchHosts) {
      await sh('ip', ['-n', INET.ns, 'addr', 'add', `${BENCH.address(1).replace(/\.1$/, '.0')}/24`, 'dev', 'lo']);
      await sh('ip', ['route', 'add', BENCH.route, 'via', INET.dns]);
    }
    await sh('ip', ['-n', INET.ns, 'route', 'add', 'default', 'via', INET.rootAddress]);
    await sh('ip', ['route', 'add', ROUTE, 'via', INET.dns]);
    const server = spawn('ip', ['netns', 'exec', INET.ns, process.execPath, '-e', serverScript(benchHosts)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: new URL('../..', import.meta.url).pathname, // resolves dns-packet from the repository
    });
    const fake = new FakeInternet(server);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('exit', (code) => reject(new Error(`fake internet server exited ${code}`)));
        server.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      });
    } catch (err) {
      await fake.stop();
      throw err;
    }
    return fake;
  }

  async stop(): Promise<void> {
    this.server.kill('SIGKILL');
    await FakeInternet.remove();
  }

  private static async remove(): Promise<void> {
    await runCommand('ip', ['route', 'del', ROUTE]);
    await runCommand('ip', ['route', 'del', BENCH.route]);
    await runCommand('ip', ['netns', 'del', INET.ns]);
    await runCommand('ip', ['link', 'del', INET.hostIf]);
  }
}
