/**
 * The worker's multiplexed channel (MuxWorkerClient ↔ WorkerHttpServer's `scaibunker-mux`
 * upgrade) beyond what the conformance suite checks per route: a worker killed mid-exec, the
 * next call reconnecting, credit bounding an exec's output when the caller is slow, aborts,
 * and refusing what is not the protocol (a wrong token, bad frames, bad arguments).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { after, afterEach, describe, it } from 'node:test';
import { encodeMuxFrame, encodeMuxJson, MUX_EXEC_WINDOW, MuxFrameType, type WorkerTarget } from '@scaibunker/core';
import { MuxWorkerClient } from '@scaibunker/core/worker-mux-client';
import { WorkerHttpServer } from '../../src/http/WorkerHttpServer.js';
import { WorkerError } from '../../src/WorkerApi.js';

const TOKEN = 'mux-test-token-0123456789abcdef';
const BUNKER = 'bk_mux';
const EXEC = { argv: ['true'], timeoutMs: 5000 };
const OUTCOME = { exitCode: 0, signal: null, timedOut: false, durationMs: 1 };
const FIXTURE = new URL('../fixtures/muxWorker.ts', import.meta.url).pathname;

/** Things to undo after each test, whatever happened in it. */
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const undo of cleanups.splice(0).reverse()) await undo();
});

async function serve(target: Partial<WorkerTarget>): Promise<{ server: WorkerHttpServer; url: string; client: MuxWorkerClient }> {
  const server = new WorkerHttpServer(target as WorkerTarget, TOKEN);
  const url = await server.listen();
  const client = new MuxWorkerClient(url, TOKEN);
  cleanups.push(
    () => server.close(),
    () => client.close(),
  );
  return { server, url, client };
}

/** A worker daemon in a child process; resolves once it listens. */
async function startWorker(port = 0): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, String(port)], {
    env: { ...process.env, MUX_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  // Its URL line, or its exit (it could not listen): a failed start fails the test instead of hanging it.
  const line = await Promise.race([
    once(createInterface({ input: child.stdout as NodeJS.ReadableStream }), 'line').then(([l]) => l as string),
    once(child, 'exit').then(([code, signal]) => {
      throw new Error(`the worker fixture exited (${String(code ?? signal)}) before listening`);
    }),
  ]);
  return { child, url: line };
}

/** A raw channel connection: the 101 (or the refusal's status) and the socket. */
function upgrade(url: string, token: string): Promise<{ status: number; socket: Socket | null }> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL('/v1/worker/mux', url), {
      agent: false,
      headers: { authorization: `Bearer ${token}`, connection: 'Upgrade', upgrade: 'scaibunker-mux' },
    });
    req.on('error', reject);
    req.on('upgrade', (res, socket: Socket) => {
      cleanups.push(() => socket.destroy());
      resolve({ status: res.statusCode ?? 0, socket });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, socket: null });
    });
    req.end();
  });
}

