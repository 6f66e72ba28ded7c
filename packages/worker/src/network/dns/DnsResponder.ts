import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createTcpServer, isIPv6, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { hostnameAllowed } from '@scaibunker/core';
import * as dnsPacket from 'dns-packet';
import type { SetAddress } from './NftSetWriter.js';
import { UpstreamResolver } from './UpstreamResolver.js';

/** What the responder needs to know about the bunker a query came from. */
export interface DnsPolicy {
  bunkerId: string;
  /** The bunker's `inet` nft table, holding the `allow4` / `allow6` sets. */
  table: string;
  /** Exact hostnames and `*.suffix` patterns (see `hostnameAllowed`). */
  patterns: readonly string[];
  /** Every name is answered (an `unrestricted` bunker: resolved here only so flows get hostnames). */
  anyName?: boolean;
}

/** Where answered addresses go before the reply leaves; `NftSetWriter` in production. */
export interface DnsSetSink {
  add(table: string, family4: readonly SetAddress[], family6: readonly SetAddress[]): Promise<void>;
}

export interface DnsResponderOptions {
  /** Address both the UDP and the TCP server bind (default 0.0.0.0; `::` for dual stack). */
  host?: string;
  /** Port both servers bind (default 10053; 0 picks a free one, see `port()`). */
  port?: number;
  /** The real resolver (an IP address) that allowed A/AAAA questions are forwarded to. */
  upstream: { host: string; port: number };
  /** Upstream budget per question (default 2000 ms); past it the bunker gets SERVFAIL. */
  upstreamTimeoutMs?: number;
  /** The bunker behind a source address, or undefined for a stranger (answered REFUSED). */
  policyFor(sourceIp: string): DnsPolicy | undefined;
  sets: DnsSetSink;
  /** Longest TTL handed to a client or used for a set element (default 86400 s). */
  maxTtlS?: number;
  /** A TCP connection with no complete query for this long is closed (default 10000 ms). */
  tcpIdleMs?: number;
  /** Most TCP connections open at once across all bunkers (default 512). */
  tcpMaxConnections?: number;
  log?: (line: string) => void;
  /**
   * Queries one bunker may make: `perSecond` sustained, bursts of up to `burst` (default 1000/s,
   * 2000). Past it the bunker gets REFUSED at once: a flood can't crowd out other bunkers'
   * upstream budget or grow its nft sets without end.
   */
  ratePerBunker?: { perSecond: number; burst: number };
  /** Milliseconds clock for the rate limit (tests). */
  now?: () => number;
  /** Called after each answer that reached the sets: the flow audit's IP → hostname log. */
  onAnswer?(bunkerId: string, name: string, addrs: readonly string[]): void;
}

