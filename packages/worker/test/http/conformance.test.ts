/**
 * The worker contract's conformance suite, generated from WORKER_ROUTES: every route runs in
 * process (the WorkerApi object itself, as `serve` uses it), over HTTP (HttpWorkerClient →
 * WorkerHttpServer) and over the multiplexed channel (MuxWorkerClient → WorkerHttpServer's
 * `scaibunker-mux` upgrade), against the same recording fake. Every transport must hand the fake the
 * same arguments, hand the caller the same result, and reject with the same WorkerError for
 * every error code the route declares. A route without a case here fails the suite.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { Duplex, PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { WORKER_ROUTE_LIST, WORKER_ROUTES, type WorkerArgs, type WorkerResult, type WorkerTarget, type WorkerVerb } from '@scaibunker/core';
import { MuxWorkerClient } from '@scaibunker/core/worker-mux-client';
import { HttpWorkerClient } from '../../src/http/HttpWorkerClient.js';
import { WorkerHttpServer } from '../../src/http/WorkerHttpServer.js';
import { WorkerError } from '../../src/WorkerApi.js';

const TOKEN = 'conformance-token-0123456789abcdef';
const SHA = 'c'.repeat(64);
const BUNKER = 'bk_conformance';
const SNAPSHOT = 'sn_conformance01';

/** One call of a verb: its arguments (fresh per run: streams are used up) and the fake's answer. */
interface Case<K extends WorkerVerb> {
  args(): WorkerArgs<K>;
  result(): WorkerResult<K>;
}

const EXEC = 'ex_conformance';
const PROCESS = {
  execId: EXEC,
  pid: 42,
  state: 'running',
  exitCode: null,
  signal: null,
  timedOut: false,
  startedAt: '2030-01-01T00:00:00.000Z',
  endedAt: null,
  durationMs: null,
  background: true,
  tag: 'dev',
  pty: true,
  stdinOpen: true,
  nextSeq: 9,
  firstSeq: 1,
  outputBytes: 100,
  outputTruncated: false,
} as const;

const stat = { path: '/etc/hosts', name: 'hosts', type: 'file', size: 12, mode: 0o644, mtime_ms: 1_700_000_000_000 } as const;

