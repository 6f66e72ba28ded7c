import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import {
  decodeWindow,
  encodeFrame,
  encodeJsonFrame,
  encodeWindow,
  type Frame,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  MAX_PAYLOAD,
  ProtocolError,
} from '../../src/agent/protocol.js';
import { type RunningAgent, startAgent, stopAllAgents } from './helpers.js';

test('frames encode to length | stream | type | payload', () => {
  const f = encodeFrame(7, FrameType.DATA, Buffer.from('abc'));
  assert.equal(f.length, HEADER_SIZE + 3);
  assert.equal(f.readUInt32BE(0), 3);
  assert.equal(f.readUInt32BE(4), 7);
  assert.equal(f[8], FrameType.DATA);
  assert.equal(f.subarray(9).toString(), 'abc');
  assert.equal(decodeWindow(encodeWindow(1, 65536).subarray(HEADER_SIZE)), 65536);
});

test('decoder reassembles frames split at every byte boundary', () => {
  const frames = [
    encodeJsonFrame(1, FrameType.OPEN, { op: 'health' }),
    encodeFrame(2, FrameType.EOF),
    encodeFrame(0xffffffff, FrameType.DATA, Buffer.alloc(70_000, 0xab)),
  ];
  const wire = Buffer.concat(frames);
  for (const step of [1, 2, 9, 10, 4096, wire.length]) {
    const d = new FrameDecoder();
    const got = [];
    for (let i = 0; i < wire.length; i += step) got.push(...d.push(wire.subarray(i, i + step)));
    assert.equal(got.length, 3, `step ${step}`);
    assert.deepEqual(JSON.parse(got[0]?.payload.toString() ?? ''), { op: 'health' });
    assert.equal(got[1]?.type, FrameType.EOF);
    assert.equal(got[1]?.payload.length, 0);
    assert.equal(got[2]?.stream, 0xffffffff);
    assert.equal(got[2]?.payload.length, 70_000);
    assert.equal(d.pending, 0);
  }
});

test('decoder in pieces: byte-stream frames come out as views of each chunk they span, others whole', () => {
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  const frames = [
    encodeFrame(3, FrameType.STDOUT, big),
    encodeJsonFrame(1, FrameType.RESULT, { exit_code: 0 }),
    encodeFrame(2, FrameType.DATA, Buffer.alloc(0)),
    encodeFrame(4, FrameType.DATA, Buffer.from('tail')),
  ];
  const wire = Buffer.concat(frames);
  for (const step of [1, 2, 9, 10, 4096, 65_536, wire.length]) {
    const d = new FrameDecoder({ pieces: true });
    const got: Frame[] = [];
    for (let i = 0; i < wire.length; i += step) {
      const chunk = wire.subarray(i, i + step);
      for (const f of d.push(chunk)) {
        // A piece of a byte stream is never a copy: it lies inside the chunk it came in.
        if (f.type === FrameType.STDOUT) assert.equal(f.payload.buffer, chunk.buffer, `step ${step}`);
        got.push(f);
      }
    }
    const stdout = got.filter((f) => f.stream === 3);
    assert.ok(stdout.every((f) => f.type === FrameType.STDOUT && f.payload.length > 0));
    assert.ok(step >= wire.length || stdout.length > 1, `step ${step}: split across chunks, so in pieces`);
    assert.deepEqual(Buffer.concat(stdout.map((f) => f.payload)), big, `step ${step}`);
    const result = got.filter((f) => f.stream === 1);
    assert.deepEqual(
      result.map((f) => [f.type, f.payload.toString()]),
      [[FrameType.RESULT, '{"exit_code":0}']],
      'a JSON frame comes out whole',
    );
    assert.deepEqual(
      got.filter((f) => f.stream === 2).map((f) => f.payload.length),
      [0],
      'an empty DATA frame comes out once',
    );
    assert.equal(Buffer.concat(got.filter((f) => f.stream === 4).map((f) => f.payload)).toString(), 'tail');
    assert.equal(d.pending, 0);
  }
});