async function rejection(p: Promise<unknown>): Promise<WorkerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkerError, `expected a WorkerError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('worker channel (scaibunker-mux)', () => {
  after(async () => {
    for (const undo of cleanups.splice(0).reverse()) await undo();
  });

  it('a worker killed mid-exec fails the calls in flight with WORKER_UNAVAILABLE; the next call reconnects', async () => {
    const first = await startWorker();
    const client = new MuxWorkerClient(first.url, TOKEN);
    cleanups.push(() => client.close());
    let seen = '';
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const execs = [1, 2].map(() =>
      client.exec(BUNKER, EXEC, {
        onStdout: (c) => {
          seen += c.toString();
          started();
        },
      }),
    );
    await running;
    // Listened for before the kill: the exit may come before the calls' failures are seen.
    const exited = once(first.child, 'exit');
    first.child.kill('SIGKILL');
    for (const exec of execs) assert.equal((await rejection(exec)).code, 'WORKER_UNAVAILABLE');
    assert.match(seen, /^started\n/);
    // Nothing listens now: the next call fails as a refused connection does over HTTP.
    await exited;
    assert.equal((await rejection(client.stat(BUNKER, '/a'))).code, 'WORKER_UNAVAILABLE');
    // The worker is back on the same port: the same client reconnects on its next call.
    await startWorker(Number(new URL(first.url).port));
    assert.equal((await client.stat(BUNKER, '/back')).path, '/back');
  });

  it("bounds an exec's output in flight by the credit when the caller's handler is slow", async () => {
    const CHUNK = 64 * 1024;
    const TOTAL = 4 * 1024 * 1024;
    let accepted = 0; // bytes whose onStdout resolved on the worker
    const { client } = await serve({
      exec: async (_id, _req, handlers) => {
        for (let sent = 0; sent < TOTAL; sent += CHUNK) {
          await handlers.onStdout?.(Buffer.alloc(CHUNK, sent / CHUNK));
          accepted += CHUNK;
        }
        return OUTCOME;
      },
      stat: async (_id, path) => ({ path, name: 'x', type: 'file', size: 1, mode: 0o644, mtime_ms: 1 }),
    });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let received = 0;
    let inOrder = true;
    let firstChunk!: () => void;
    const blocked = new Promise<void>((r) => (firstChunk = r));
    const exec = client.exec(BUNKER, EXEC, {
      onStdout: async (c) => {
        if (c[0] !== Math.floor(received / CHUNK) % 256) inOrder = false;
        received += c.length;
        firstChunk();
        await gate;
      },
    });
    await blocked;
    // Round trips on the same connection give the worker every chance to push on.
    for (let i = 0; i < 20; i++) await client.stat(BUNKER, `/rt${i}`);
    assert.ok(accepted <= MUX_EXEC_WINDOW, `the worker got ${accepted} bytes out past a window of ${MUX_EXEC_WINDOW}`);
    assert.equal(received, CHUNK); // the handler holds the first chunk
    release();
    assert.deepEqual(await exec, OUTCOME);
    assert.equal(received, TOTAL);
    assert.equal(accepted, TOTAL);
    assert.ok(inOrder, 'chunks arrived out of order');
  });

  it('an aborted exec rejects at once and aborts the command on the worker', async () => {
    let started!: (signal: AbortSignal | undefined) => void;
    const running = new Promise<AbortSignal | undefined>((r) => (started = r));
    const { client } = await serve({
      exec: async (_id, _req, handlers) => {
        started(handlers.signal);
        if (handlers.signal && !handlers.signal.aborted) await once(handlers.signal, 'abort');
        return OUTCOME;
      },
    });
    const ac = new AbortController();
    const exec = client.exec(BUNKER, EXEC, { signal: ac.signal });
    const workerSignal = await running;
    assert.ok(workerSignal);
    const workerAborted = once(workerSignal, 'abort');
    ac.abort();
    assert.equal((await rejection(exec)).code, 'IO_ERROR');
    await workerAborted;
    assert.equal(workerSignal.aborted, true);
  });

  it('carries worker errors and validation failures as HTTP does, without calling the worker on bad arguments', async () => {
    let calls = 0;
    const { client } = await serve({
      stat: async () => {
        calls++;
        throw new WorkerError('NOT_FOUND', 'no such file');
      },
    });
    const notFound = await rejection(client.stat(BUNKER, '/nope'));
    assert.deepEqual([notFound.code, notFound.message], ['NOT_FOUND', 'no such file']);
    assert.equal(calls, 1);
    // A bunker id the route's schema refuses: VALIDATION_FAILED on the wire, IO_ERROR to the caller (as over HTTP).
    const invalid = await rejection(client.stat('not an id', '/a'));
    assert.equal(invalid.code, 'IO_ERROR');
    assert.match(invalid.message, /params/);
    assert.equal(calls, 1);
  });

  it('refuses a wrong token (401, WORKER_UNAVAILABLE to the client) without calling the worker', async () => {
    let calls = 0;
    const { url } = await serve({ stat: async () => void calls++ as never });
    assert.equal((await upgrade(url, 'wrong')).status, 401);
    const client = new MuxWorkerClient(url, 'wrong-token');
    cleanups.push(() => client.close());
    const err = await rejection(client.stat(BUNKER, '/a'));
    assert.equal(err.code, 'WORKER_UNAVAILABLE');
    assert.match(err.message, /token/);
    assert.equal(calls, 0);
  });

  for (const [what, frame] of [
    ['an unknown frame type', encodeMuxFrame(1, 99)],
    ['a CALL that is not JSON', encodeMuxFrame(1, MuxFrameType.CALL, Buffer.from('{not json'))],
    ['a frame longer than any call may be', Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, MuxFrameType.CALL])],
    ['a CREDIT of the wrong size', encodeMuxFrame(1, MuxFrameType.CREDIT, Buffer.from([1]))],
  ] as const) {
    it(`closes the connection on ${what}, calling nothing`, async () => {
      let calls = 0;
      const { url } = await serve({ stat: async () => void calls++ as never });
      const { status, socket } = await upgrade(url, TOKEN);
      assert.equal(status, 101);
      assert.ok(socket);
      socket.resume();
      socket.write(frame);
      // A valid call after the bad frame must not run.
      socket.write(encodeMuxJson(2, MuxFrameType.CALL, { v: 'stat', w: { params: { id: BUNKER }, query: { path: '/a' } } }));
      await once(socket, 'close');
      assert.equal(calls, 0);
    });
  }

  it('calls a worker from before the channel (404 to the upgrade) over HTTP, without asking again at each call', async () => {
    const seen: string[] = [];
    let upgrades = 0;
    const old = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: '/p', name: 'p', type: 'file', size: 1, mode: 0o644, mtime_ms: 1 }));
    });
    old.on('upgrade', (_req, socket: Socket) => {
      upgrades++;
      const body = JSON.stringify({ error: { code: 'ROUTE_NOT_FOUND', message: 'no upgrade route' } });
      socket.end(
        `HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    old.listen(0, '127.0.0.1');
    await once(old, 'listening');
    cleanups.push(() => {
      old.closeAllConnections();
      old.close();
    });
    const { port } = old.address() as { port: number };
    const client = new MuxWorkerClient(`http://127.0.0.1:${port}`, TOKEN);
    cleanups.push(() => client.close());
    assert.equal((await client.stat(BUNKER, '/p')).path, '/p');
    assert.equal((await client.stat(BUNKER, '/p')).path, '/p');
    assert.equal(upgrades, 1);
    assert.deepEqual(seen, [`GET /v1/worker/bunkers/${BUNKER}/stat?path=%2Fp`, `GET /v1/worker/bunkers/${BUNKER}/stat?path=%2Fp`]);
  });

  it('answers a call of a route the channel does not carry with an error, and the connection stays usable', async () => {
    const { url } = await serve({ stat: async (_id, path) => ({ path, name: 'x', type: 'file', size: 1, mode: 0o644, mtime_ms: 1 }) });
    const { socket } = await upgrade(url, TOKEN);
    assert.ok(socket);
    const frames: Buffer[] = [];
    socket.on('data', (c: Buffer) => frames.push(c));
    socket.write(encodeMuxJson(1, MuxFrameType.CALL, { v: 'readFile', w: { params: { id: BUNKER }, query: { path: '/a' } } }));
    socket.write(encodeMuxJson(2, MuxFrameType.CALL, { v: 'stat', w: { params: { id: BUNKER }, query: { path: '/ok' } } }));
    const replies = new Map<number, { type: number; json: unknown }>();
    while (replies.size < 2) {
      await once(socket, 'data');
      const all = Buffer.concat(frames);
      replies.clear();
      for (let off = 0; off + 9 <= all.length; ) {
        const len = all.readUInt32BE(off);
        if (off + 9 + len > all.length) break;
        replies.set(all.readUInt32BE(off + 4), {
          type: all[off + 8] as number,
          json: JSON.parse(all.subarray(off + 9, off + 9 + len).toString()),
        });
        off += 9 + len;
      }
    }
    assert.deepEqual(replies.get(1)?.type, MuxFrameType.ERROR);
    assert.equal((replies.get(1)?.json as { code?: string } | undefined)?.code, 'ROUTE_NOT_FOUND');
    assert.deepEqual(replies.get(2)?.type, MuxFrameType.RESULT);
    assert.equal((replies.get(2)?.json as { path?: string } | undefined)?.path, '/ok');
  });
});