/** Typed per verb: the compiler refuses a verb without a case, the test below a route without one. */
const CASES: { [K in WorkerVerb]: Case<K> } = {
  spawn: {
    args: () => [
      {
        bunkerId: BUNKER,
        imageSha256: SHA,
        isolation: 'container',
        cpuMillicores: 500,
        memoryMb: 128,
        diskMb: 256,
        networkProfile: 'transit',
        bandwidthMbit: 10,
        interfaces: [{ bridgeId: 'br_abc', tenantId: 'tn_x', mac: '02:00:00:00:00:01', spoofGuard: true }],
        hostname: 'bunker',
        restore: { snapshotId: SNAPSHOT, sha256: SHA, sizeBytes: 4096, format: 'container-tar' },
      },
    ],
    result: () => undefined,
  },
  destroy: { args: () => [BUNKER], result: () => undefined },
  pause: { args: () => [BUNKER], result: () => undefined },
  resume: { args: () => [BUNKER], result: () => undefined },
  snapshot: {
    args: () => [BUNKER, { snapshotId: SNAPSHOT }],
    result: () => ({ snapshotId: SNAPSHOT, sha256: SHA, sizeBytes: 123_456_789, format: 'microvm-qcow2' }),
  },
  exec: {
    args: () => [BUNKER, { argv: ['sh', '-c', 'echo hi'], env: { A: 'b' }, cwd: '/tmp', stdin: 'in', timeoutMs: 5000 }, {}],
    result: () => ({ exitCode: 3, signal: null, timedOut: false, durationMs: 12 }),
  },
  startProcess: {
    args: () => [
      BUNKER,
      { execId: EXEC, argv: ['sh'], env: { A: 'b' }, timeoutMs: 0, tag: 'dev', stdin: true, pty: { cols: 120, rows: 40 } },
    ],
    result: () => ({ ...PROCESS }),
  },
  listProcesses: { args: () => [BUNKER], result: () => [{ ...PROCESS }, { ...PROCESS, execId: 'ex_other', state: 'exited', exitCode: 0 }] },
  getProcess: { args: () => [BUNKER, EXEC], result: () => ({ ...PROCESS }) },
  processEvents: {
    args: () => [BUNKER, EXEC, 7, { onEvent: () => undefined }],
    result: () => ({ ...PROCESS, state: 'exited', exitCode: 0 }),
  },
  writeStdin: { args: () => [BUNKER, EXEC, Readable.from([Buffer.from('typed')])], result: () => ({ bytes: 5 }) },
  closeStdin: { args: () => [BUNKER, EXEC], result: () => undefined },
  signalProcess: { args: () => [BUNKER, EXEC, 'SIGTERM'], result: () => undefined },
  resizeProcess: { args: () => [BUNKER, EXEC, 100, 30], result: () => undefined },
  watchFiles: { args: () => [BUNKER, '/work', { recursive: true }, { onEvent: () => undefined }], result: () => undefined },
  // An echo stream: what the caller writes comes back (run() writes, ends and reads it).
  openTunnel: { args: () => [BUNKER, 8080], result: () => new PassThrough() },
  readFile: { args: () => [BUNKER, '/etc/hosts'], result: () => Readable.from([Buffer.from('file '), Buffer.from('bytes')]) },
  writeFile: {
    args: () => [BUNKER, '/tmp/up', Readable.from([Buffer.from('upload')]), { mode: 0o600, parents: true, maxBytes: 100 }],
    result: () => ({ bytes: 6 }),
  },
  stat: { args: () => [BUNKER, '/etc/hosts'], result: () => ({ ...stat }) },
  list: {
    args: () => [BUNKER, '/etc'],
    result: () => [{ ...stat }, { path: '/etc/l', name: 'l', type: 'symlink', size: 0, mode: 0o777, mtime_ms: 1, link_target: 'hosts' }],
  },
  mkdir: { args: () => [BUNKER, '/tmp/a/b', { parents: true }], result: () => undefined },
  remove: { args: () => [BUNKER, '/tmp/a', { recursive: true }], result: () => undefined },
  stats: {
    args: () => [[BUNKER, 'bk_other']],
    result: () => ({ [BUNKER]: { cpuUsageNs: 1e9, memoryBytes: 4096, pids: 2, diskUsedBytes: 8192 } }),
  },
  createBridge: { args: () => [{ bridgeId: 'br_abc', tenantId: 'tn_x' }], result: () => undefined },
  deleteBridge: { args: () => ['br_abc'], result: () => undefined },
  ensureImage: { args: () => [SHA], result: () => ({ source: 'peer', bytes: 1234 }) },
  openCachedImage: {
    args: () => [SHA],
    result: () => ({ stream: Readable.from([Buffer.from('image bytes')]), bytes: 'image bytes'.length }),
  },
};

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString();
}

function isHandlers(x: unknown): x is { onStdout?: (b: Buffer) => unknown; onStderr?: (b: Buffer) => unknown } {
  return typeof x === 'object' && x !== null && ('onStdout' in x || 'onStderr' in x || 'signal' in x || Object.keys(x).length === 0);
}

function isEventHandlers(x: unknown): x is { onEvent: (e: unknown) => unknown } {
  return typeof x === 'object' && x !== null && 'onEvent' in x;
}

/** A value made comparable across transports: streams become their text, undefined fields go. */
async function plain(x: unknown): Promise<unknown> {
  if (x instanceof Readable) return { bytes: await text(x) };
  if (x === undefined) return undefined;
  if (typeof x === 'object' && x !== null && 'stream' in x && x.stream instanceof Readable)
    return { ...(x as object), stream: await text(x.stream) };
  return JSON.parse(JSON.stringify(x));
}

/**
 * A WorkerTarget that records each call (arguments made plain), writes a line to stdout and
 * stderr of an exec, and answers the case's result — or throws `failWith` when set.
 */
function recordingFake() {
  const calls: Array<{ verb: string; args: unknown[] }> = [];
  const state: { failWith: WorkerError | null } = { failWith: null };
  const target = new Proxy({} as WorkerTarget, {
    get: (_t, prop) => {
      const verb = prop as WorkerVerb;
      if (!(verb in CASES)) return undefined;
      return async (...args: unknown[]) => {
        const seen: unknown[] = [];
        for (const a of args) {
          if (verb === 'exec' && isHandlers(a)) {
            await a.onStdout?.(Buffer.from('out\n'));
            await a.onStderr?.(Buffer.from('err\n'));
            seen.push('<handlers>');
          } else if (isEventHandlers(a)) {
            if (verb === 'processEvents') await a.onEvent({ stream: 'stdout', seq: 7, data: Buffer.from('seven\n') });
            else await a.onEvent({ type: 'create', path: '/work/new', is_dir: false });
            seen.push('<events>');
          } else seen.push(await plain(a));
        }
        calls.push({ verb, args: seen });
        if (state.failWith) throw state.failWith;
        return (CASES[verb] as Case<WorkerVerb>).result();
      };
    },
  });
  return { target, calls, state };
}