/** Counters for benches and metrics. */
export interface DnsResponderStats {
  /** Replies with upstream data, upstream NXDOMAIN, or an empty NOERROR for a non-address type. */
  answered: number;
  /** NXDOMAIN because the name is not allowed for the bunker. */
  denied: number;
  /** REFUSED: the source is no known bunker (or the class is not IN). */
  refused: number;
  /** SERVFAIL: upstream failure or timeout, or the nft insert failed. */
  failed: number;
  /** FORMERR / NOTIMP: several questions, or not a standard query. */
  rejected: number;
  /** Undecodable input: UDP datagrams dropped, TCP connections closed. */
  malformed: number;
  /** REFUSED: the bunker was over its query rate. */
  rate_limited: number;
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** Plain-DNS UDP reply limit; we never advertise EDNS, so bigger replies go truncated. */
const UDP_LIMIT = 512;
/** Longest CNAME chain followed from the query name. */
const MAX_CHAIN = 16;
/** Most queries one TCP connection may have in flight. */
const TCP_MAX_INFLIGHT = 16;

type Reply = Buffer | undefined;

/**
 * The DNS server bunkers on the `registry` and `allowlisted` profiles talk to (their port-53
 * traffic is DNATed here). It is the only way a bunker learns an address it may connect to: an
 * allowed A/AAAA answer is inserted into the bunker's nft allow sets *before* the reply is sent
 * (replying first lost 141 of 200 connects in measurements), everything else is answered so that
 * resolvers fail fast (NXDOMAIN for denied names, not REFUSED, which musl retries) and nothing
 * but the allowed name ever goes upstream (no TXT/MX/ANY, a fresh packet without client options).
 * One UDP and one TCP server on the same address serve all bunkers, told apart by source address.
 */
export class DnsResponder {
  private readonly opts: DnsResponderOptions;
  private readonly upstream: UpstreamResolver;
  private readonly maxTtlS: number;
  private readonly tcpIdleMs: number;
  private readonly log: (line: string) => void;
  private udp: UdpSocket | undefined;
  private tcp: TcpServer | undefined;
  private readonly connections = new Set<TcpSocket>();
  private readonly counters: DnsResponderStats = {
    answered: 0,
    denied: 0,
    refused: 0,
    failed: 0,
    rejected: 0,
    malformed: 0,
    rate_limited: 0,
  };
  /** Per bunker: tokens left and when they were last topped up. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(opts: DnsResponderOptions) {
    this.opts = opts;
    this.upstream = new UpstreamResolver({ ...opts.upstream, timeoutMs: opts.upstreamTimeoutMs ?? 2000 });
    this.maxTtlS = opts.maxTtlS ?? 86_400;
    this.tcpIdleMs = opts.tcpIdleMs ?? 10_000;
    this.log = opts.log ?? (() => {});
  }

  /**
   * Binds UDP and TCP on host:port. With port 0 the TCP server takes the port UDP got; when
   * something already holds that port for TCP, both are let go and another port is tried.
   */
  async start(): Promise<void> {
    const wanted = this.opts.port ?? 10053;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bind(wanted);
        return;
      } catch (e) {
        if (wanted !== 0 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 10) throw e;
      }
    }
  }

  private async bind(port: number): Promise<void> {
    const host = this.opts.host ?? '0.0.0.0';
    const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
    udp.on('message', (msg, rinfo) => this.onUdp(udp, msg, rinfo));
    udp.on('error', (e) => this.log(`dns udp: ${e.message}`));
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    const tcp = createTcpServer((sock) => this.onTcp(sock));
    tcp.maxConnections = this.opts.tcpMaxConnections ?? 512;
    tcp.on('error', (e) => this.log(`dns tcp: ${e.message}`));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(udp.address().port, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    this.udp = udp;
    this.tcp = tcp;
  }

  /** The bound port (useful with port 0). */
  port(): number {
    if (!this.udp) throw new Error('DnsResponder is not started');
    return this.udp.address().port;
  }

  stats(): DnsResponderStats {
    return { ...this.counters };
  }

  /** Closes both servers and every open TCP connection. */
  async stop(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
    ]);
  }

  private onUdp(udp: UdpSocket, msg: Buffer, rinfo: RemoteInfo): void {
    this.handle(msg, rinfo.address).then(
      (reply) => {
        if (!reply || this.udp !== udp) return;
        udp.send(reply.length > UDP_LIMIT ? truncated(reply) : reply, rinfo.port, rinfo.address);
      },
      (e: unknown) => this.log(`dns: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  private onTcp(sock: TcpSocket): void {
    this.connections.add(sock);
    const source = sock.remoteAddress ?? '';
    let buf: Buffer = Buffer.alloc(0);
    let inflight = 0;
    sock.setTimeout(this.tcpIdleMs, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('close', () => this.connections.delete(sock));
    sock.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (++inflight > TCP_MAX_INFLIGHT) {
          sock.destroy();
          return;
        }
        this.handle(msg, source).then(
          (reply) => {
            inflight--;
            if (!reply) {
              sock.destroy();
              return;
            }
            if (sock.destroyed) return;
            const head = Buffer.alloc(2);
            head.writeUInt16BE(reply.length);
            sock.write(Buffer.concat([head, reply]));
          },
          (e: unknown) => {
            this.log(`dns: ${e instanceof Error ? e.message : String(e)}`);
            sock.destroy();
          },
        );
      }
    });
  }

  /** A token bucket per bunker; false when the bunker is over its rate. */
  private takeToken(bunkerId: string): boolean {
    const { perSecond, burst } = this.opts.ratePerBunker ?? { perSecond: 1000, burst: 2000 };
    const now = (this.opts.now ?? Date.now)();
    const b = this.buckets.get(bunkerId) ?? { tokens: burst, at: now };
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * perSecond);
    b.at = now;
    // Idle buckets are full again: forget them rather than keep one per bunker that ever asked.
    if (this.buckets.size > 10_000) this.buckets.clear();
    this.buckets.set(bunkerId, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** The reply for one query from `source`, or undefined to drop it (malformed / not a query). */
  private async handle(msg: Buffer, source: string): Promise<Reply> {
    const sourceIp = source.startsWith('::ffff:') && source.includes('.') ? source.slice(7) : source;
    let query: dnsPacket.DecodedPacket;
    let rawQuestion: Buffer | undefined;
    try {
      query = dnsPacket.decode(msg);
      if (query.questions?.length === 1) rawQuestion = msg.subarray(12, rawQuestionEnd(msg));
    } catch {
      this.counters.malformed++;
      return undefined;
    }
    if (query.type !== 'query') {
      this.counters.malformed++;
      return undefined;
    }
    const id = query.id ?? 0;
    const rd = query.flag_rd;
    const questions = query.questions ?? [];
    const policy = this.opts.policyFor(sourceIp);
    if (!policy) {
      this.counters.refused++;
      return header(id, rd, RCODE.REFUSED, rawQuestion);
    }
    if (!this.takeToken(policy.bunkerId)) {
      this.counters.rate_limited++;
      return header(id, rd, RCODE.REFUSED, rawQuestion);
    }
    const opcode = (msg.readUInt16BE(2) >> 11) & 0xf;
    if (opcode !== 0) {
      this.counters.rejected++;
      return header(id, rd, RCODE.NOTIMP, rawQuestion);
    }
    const q = questions[0];
    if (questions.length !== 1 || !q || !rawQuestion) {
      this.counters.rejected++;
      return header(id, rd, RCODE.FORMERR, undefined);
    }
    if (q.class !== 'IN') {
      this.counters.refused++;
      return header(id, rd, RCODE.REFUSED, rawQuestion);
    }
    if (!policy.anyName && !hostnameAllowed(q.name, policy.patterns)) {
      this.counters.denied++;
      return header(id, rd, RCODE.NXDOMAIN, rawQuestion);
    }
    if (q.type !== 'A' && q.type !== 'AAAA') {
      this.counters.answered++;
      return header(id, rd, RCODE.NOERROR, rawQuestion);
    }
    return this.forward(id, rd, q.name, q.type, rawQuestion, policy);
  }

  /** Asks upstream, keeps the chain from the query name, fills the sets, then builds the reply. */
  private async forward(
    id: number,
    rd: boolean,
    name: string,
    type: 'A' | 'AAAA',
    rawQuestion: Buffer,
    policy: DnsPolicy,
  ): Promise<Buffer> {
    let res: dnsPacket.DecodedPacket;
    try {
      res = await this.upstream.query(name, type);
    } catch (e) {
      this.counters.failed++;
      this.log(`dns: ${policy.bunkerId} ${name} ${type}: ${e instanceof Error ? e.message : String(e)}`);
      return header(id, rd, RCODE.SERVFAIL, rawQuestion);
    }
    const rcode = res.flags === undefined ? 0 : res.flags & 0xf;
    if (rcode === RCODE.NXDOMAIN) {
      this.counters.answered++;
      return header(id, rd, RCODE.NXDOMAIN, rawQuestion);
    }
    if (rcode !== RCODE.NOERROR) {
      this.counters.failed++;
      return header(id, rd, RCODE.SERVFAIL, rawQuestion);
    }
    const answers = this.chain(name, type, res.answers ?? []);
    const v4: SetAddress[] = [];
    const v6: SetAddress[] = [];
    for (const a of answers) {
      if (a.type === 'A') v4.push({ addr: a.data, ttlS: a.ttl ?? 0 });
      else if (a.type === 'AAAA') v6.push({ addr: a.data, ttlS: a.ttl ?? 0 });
    }
    if (v4.length + v6.length > 0) {
      try {
        await this.opts.sets.add(policy.table, v4, v6);
      } catch (e) {
        this.counters.failed++;
        this.log(`dns: ${policy.bunkerId} ${name}: set insert failed: ${e instanceof Error ? e.message : String(e)}`);
        return header(id, rd, RCODE.SERVFAIL, rawQuestion);
      }
      try {
        this.opts.onAnswer?.(
          policy.bunkerId,
          name.toLowerCase().replace(/\.$/, ''),
          [...v4, ...v6].map((a) => a.addr),
        );
      } catch (e) {
        this.log(`dns: onAnswer failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    this.counters.answered++;
    return dnsPacket.encode({
      type: 'response',
      id,
      flags: (rd ? dnsPacket.RECURSION_DESIRED : 0) | dnsPacket.RECURSION_AVAILABLE,
      questions: [{ name, type, class: 'IN' }],
      answers,
    });
  }

  /**
   * The records of `answers` on the CNAME chain that starts at the query name: the CNAMEs linking
   * it and the `type` records of its names, in chain order, TTLs clamped to `maxTtlS`. Anything
   * else the upstream added (records for other names, other types) is dropped.
   */
  private chain(name: string, type: 'A' | 'AAAA', answers: readonly dnsPacket.Answer[]): dnsPacket.StringAnswer[] {
    const norm = (n: string) => n.toLowerCase().replace(/\.$/, '');
    const ttl = (t: number | undefined) => Math.min(Math.max(0, t ?? 0), this.maxTtlS);
    const out: dnsPacket.StringAnswer[] = [];
    const seen = new Set<string>();
    let current = norm(name);
    for (let step = 0; step <= MAX_CHAIN && !seen.has(current); step++) {
      seen.add(current);
      for (const a of answers) {
        if (a.type === type && norm(a.name) === current && (a.class ?? 'IN') === 'IN' && typeof a.data === 'string') {
          out.push({ type, name: a.name, ttl: ttl(a.ttl), class: 'IN', data: a.data });
        }
      }
      const cname = answers.find((a) => a.type === 'CNAME' && norm(a.name) === current && (a.class ?? 'IN') === 'IN');
      if (cname?.type !== 'CNAME' || step === MAX_CHAIN) break;
      out.push({ type: 'CNAME', name: cname.name, ttl: ttl(cname.ttl), class: 'IN', data: cname.data });
      current = norm(cname.data);
    }
    return out;
  }
}

/** Offset just past the single question of `msg` (its name must not use compression). */
function rawQuestionEnd(msg: Buffer): number {
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined) throw new Error('short question');
    if (len === 0) break;
    if (len & 0xc0) throw new Error('compressed question name');
    off += 1 + len;
  }
  off += 1 + 4;
  if (off > msg.length) throw new Error('short question');
  return off;
}

/** A reply with no records: `rcode`, and the query's question echoed when there is one. */
function header(id: number, rd: boolean, rcode: number, rawQuestion: Buffer | undefined): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x8000 | (rd ? 0x0100 : 0) | 0x0080 | rcode, 2);
  h.writeUInt16BE(rawQuestion ? 1 : 0, 4);
  return rawQuestion ? Buffer.concat([h, rawQuestion]) : h;
}

/** The header and question of `reply` with TC set and no records: the client retries over TCP. */
function truncated(reply: Buffer): Buffer {
  const end = rawQuestionEnd(reply);
  const out = Buffer.from(reply.subarray(0, end));
  out.writeUInt16BE(out.readUInt16BE(2) | 0x0200, 2);
  out.writeUInt16BE(0, 6);
  out.writeUInt16BE(0, 8);
  out.writeUInt16BE(0, 10);
  return out;
}
