/**
 * The agent's `connect` op through AgentClient.connectPort(): byte tunnels to 127.0.0.1:PORT.
 * The agent runs as an ordinary process on the host, so a net server in this test process
 * on 127.0.0.1 is what a server inside a bunker would be.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { after, afterEach, before, describe, test } from 'node:test';

import { returnChunk } from '@scaibunker/core';
import { AgentClient } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import { type RunningAgent, rssBytes, startAgent, stopAllAgents } from './helpers.js';

let agent: RunningAgent;
let client: AgentClient;
const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
const tunnels: Duplex[] = [];
const extraClients: AgentClient[] = [];

before(async () => {
  agent = startAgent();
  client = await AgentClient.connect(agent.socketPath, { timeoutMs: 10_000 });
});

afterEach(async () => {
  for (const t of tunnels.splice(0)) t.destroy();
  for (const c of extraClients.splice(0)) c.close();
  for (const s of sockets) s.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

after(async () => {
  client.close();
  await stopAllAgents();
});

interface TestServer {
  port: number;
  /** Resolves with each accepted socket, in order. */
  accepted: () => Promise<net.Socket>;
}

/** A TCP server on 127.0.0.1 (random port), half-open allowed; closed after each test. */
async function listen(onSocket: (s: net.Socket) => void = () => {}): Promise<TestServer> {
  const queue: net.Socket[] = [];
  let waiter: ((s: net.Socket) => void) | null = null;
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {}); // resets are part of some tests
    onSocket(s);
    if (waiter) {
      const w = waiter;
      waiter = null;
      w(s);
    } else queue.push(s);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    accepted: () => {
      const s = queue.shift();
      if (s) return Promise.resolve(s);
      return new Promise((r) => (waiter = r));
    },
  };
}

async function tunnel(port: number, c = client): Promise<Duplex> {
  const t = await c.connectPort(port);
  tunnels.push(t);
  return t;
}

/** Everything a readable delivers until 'end'. */
async function readAll(r: Duplex | net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A port nothing listens on: bound, then closed. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const isAgentError = (code: string, errno?: string) => (e: unknown) =>
  e instanceof AgentError && e.code === code && (errno === undefined || e.errno === errno);

/** Writes `total` bytes of a deterministic pattern with back-pressure; returns its sha256. */
async function writePattern(w: Duplex | net.Socket, total: number, seed: number): Promise<string> {
  const h = createHash('sha256');
  const chunk = Buffer.alloc(64 * 1024);
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunk.length, total - sent);
    for (let i = 0; i < n; i += 4) chunk.writeUInt32LE((sent + i + seed) >>> 0, i);
    const piece = Buffer.from(chunk.subarray(0, n));
    h.update(piece);
    sent += n;
    if (!w.write(piece)) await once(w, 'drain');
  }
  return h.digest('hex');
}

async function hashAll(r: Duplex | net.Socket): Promise<{ sha: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const c of r) {
    h.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { sha: h.digest('hex'), bytes };
}