test('decoder, transient: every chunk arrives in one reused buffer, yet what it keeps and its JSON payloads stay intact', () => {
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  const wire = Buffer.concat([
    encodeJsonFrame(1, FrameType.RESULT, { exit_code: 0 }),
    encodeFrame(3, FrameType.STDOUT, big),
    encodeWindow(5, 12345),
    encodeJsonFrame(6, FrameType.ERROR, { code: 'IO_ERROR', message: 'x'.repeat(300) }),
  ]);
  for (const step of [1, 5, 9, 13, 4096, wire.length]) {
    const d = new FrameDecoder({ pieces: true, transient: true });
    const reused = Buffer.alloc(step);
    const kept: Frame[] = [];
    const stdout: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) {
      const n = wire.copy(reused, 0, i, i + step);
      for (const f of d.push(reused.subarray(0, n))) {
        // A byte-stream piece is valid only until the next read: the caller copies it now.
        if (f.type === FrameType.STDOUT) stdout.push(Buffer.from(f.payload));
        else kept.push(f);
      }
      reused.fill(0xee); // the next read overwrites the memory
    }
    assert.deepEqual(Buffer.concat(stdout), big, `step ${step}`);
    assert.deepEqual(
      kept.map((f) => [f.stream, f.type]),
      [
        [1, FrameType.RESULT],
        [5, FrameType.WINDOW],
        [6, FrameType.ERROR],
      ],
    );
    assert.equal(kept[0]?.payload.toString(), '{"exit_code":0}', `step ${step}`);
    assert.equal(decodeWindow(kept[1]?.payload ?? Buffer.alloc(0)), 12345, `step ${step}`);
    assert.equal(JSON.parse(kept[2]?.payload.toString() ?? '').message, 'x'.repeat(300), `step ${step}`);
  }
});

test('decoder and encoder reject frames over 1 MiB', () => {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32BE(MAX_PAYLOAD + 1, 0);
  assert.throws(() => new FrameDecoder().push(header), ProtocolError);
  assert.throws(() => encodeFrame(1, FrameType.DATA, Buffer.alloc(MAX_PAYLOAD + 1)), ProtocolError);
  assert.equal(encodeFrame(1, FrameType.DATA, Buffer.alloc(MAX_PAYLOAD)).length, HEADER_SIZE + MAX_PAYLOAD);
});

let agent: RunningAgent;

before(() => {
  agent = startAgent();
});

after(async () => {
  await stopAllAgents();
});

/** Raw connection to the agent: send frames, read frames until it closes (HELLO, which
 * always comes first, is checked and left out). */
async function rawSession(frames: Buffer[]): Promise<{ stream: number; type: number; payload: Buffer }[]> {
  const client = await AgentClient.connect(agent.socketPath); // waits for the socket to exist
  client.close();
  const sock = net.createConnection({ path: agent.socketPath });
  await once(sock, 'connect');
  const dec = new FrameDecoder();
  const got: { stream: number; type: number; payload: Buffer }[] = [];
  sock.on('data', (d: Buffer) => got.push(...dec.push(d)));
  for (const f of frames) sock.write(f);
  await once(sock, 'close');
  assert.equal(got[0]?.stream, 0);
  assert.equal(got[0]?.type, FrameType.HELLO, 'HELLO is the first frame');
  return got.slice(1);
}

test('agent answers an oversized frame with PROTOCOL_ERROR on stream 0 and closes', async () => {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt32BE(MAX_PAYLOAD + 1, 0);
  header.writeUInt32BE(1, 4);
  header.writeUInt8(FrameType.DATA, 8);
  const got = await rawSession([header]);
  assert.equal(got.length, 1);
  assert.equal(got[0]?.stream, 0);
  assert.equal(got[0]?.type, FrameType.ERROR);
  assert.equal(JSON.parse(got[0]?.payload.toString() ?? '{}').code, 'PROTOCOL_ERROR');
});

