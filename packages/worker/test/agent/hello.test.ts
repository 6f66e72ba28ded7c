/**
 * HELLO: the agent's first frame on every connection, and the client's awaitHello option.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import { encodeJsonFrame, type Frame, FrameDecoder, FrameType } from '../../src/agent/protocol.js';
import { type RunningAgent, startAgent, stopAllAgents } from './helpers.js';

let agent: RunningAgent;
let tmp: string;
const servers: net.Server[] = [];

before(async () => {
  agent = startAgent();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-hello-test-'));
  (await AgentClient.connect(agent.socketPath)).close(); // the socket exists from here on
});

after(async () => {
  for (const s of servers) s.close();
  await stopAllAgents();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A fake agent: accepts connections and hands each socket to onConn. */
async function fakeAgent(name: string, onConn: (s: net.Socket) => void): Promise<{ path: string; sockets: net.Socket[] }> {
  const p = path.join(tmp, name);
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    onConn(s);
  });
  servers.push(server);
  server.listen(p);
  await once(server, 'listening');
  return { path: p, sockets };
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

test('HELLO is the first frame on a new socket connection, before any request', async () => {
  const sock = net.createConnection({ path: agent.socketPath });
  await once(sock, 'connect');
  const dec = new FrameDecoder();
  const got: Frame[] = [];
  const two = new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      got.push(...dec.push(d));
      if (got.length >= 2) resolve();
    });
  });
  sock.write(encodeJsonFrame(1, FrameType.OPEN, { op: 'health' }));
  await two;
  sock.destroy();
  const [hello, result] = got;
  assert.equal(hello?.stream, 0);
  assert.equal(hello?.type, FrameType.HELLO);
  const h = JSON.parse(hello?.payload.toString() ?? '{}');
  assert.equal(h.protocol, 1);
  assert.equal(h.pid, agent.pid);
  assert.equal(typeof h.version, 'string');
  assert.equal(h.boot_id, bootId());
  assert.equal(result?.stream, 1);
  assert.equal(result?.type, FrameType.RESULT);
  assert.equal(JSON.parse(result?.payload.toString() ?? '{}').version, h.version);
});

test('every connection gets its own HELLO; client.hello resolves without awaitHello', async () => {
  for (let i = 0; i < 3; i++) {
    const c = await AgentClient.connect(agent.socketPath);
    try {
      const h = await c.hello;
      assert.deepEqual(h, { protocol: 1, version: h.version, pid: agent.pid, bootId: bootId() });
      assert.equal((await c.health()).version, h.version);
    } finally {
      c.close();
    }
  }
});

test('connect({awaitHello: true}) resolves once HELLO arrived', async () => {
  const c = await AgentClient.connect(agent.socketPath, { awaitHello: true, timeoutMs: 5_000 });
  try {
    let settled = false;
    void c.hello.then(() => {
      settled = true;
    });
    await Promise.resolve();
    assert.ok(settled, 'hello had already resolved when connect() returned');
    assert.equal((await c.hello).pid, agent.pid);
    assert.equal((await c.health()).pid, agent.pid);
  } finally {
    c.close();
  }
});

test('fromStream({awaitHello: true}) resolves once HELLO arrived', async () => {
  const sock = net.createConnection({ path: agent.socketPath });
  await once(sock, 'connect');
  const c = await AgentClient.fromStream(sock, { awaitHello: true, timeoutMs: 5_000 });
  try {
    assert.equal((await c.hello).pid, agent.pid);
    assert.equal((await c.health()).pid, agent.pid);
  } finally {
    c.close();
  }
});

test('an agent that never sends HELLO: connect({awaitHello}) rejects with TIMEOUT and closes', async () => {
  const fake = await fakeAgent('silent.sock', () => {});
  const t0 = Date.now();
  await assert.rejects(
    AgentClient.connect(fake.path, { awaitHello: true, timeoutMs: 300 }),
    (e: unknown) => e instanceof AgentError && e.code === 'TIMEOUT',
  );
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 250 && elapsed < 5_000, `rejected after ${elapsed} ms`);
  assert.equal(fake.sockets.length, 1);
  const s = fake.sockets[0];
  assert.ok(s);
  if (!s.destroyed && !s.readableEnded) await once(s, 'close'); // the client closed the socket
});

test('without awaitHello the same silent agent connects, and hello stays pending harmlessly', async () => {
  const fake = await fakeAgent('silent2.sock', () => {});
  const c = await AgentClient.connect(fake.path, { timeoutMs: 300 });
  c.close();
  await c.closed;
  await assert.rejects(c.hello, (e: unknown) => e instanceof AgentError && e.code === 'CHANNEL_CLOSED');
});

test('a channel that closes before HELLO rejects with CHANNEL_CLOSED, not TIMEOUT', async () => {
  const fake = await fakeAgent('closing.sock', (s) => s.end());
  await assert.rejects(
    AgentClient.connect(fake.path, { awaitHello: true, timeoutMs: 5_000 }),
    (e: unknown) => e instanceof AgentError && e.code === 'CHANNEL_CLOSED',
  );
});

test('a HELLO that arrives late (serial port opened later) still completes the connect', async () => {
  const hello = encodeJsonFrame(0, FrameType.HELLO, { protocol: 1, version: '9.9.9', pid: 42, boot_id: 'b', extra: 1 });
  const fake = await fakeAgent('late.sock', (s) => {
    setTimeout(() => s.write(hello), 100);
  });
  const c = await AgentClient.connect(fake.path, { awaitHello: true, timeoutMs: 5_000 });
  try {
    assert.deepEqual(await c.hello, { protocol: 1, version: '9.9.9', pid: 42, bootId: 'b' });
  } finally {
    c.close();
  }
});
