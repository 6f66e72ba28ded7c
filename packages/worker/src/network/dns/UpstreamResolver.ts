import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { isIPv6, Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

export interface UpstreamOptions {
  host: string;
  port: number;
  /** Whole budget for one question, UDP and any TCP retry together (default 2000 ms). */
  timeoutMs?: number;
}

/**
 * Asks the real resolver one A or AAAA question in a packet built from scratch: a fresh random id
 * and source port, recursion desired, nothing copied from the bunker's query (no EDNS options, no
 * client cookies or subnets), so the forwarded traffic carries nothing the bunker chose beyond
 * the allowed name. A truncated UDP answer is retried over TCP. The reply must come from the
 * upstream, match the id and the question, or it is ignored.
 */
export class UpstreamResolver {
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;

  constructor(opts: UpstreamOptions) {
    this.host = opts.host;
    this.port = opts.port;
    this.timeoutMs = opts.timeoutMs ?? 2000;
  }

  /** The upstream's decoded response; rejects on timeout or a network error. */
  async query(name: string, type: 'A' | 'AAAA'): Promise<dnsPacket.DecodedPacket> {
    const deadline = Date.now() + this.timeoutMs;
    const id = randomInt(0, 0x10000);
    const packet = dnsPacket.encode({
      type: 'query',
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
    });
    const udp = await this.overUdp(packet, id, name, type, deadline);
    if (!udp.flag_tc) return udp;
    return this.overTcp(packet, id, name, type, deadline);
  }

  private matches(res: dnsPacket.DecodedPacket, id: number, name: string, type: string): boolean {
    const q = res.questions?.[0];
    return (
      res.type === 'response' &&
      res.id === id &&
      res.questions?.length === 1 &&
      q !== undefined &&
      q.type === type &&
      q.name.toLowerCase() === name.toLowerCase()
    );
  }

  private overUdp(packet: Buffer, id: number, name: string, type: string, deadline: number): Promise<dnsPacket.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const sock = createSocket(isIPv6(this.host) ? 'udp6' : 'udp4');
      let done = false;
      const finish = (e: Error | undefined, res?: dnsPacket.DecodedPacket) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.close();
        if (e) reject(e);
        else resolve(res!);
      };
      const timer = setTimeout(() => finish(new Error(`upstream ${this.host}:${this.port} timed out`)), Math.max(0, deadline - Date.now()));
      sock.on('error', (e) => finish(e));
      sock.on('message', (msg, rinfo) => {
        if (rinfo.port !== this.port || rinfo.address !== this.host) return;
        let res: dnsPacket.DecodedPacket;
        try {
          res = dnsPacket.decode(msg);
        } catch {
          return;
        }
        if (this.matches(res, id, name, type)) finish(undefined, res);
      });
      sock.send(packet, this.port, this.host, (e) => {
        if (e) finish(e);
      });
    });
  }

  private overTcp(packet: Buffer, id: number, name: string, type: string, deadline: number): Promise<dnsPacket.DecodedPacket> {
    return new Promise((resolve, reject) => {
      const sock = new Socket();
      let buf: Buffer = Buffer.alloc(0);
      const finish = (e: Error | undefined, res?: dnsPacket.DecodedPacket) => {
        clearTimeout(timer);
        sock.destroy();
        if (e) reject(e);
        else resolve(res!);
      };
      const timer = setTimeout(
        () => finish(new Error(`upstream ${this.host}:${this.port} timed out (tcp)`)),
        Math.max(0, deadline - Date.now()),
      );
      sock.on('error', (e) => finish(e));
      sock.on('close', () => finish(new Error(`upstream ${this.host}:${this.port} closed the tcp connection`)));
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2) return;
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        try {
          const res = dnsPacket.decode(buf.subarray(2, 2 + len));
          if (this.matches(res, id, name, type)) finish(undefined, res);
          else finish(new Error('upstream tcp answer does not match the question'));
        } catch (e) {
          finish(e instanceof Error ? e : new Error(String(e)));
        }
      });
      sock.connect(this.port, this.host, () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(packet.length);
        sock.write(Buffer.concat([len, packet]));
      });
    });
  }
}