test('agent rejects reuse of an open stream id as a protocol error', async () => {
  const open = encodeJsonFrame(5, FrameType.OPEN, { op: 'exec', argv: ['sleep', '100'] });
  const got = await rawSession([open, open]);
  const err = got.find((f) => f.stream === 0 && f.type === FrameType.ERROR);
  assert.ok(err, 'expected a connection-level error');
  assert.match(JSON.parse(err.payload.toString()).message, /already open/);
});

test('agent rejects stream id 0 and client-only frame types', async () => {
  const got = await rawSession([encodeJsonFrame(0, FrameType.OPEN, { op: 'health' })]);
  assert.equal(got[0]?.type, FrameType.ERROR);
  const got2 = await rawSession([encodeJsonFrame(3, FrameType.RESULT, {})]);
  assert.equal(got2[0]?.type, FrameType.ERROR);
  assert.equal(got2[0]?.stream, 0);
});

test('a client that overruns its window is disconnected', async () => {
  const open = encodeJsonFrame(9, FrameType.OPEN, { op: 'exec', argv: ['sleep', '100'], stdin: true });
  const chunks = [];
  for (let i = 0; i < 5; i++) chunks.push(encodeFrame(9, FrameType.DATA, Buffer.alloc(64 * 1024 + 1)));
  const got = await rawSession([open, ...chunks]);
  const err = got.find((f) => f.stream === 0 && f.type === FrameType.ERROR);
  assert.ok(err);
  assert.match(JSON.parse(err.payload.toString()).message, /window/);
});

test('bad requests get a stream error, not a dropped connection', async () => {
  const c = await AgentClient.connect(agent.socketPath);
  try {
    const sock = net.createConnection({ path: agent.socketPath });
    await once(sock, 'connect');
    const dec = new FrameDecoder();
    const got: { stream: number; type: number; payload: Buffer }[] = [];
    const fourAnswers = new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => {
        got.push(...dec.push(d).filter((f) => f.type !== FrameType.HELLO));
        if (got.length >= 4) resolve();
      });
    });
    sock.write(encodeFrame(1, FrameType.OPEN, Buffer.from('{not json')));
    sock.write(encodeJsonFrame(2, FrameType.OPEN, { op: 'teleport' }));
    sock.write(encodeJsonFrame(3, FrameType.OPEN, { op: 'exec', argv: [] }));
    sock.write(encodeJsonFrame(4, FrameType.OPEN, { op: 'health' }));
    await fourAnswers;
    const byId = new Map(got.map((f) => [f.stream, f]));
    assert.equal(JSON.parse(byId.get(1)?.payload.toString() ?? '{}').code, 'INVALID_ARGUMENT');
    assert.equal(JSON.parse(byId.get(2)?.payload.toString() ?? '{}').code, 'UNSUPPORTED');
    assert.equal(JSON.parse(byId.get(3)?.payload.toString() ?? '{}').code, 'INVALID_ARGUMENT');
    assert.equal(byId.get(4)?.type, FrameType.RESULT);
    sock.destroy();
    // the shared agent is still healthy
    assert.equal((await c.health()).pid, agent.pid);
  } finally {
    c.close();
  }
});