describe('worker contract conformance (generated from WORKER_ROUTES)', () => {
  const fake = recordingFake();
  let server: WorkerHttpServer;
  let client: HttpWorkerClient;
  let muxClient: MuxWorkerClient;

  before(async () => {
    server = new WorkerHttpServer(fake.target, TOKEN);
    const url = await server.listen();
    client = new HttpWorkerClient(url, TOKEN);
    muxClient = new MuxWorkerClient(url, TOKEN);
  });
  after(async () => {
    client?.close();
    muxClient?.close();
    await server?.close();
  });

  const transports = {
    'in-process': () => fake.target,
    http: () => client,
    mux: () => muxClient,
  } as const;

  /** Runs one call of `verb` on a transport; what the caller saw and what the fake was handed. */
  async function run(transport: keyof typeof transports, verb: WorkerVerb) {
    const args = (CASES[verb] as Case<WorkerVerb>).args() as unknown[];
    const output: string[] = [];
    if (verb === 'exec')
      args[2] = { onStdout: (c: Buffer) => void output.push(`stdout:${c}`), onStderr: (c: Buffer) => void output.push(`stderr:${c}`) };
    if (WORKER_ROUTES[verb].kind === 'events') {
      const events = { onEvent: (e: unknown) => void output.push(JSON.stringify(e)) };
      args[args.length - 1] = events;
    }
    const before = fake.calls.length;
    const api = transports[transport]();
    const fn = api[verb] as (...a: unknown[]) => Promise<unknown>;
    let result: unknown;
    let error: unknown;
    try {
      const answer = await fn.apply(api, args);
      if (WORKER_ROUTES[verb].kind === 'tunnel') {
        const tunnel = answer as Duplex;
        const echoed = text(tunnel);
        tunnel.write('ping ');
        tunnel.end('pong');
        result = { echoed: await echoed };
      } else result = await plain(answer);
    } catch (err) {
      error = err;
    }
    return { result, error, output, calls: fake.calls.slice(before) };
  }

  it('has a case for every route, and a route for every case', () => {
    assert.deepEqual(WORKER_ROUTE_LIST.map((r) => r.verb).sort(), Object.keys(CASES).sort());
    for (const [verb, route] of Object.entries(WORKER_ROUTES)) assert.equal(route.verb, verb);
  });

  it('declares each route once: no two routes share a method and path', () => {
    const keys = WORKER_ROUTE_LIST.map((r) => `${r.method} ${r.url}`);
    assert.equal(new Set(keys).size, keys.length);
  });

  for (const route of WORKER_ROUTE_LIST) {
    describe(`${route.verb}: ${route.method} ${route.url} (${route.kind})`, () => {
      it('hands the worker the same call and the caller the same answer in process, over HTTP and over the channel', async () => {
        fake.state.failWith = null;
        const local = await run('in-process', route.verb);
        assert.equal(local.error, undefined, String(local.error));
        assert.equal(local.calls.length, 1);
        for (const transport of ['http', 'mux'] as const) {
          const remote = await run(transport, route.verb);
          assert.equal(remote.error, undefined, `${transport}: ${String(remote.error)}`);
          assert.deepEqual(remote.calls, local.calls, transport);
          assert.deepEqual(remote.result, local.result, transport);
          assert.deepEqual(remote.output, local.output, transport);
        }
        if (route.kind === 'exec') assert.deepEqual(local.output, ['stdout:out\n', 'stderr:err\n']);
        if (route.kind === 'events') assert.equal(local.output.length, 1);
        if (route.kind === 'tunnel') assert.deepEqual(local.result, { echoed: 'ping pong' });
      });

      for (const code of route.errors) {
        it(`rejects with ${code} alike on every transport`, async () => {
          fake.state.failWith = new WorkerError(code, `the fake says ${code}`);
          try {
            for (const transport of Object.keys(transports) as Array<keyof typeof transports>) {
              const { error } = await run(transport, route.verb);
              assert.ok(error instanceof WorkerError, `${transport}: expected a WorkerError, got ${String(error)}`);
              assert.equal(error.code, code, transport);
              assert.equal(error.message, `the fake says ${code}`, transport);
            }
          } finally {
            fake.state.failWith = null;
          }
        });
      }

      if (route.params || route.query || route.body)
        it('refuses a request its schemas reject, before the worker sees it', async () => {
          const before = fake.calls.length;
          const url = new URL(
            route.url.slice(1).replace(/:\w+/g, 'not%20an%20id'),
            server.url.endsWith('/') ? server.url : `${server.url}/`,
          );
          const res = await fetch(url, {
            method: route.method,
            headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
            body: route.method === 'GET' || route.method === 'DELETE' ? null : JSON.stringify({ unexpected: true }),
          });
          assert.equal(res.status, 400);
          assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
          assert.equal(fake.calls.length, before);
        });
    });
  }

  describe('tunnel upgrades', () => {
    /** A raw upgrade request; resolves with the status (101, or the error answer's) and body. */
    function upgrade(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
      return new Promise((resolve, reject) => {
        const req = http.request(new URL(path, server.url), { method: 'GET', agent: false, headers });
        req.on('error', reject);
        req.on('upgrade', (res, socket) => {
          socket.destroy();
          resolve({ status: res.statusCode ?? 0, body: '' });
        });
        req.on('response', (res) => {
          text(res).then((body) => resolve({ status: res.statusCode ?? 0, body }), reject);
        });
        req.end();
      });
    }
    const up = { connection: 'Upgrade', upgrade: 'scaibunker-tunnel' };
    const auth = { authorization: `Bearer ${TOKEN}` };

    it('answers 101 with a valid token and port', async () => {
      assert.equal((await upgrade(`/v1/worker/bunkers/${BUNKER}/ports/80/tunnel`, { ...up, ...auth })).status, 101);
    });

    it('refuses a wrong token (401), a bad port (400), another upgrade or path (404), without calling the worker', async () => {
      const before = fake.calls.length;
      const wrong = await upgrade(`/v1/worker/bunkers/${BUNKER}/ports/80/tunnel`, { ...up, authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401);
      for (const port of ['0', '65536', '08', 'http']) {
        const r = await upgrade(`/v1/worker/bunkers/${BUNKER}/ports/${port}/tunnel`, { ...up, ...auth });
        assert.equal(r.status, 400, port);
        assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'VALIDATION_FAILED');
      }
      const other = await upgrade(`/v1/worker/bunkers/${BUNKER}/ports/80/tunnel`, { ...auth, connection: 'Upgrade', upgrade: 'websocket' });
      assert.equal(other.status, 404);
      const path = await upgrade(`/v1/worker/bunkers/${BUNKER}/tunnel`, { ...up, ...auth });
      assert.equal(path.status, 404);
      assert.equal(fake.calls.length, before);
    });

    it('a plain GET of a tunnel route is 426', async () => {
      const res = await fetch(new URL(`/v1/worker/bunkers/${BUNKER}/ports/80/tunnel`, server.url), { headers: auth });
      assert.equal(res.status, 426);
      await res.body?.cancel();
    });

    it('passes half-closes through: the server side ends first, the caller keeps writing', async () => {
      // A fake whose tunnel says hello, ends its side, and records what it receives after.
      let received = '';
      let gotEnd!: () => void;
      const ended = new Promise<void>((r) => (gotEnd = r));
      const half = new WorkerHttpServer(
        {
          openTunnel: async () => {
            const inbound = new PassThrough();
            inbound.on('data', (c: Buffer) => {
              received += c.toString();
            });
            inbound.on('end', gotEnd);
            const outbound = new PassThrough();
            outbound.end('hello');
            // A Duplex whose write side is `inbound` and read side `outbound`.
            return Duplex.from({ writable: inbound, readable: outbound });
          },
        } as unknown as WorkerTarget,
        TOKEN,
      );
      const c = new HttpWorkerClient(await half.listen(), TOKEN);
      try {
        const t = await c.openTunnel(BUNKER, 80);
        assert.equal(await text(t), 'hello');
        t.end('after the server ended');
        await ended;
        assert.equal(received, 'after the server ended');
      } finally {
        c.close();
        await half.close();
      }
    });
  });
});