describe('connectPort', () => {
  test('echo round trip, then both sides close', async () => {
    const srv = await listen((s) => s.pipe(s));
    const t = await tunnel(srv.port);
    const got = readAll(t);
    t.write('hello ');
    t.end('tunnel');
    assert.equal((await got).toString(), 'hello tunnel');
    if (!t.closed) await once(t, 'close');
  });

  test('connection refused → PORT_NOT_LISTENING (ECONNREFUSED)', async () => {
    const port = await freePort();
    await assert.rejects(client.connectPort(port), isAgentError('PORT_NOT_LISTENING', 'ECONNREFUSED'));
    assert.equal((await client.health()).protocol, 1, 'the connection stays usable');
  });

  test('invalid ports → INVALID_ARGUMENT', async () => {
    for (const port of [0, 65536, 1.5, -1, Number.NaN]) {
      await assert.rejects(client.connectPort(port), isAgentError('INVALID_ARGUMENT'), `port ${port}`);
    }
  });

  test('many small writes arrive in order', async () => {
    const srv = await listen((s) => s.pipe(s));
    const t = await tunnel(srv.port);
    const parts = Array.from({ length: 100 }, (_, i) => `${i},`);
    for (const p of parts) t.write(p);
    t.end();
    assert.equal((await readAll(t)).toString(), parts.join(''));
  });

  test('50 MB each way at once, intact, with bounded agent memory', { timeout: 120_000 }, async () => {
    const total = 50 * 1024 * 1024;
    const srv = await listen();
    const t = await tunnel(srv.port);
    const sock = await srv.accepted();
    const rssBefore = rssBytes(agent.pid);
    let peak = 0;
    const sample = setInterval(() => {
      peak = Math.max(peak, rssBytes(agent.pid));
    }, 20);
    try {
      const [clientGot, clientSent, serverGot, serverSent] = await Promise.all([
        hashAll(t),
        writePattern(t, total, 3).then((sha) => {
          t.end();
          return sha;
        }),
        hashAll(sock),
        writePattern(sock, total, 7).then((sha) => {
          sock.end();
          return sha;
        }),
      ]);
      assert.equal(clientGot.bytes, total);
      assert.equal(clientGot.sha, serverSent, 'server → client intact');
      assert.equal(serverGot.bytes, total);
      assert.equal(serverGot.sha, clientSent, 'client → server intact');
      // window (256 KiB each way) + ≤1 MiB output queue: nothing near 50 MB
      assert.ok(peak - rssBefore < 8 * 1024 * 1024, `agent RSS grew by ${peak - rssBefore} bytes`);
    } finally {
      clearInterval(sample);
    }
  });

  test('a consumer that stops reading stops the server (back-pressure, no buffering)', async () => {
    let written = 0;
    let drains = 0;
    let onDrain: (() => void) | null = null;
    const srv = await listen((s) => {
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = () => {
        while (written < 512 * 1024 * 1024) {
          written += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', () => {
              drains++;
              onDrain?.();
              pump();
            });
            return;
          }
        }
      };
      pump();
    });
    const t = await tunnel(srv.port);
    t.pause();
    const rssBefore = rssBytes(agent.pid);
    // Quiescence cannot be awaited as an event: wait until the server's socket has not
    // drained for 300 ms (the chain server buffers → kernel → agent → window is full).
    for (;;) {
      const before = drains;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, 300);
        onDrain = () => {
          clearTimeout(timer);
          r();
        };
      });
      onDrain = null;
      if (drains === before) break;
    }
    const stalledAt = written;
    // Without flow control the agent would have read all 512 MB (or grown by it).
    assert.ok(stalledAt < 64 * 1024 * 1024, `server wrote ${stalledAt} bytes into a paused tunnel`);
    assert.ok(rssBytes(agent.pid) - rssBefore < 4 * 1024 * 1024, 'the agent buffered the stalled data');
    // resume: the data flows again
    let read = 0;
    t.on('data', (c: Buffer) => {
      read += c.length;
    });
    t.resume();
    while (read < stalledAt + 4 * 1024 * 1024) await once(t, 'data');
  });

  test('half-close: client ends first, server still answers', async () => {
    const srv = await listen(async (s) => {
      const req = await readAll(s);
      s.end(`got ${req.length} bytes`);
    });
    const t = await tunnel(srv.port);
    t.end(Buffer.alloc(1000, 2));
    assert.equal((await readAll(t)).toString(), 'got 1000 bytes');
  });

  test('half-close: server ends first, client keeps writing', async () => {
    const srv = await listen((s) => s.end('bye'));
    const t = await tunnel(srv.port);
    const sock = await srv.accepted();
    const fromServer = readAll(sock);
    assert.equal((await readAll(t)).toString(), 'bye');
    assert.ok(!t.writableEnded);
    t.write('still ');
    t.end('here');
    assert.equal((await fromServer).toString(), 'still here');
    if (!t.closed) await once(t, 'close');
  });

  test('destroy() mid-transfer closes the server socket; the connection stays usable', async () => {
    const srv = await listen((s) => {
      const chunk = Buffer.alloc(64 * 1024, 3);
      const pump = () => {
        while (s.write(chunk));
        s.once('drain', pump);
      };
      pump();
    });
    const t = await tunnel(srv.port);
    const sock = await srv.accepted();
    await once(t, 'data');
    // the agent closes its socket with unread data: the server sees a reset, then 'close'
    const closed = new Promise((r) => sock.once('close', r));
    t.destroy();
    await closed;
    assert.equal((await client.health()).protocol, 1);
  });

  test('chunks held are never overwritten, beside a tunnel handing its chunks back; those are read into again', async () => {
    const total = 8 * 1024 * 1024;
    const sent: Promise<string>[] = [];
    const srv = await listen((s) => {
      sent.push(
        writePattern(s, total, sent.length + 11).then((sha) => {
          s.end();
          return sha;
        }),
      );
    });
    /**
     * Reads a tunnel to its end handing every chunk back once hashed: the hash, and the bytes
     * that arrived in memory an earlier chunk had used. ('data' events: read() and async
     * iteration hand out copies, joined.)
     */
    const readReturning = async (t: Duplex) => {
      const h = createHash('sha256');
      const seen = new Set<ArrayBufferLike>();
      let reused = 0;
      t.on('data', (c: Buffer) => {
        h.update(c);
        if (seen.has(c.buffer)) reused += c.length;
        seen.add(c.buffer);
        returnChunk(c);
      });
      await once(t, 'end');
      return { sha: h.digest('hex'), reused };
    };
    // Side by side: the first tunnel holds every chunk, the second hands its chunks back (the
    // blocks then go to either tunnel's next chunks).
    const holding = await tunnel(srv.port);
    const returning = await tunnel(srv.port);
    const held: Buffer[] = [];
    holding.on('data', (c: Buffer) => held.push(c));
    const [, second] = await Promise.all([once(holding, 'end'), readReturning(returning)]);
    const [firstSha, secondSha] = await Promise.all(sent.slice(0, 2));
    assert.equal(createHash('sha256').update(Buffer.concat(held)).digest('hex'), firstSha, 'held chunks intact');
    assert.equal(second.sha, secondSha, 'returned chunks intact when read');
    // Alone, a tunnel handing its chunks back reads into a few blocks over and over.
    const alone = await readReturning(await tunnel(srv.port));
    assert.equal(alone.sha, await sent[2]);
    assert.ok(alone.reused > total / 2, `${alone.reused} of ${total} bytes in memory read into again`);
  });

  test('many tunnels at once', async () => {
    const srv = await listen((s) => s.pipe(s));
    const n = 100;
    const results = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const t = await tunnel(srv.port);
        const payload = Buffer.alloc(100_000 + i, i);
        const got = readAll(t);
        t.end(payload);
        return (await got).equals(payload);
      }),
    );
    assert.deepEqual(results, Array(n).fill(true));
  });

  test('at most 256 tunnels per connection (TOO_MANY_STREAMS), a slot frees when one closes', async () => {
    const c = await AgentClient.connect(agent.socketPath);
    extraClients.push(c);
    const srv = await listen();
    const open: Duplex[] = [];
    for (let i = 0; i < 256; i++) open.push(await tunnel(srv.port, c));
    await assert.rejects(c.connectPort(srv.port), isAgentError('TOO_MANY_STREAMS'));
    // another connection has its own budget
    await tunnel(srv.port);
    const first = open[0] as Duplex;
    first.destroy();
    // the CANCEL is processed before the next OPEN (same connection, in order)
    await tunnel(srv.port, c);
  });

  test('closing the agent connection closes its tunnels', async () => {
    const c = await AgentClient.connect(agent.socketPath);
    extraClients.push(c);
    const srv = await listen();
    const t = await tunnel(srv.port, c);
    const sock = await srv.accepted();
    const serverEnd = once(sock, 'end');
    const err = once(t, 'error');
    c.close();
    const [e] = await err;
    assert.ok(isAgentError('CHANNEL_CLOSED')(e));
    await serverEnd;
    await assert.rejects(c.connectPort(srv.port), isAgentError('CHANNEL_CLOSED'));
  });

  test('a server reset destroys the tunnel with an error', async () => {
    // Reset on the first byte, not on accept: a reset on accept can beat the agent's connect
    // acknowledgement, and then it is the open that fails rather than the open tunnel.
    const srv = await listen((s) => s.once('data', () => s.resetAndDestroy()));
    const t = await tunnel(srv.port);
    t.write('x');
    const [e] = await once(t, 'error').catch((x: unknown) => [x]);
    assert.ok(e instanceof AgentError && e.code === 'IO_ERROR', String(e));
  });
});