test('SIGNAL frames reach the exec process group', { timeout: 30_000 }, async () => {
  const c = await AgentClient.connect(agent.socketPath);
  c.close();
  const sock = net.createConnection({ path: agent.socketPath });
  await once(sock, 'connect');
  const dec = new FrameDecoder();
  let out = '';
  const result = new Promise<Record<string, unknown>>((resolve) => {
    sock.on('data', (d: Buffer) => {
      for (const f of dec.push(d)) {
        if (f.stream !== 1) continue;
        if (f.type === FrameType.STDOUT) {
          out += f.payload.toString();
          if (out === 'ready\n') sock.write(encodeJsonFrame(1, FrameType.SIGNAL, { signal: 'TERM' }));
        }
        if (f.type === FrameType.RESULT) resolve(JSON.parse(f.payload.toString()));
      }
    });
  });
  sock.write(
    encodeJsonFrame(1, FrameType.OPEN, {
      op: 'exec',
      // "ready" only once the background sleep exists. The RESULT can only come once the
      // sleep (which holds stdout) is dead too: the signal went to the whole group.
      // (No trap here: a trap in sh races with its forking children.)
      argv: ['sh', '-c', 'sleep 1000 & echo ready; wait'],
    }),
  );
  const r = await result;
  assert.equal(r.signal, 'SIGTERM');
  assert.equal(r.exit_code, null);
  assert.equal(out, 'ready\n');
  sock.destroy();
});

test('AgentClient.fromStream speaks the protocol over any duplex', async () => {
  const sock = net.createConnection({ path: agent.socketPath });
  await once(sock, 'connect');
  const c = AgentClient.fromStream(sock);
  const h = await c.health();
  assert.equal(h.pid, agent.pid);
  assert.equal(typeof h.version, 'string');
  c.close();
  await c.closed;
  await assert.rejects(c.health(), (e: unknown) => e instanceof AgentError && e.code === 'CHANNEL_CLOSED');
});

/** Raw exec on a fresh connection: every frame of stream 1 up to its terminal frame. */
async function rawExec(req: Record<string, unknown>): Promise<{ type: number; payload: Buffer }[]> {
  const sock = net.createConnection({ path: agent.socketPath });
  await once(sock, 'connect');
  try {
    const dec = new FrameDecoder();
    const got: { type: number; payload: Buffer }[] = [];
    const done = new Promise<void>((resolve, reject) => {
      sock.on('data', (d: Buffer) => {
        for (const f of dec.push(d)) {
          if (f.stream !== 1) continue;
          got.push(f);
          if (f.type === FrameType.RESULT || f.type === FrameType.ERROR) resolve();
        }
      });
      sock.on('close', () => reject(new Error(`connection closed; got ${JSON.stringify(got)}`)));
    });
    sock.write(encodeJsonFrame(1, FrameType.OPEN, { op: 'exec', ...req }));
    await done;
    return got;
  } finally {
    sock.destroy();
  }
}

test('exec: STARTED {pid} comes first, before any output, and matches the RESULT pid', async () => {
  await AgentClient.connect(agent.socketPath).then((c) => c.close()); // the socket exists
  const got = await rawExec({ argv: ['sh', '-c', 'echo "$$"; echo err >&2'] });
  assert.equal(got[0]?.type, FrameType.STARTED, JSON.stringify(got.map((f) => f.type)));
  const pid = JSON.parse(got[0]?.payload.toString() ?? '{}').pid;
  assert.equal(typeof pid, 'number');
  assert.equal(got.filter((f) => f.type === FrameType.STARTED).length, 1);
  const out = Buffer.concat(got.filter((f) => f.type === FrameType.STDOUT).map((f) => f.payload)).toString();
  assert.equal(out, `${pid}\n`);
  const last = got[got.length - 1];
  assert.equal(last?.type, FrameType.RESULT);
  assert.equal(JSON.parse(last?.payload.toString() ?? '{}').pid, pid);
});

test('exec: a start failure (command not found) still sends STARTED first; an invalid request none', async () => {
  await AgentClient.connect(agent.socketPath).then((c) => c.close());
  const got = await rawExec({ argv: ['no-such-command-sb'] });
  assert.equal(got[0]?.type, FrameType.STARTED);
  assert.equal(JSON.parse(got[got.length - 1]?.payload.toString() ?? '{}').exit_code, 127);
  const bad = await rawExec({ argv: [] });
  assert.deepEqual(
    bad.map((f) => f.type),
    [FrameType.ERROR],
  );
});
