/**
 * The SDK against a small local server speaking the API shapes: request building, streamed
 * uploads and downloads, SSE exec, pagination and error mapping — through the SDK's own HTTP
 * client, and again through a caller's `fetch`, since both share the response handling.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  AuthError,
  Bunker,
  type ClientOptions,
  ConflictError,
  type CreateBunkerOptions,
  type Isolation,
  NotFoundError,
  PayloadTooLargeError,
  QuotaError,
  ScaiBunkerClient,
  type ScaiBunkerError,
  UnavailableError,
  ValidationError,
} from '../src/index.js';
import { StubApiServer } from './support/StubApiServer.js';

async function rejectsWith(
  p: Promise<unknown>,
  Class: new (...args: never[]) => ScaiBunkerError,
  code: string,
  status: number,
): Promise<ScaiBunkerError> {
  let caught: unknown;
  await assert.rejects(p, (err: unknown) => {
    caught = err;
    assert.ok(err instanceof Class, `expected ${Class.name}, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    return true;
  });
  return caught as ScaiBunkerError;
}

async function drain(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** Makes the global fetch throw while `fn` runs: the SDK's own client must not need it. */
async function withoutGlobalFetch<T>(fn: () => Promise<T>): Promise<T> {
  const saved = globalThis.fetch;
  globalThis.fetch = (() => {
    throw new Error('global fetch used');
  }) as typeof fetch;
  try {
    return await fn();
  } finally {
    globalThis.fetch = saved;
  }
}

for (const via of ['own-client', 'custom-fetch'] as const) {
  describe(`SDK against a stub API server (${via === 'own-client' ? "the SDK's own HTTP client" : 'a custom fetch'})`, () => {
    let stub: StubApiServer;
    let client: ScaiBunkerClient;
    const fetchCalls: string[] = [];
    const customFetch: typeof fetch = (input, init) => {
      fetchCalls.push(`${init?.method ?? 'GET'} ${String(input)}`);
      return fetch(input, init);
    };
    /** A client for this variant: with the custom fetch in the custom-fetch run. */
    const newClient = (opts: ClientOptions) => new ScaiBunkerClient({ ...opts, ...(via === 'custom-fetch' ? { fetch: customFetch } : {}) });

    before(async () => {
      stub = await StubApiServer.start({ apiKey: 'sbk_secret', uploadCapBytes: 256 * 1024 });
      client = newClient({ baseUrl: `${stub.url}/`, apiKey: 'sbk_secret' });
    });
    after(async () => stub.close());

    test('create sends the API create body with the bearer key and returns a running bunker', async () => {
      const b = await Bunker.create(
        { image: 'minimal', lifecycle: 'session', memory_mb: 256, metadata: { team: 'a' }, env: { A: '1' } },
        client,
      );
      assert.match(b.id, /^bk_/);
      assert.equal(b.state, 'running');
      assert.equal(b.info.memory_mb, 256);
      const req = stub.lastRequest('POST', '/v1/modules/scaibunker/bunkers');
      assert.equal(req?.headers.authorization, 'Bearer sbk_secret');
      assert.equal(req?.headers['content-type'], 'application/json');
      assert.deepEqual(req?.json, { image: 'minimal', lifecycle: 'session', memory_mb: 256, metadata: { team: 'a' }, env: { A: '1' } });
      assert.deepEqual(JSON.parse(JSON.stringify(b)), b.info, 'a bunker serialises as its info');
    });

    test('create takes an isolation, typed as the API union', async () => {
      const b = await Bunker.create({ image: 'minimal', isolation: 'microvm' }, client);
      assert.equal(b.info.isolation, 'microvm');
      assert.deepEqual(stub.lastRequest('POST', '/v1/modules/scaibunker/bunkers')?.json, { image: 'minimal', isolation: 'microvm' });
      const isolation: Isolation = b.info.isolation;
      assert.equal(isolation, 'microvm');
      // @ts-expect-error: not an isolation the API offers
      const wrong: CreateBunkerOptions = { image: 'minimal', isolation: 'vm' };
      assert.ok(wrong);
    });

    test('connect, refresh and terminate (idempotent) keep the bunker info current', async () => {
      const created = await Bunker.create({ image: 'minimal' }, client);
      const b = await Bunker.connect(created.id, client);
      assert.equal(b.id, created.id);
      const ended = await b.terminate();
      assert.equal(ended.state, 'terminated');
      assert.equal(b.state, 'terminated');
      assert.equal((await b.terminate()).termination_reason, 'user');
      assert.equal((await created.refresh()).state, 'terminated');
      assert.equal(created.state, 'terminated');
    });

    test('pause and resume move the bunker between running and paused', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      assert.equal((await b.pause()).state, 'paused');
      assert.equal(b.state, 'paused');
      await rejectsWith(b.pause(), ConflictError, 'BUNKER_INVALID_TRANSITION', 409);
      assert.equal((await b.resume()).state, 'running');
      assert.equal(b.state, 'running');
    });

    test('list encodes state, repeated labels and limit, and iterates every page lazily', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++)
        ids.push((await Bunker.create({ image: 'minimal', metadata: { batch: 'list', n: String(i) } }, client)).id);
      const before = stub.requests.length;
      const listing = Bunker.list({ state: 'running', labels: { batch: 'list' }, limit: 2 }, client);
      assert.equal(stub.requests.length, before, 'nothing is fetched until iterated');
      const seen: string[] = [];
      for await (const b of listing) {
        assert.ok(b instanceof Bunker);
        seen.push(b.id);
      }
      assert.deepEqual(seen, [...ids].reverse());
      const listCalls = stub.requests.slice(before);
      assert.equal(listCalls.length, 3, 'three pages of two');
      assert.equal(listCalls[0]?.query.get('state'), 'running');
      assert.deepEqual(listCalls[0]?.query.getAll('label'), ['batch=list']);
      assert.equal(listCalls[0]?.query.get('limit'), '2');
      assert.equal(listCalls[0]?.query.get('cursor'), null);
      assert.equal(listCalls[1]?.query.get('cursor'), '2');

      const first = await Bunker.list({ labels: { batch: 'list', n: '3' } }, client).page();
      assert.deepEqual(
        first.items.map((b) => b.id),
        [ids[3]],
      );
      assert.equal(first.nextCursor, null);
      assert.deepEqual(stub.lastRequest('GET', '/bunkers')?.query.getAll('label'), ['batch=list', 'n=3']);
      const page = await Bunker.list({ labels: { batch: 'list' }, limit: 2, cursor: '4' }, client).page();
      assert.deepEqual(
        page.items.map((b) => b.id),
        [ids[0]],
      );
      assert.equal((await Bunker.list({ labels: { batch: 'list' } }, client).toArray()).length, 5);
    });

    test('exec without handlers sends one JSON request and returns the result', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const r = await b.exec('echo hi $NAME; err oops; exit 3', {
        env: { NAME: 'you' },
        cwd: '/tmp',
        user: 'user',
        timeoutS: 5,
        stdin: 'in',
      });
      assert.equal(r.stdout, 'hi you\n');
      assert.equal(r.stderr, 'oops\n');
      assert.equal(r.exit_code, 3);
      const req = stub.lastRequest('POST', '/exec');
      assert.deepEqual(req?.json, {
        command: 'echo hi $NAME; err oops; exit 3',
        timeout_s: 5,
        env: { NAME: 'you' },
        cwd: '/tmp',
        user: 'user',
        stdin: 'in',
      });
      const argv = await b.exec(['echo', 'a', 'b']);
      assert.equal(argv.stdout, 'a b\n');
      assert.deepEqual((stub.lastRequest('POST', '/exec')!.json as { command: unknown }).command, ['echo', 'a', 'b']);
    });

    test('exec with handlers streams stdout and stderr through SSE, then returns the exit', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const events: string[] = [];
      const r = await b.exec('echo one; err two; echo three; exit 7', {
        onStdout: (s) => void events.push(`out:${s}`),
        onStderr: async (s) => {
          await new Promise((res) => setTimeout(res, 5));
          events.push(`err:${s}`);
        },
      });
      assert.deepEqual(events, ['out:one\n', 'err:two\n', 'out:three\n']);
      assert.equal(r.exit_code, 7);
      assert.equal(r.stdout, 'one\nthree\n');
      assert.equal(r.stderr, 'two\n');
      assert.match(r.exec_id, /^ex_/);
      const req = stub.lastRequest('POST', '/exec');
      assert.equal((req!.json as { stream?: boolean }).stream, true);
      assert.equal(req?.headers.accept, 'text/event-stream');

      const quiet = await b.exec('echo x', { onStdout: () => undefined, collectOutput: false });
      assert.equal(quiet.stdout, '');
    });

    test('SSE events cut at awkward byte boundaries (CRLF, multi-byte UTF-8) arrive whole', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const out: string[] = [];
      const err: string[] = [];
      const r = await b.exec('split', { onStdout: (s) => void out.push(s), onStderr: (s) => void err.push(s) });
      assert.deepEqual(out, ['héllo ✓\n']);
      assert.deepEqual(err, ['wärn\n']);
      assert.equal(r.exit_code, 0);
    });

    test('an SSE error event becomes the typed error; a stream cut before exit is CONNECTION_FAILED', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const err = await rejectsWith(b.exec('boom', { onStdout: () => undefined }), UnavailableError, 'WORKER_UNAVAILABLE', 503);
      assert.deepEqual(err.details, { worker_id: 'wk_x' });
      assert.equal(err.message, 'the worker went away');
      await rejectsWith(b.exec('echo partial; hangup', { onStdout: () => undefined }), UnavailableError, 'CONNECTION_FAILED', 503);
    });

    test('files: write text, bytes and streams; read back whole or as a stream; list, stat, mkdir, remove', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      assert.deepEqual(await b.files.write('/tmp/a.txt', 'data', { mode: 0o600 }), { path: '/tmp/a.txt', bytes: 4 });
      const put = stub.lastRequest('PUT', '/files');
      assert.equal(put?.query.get('path'), '/tmp/a.txt');
      assert.equal(put?.query.get('mode'), '600');
      assert.equal(put?.headers['content-type'], 'application/octet-stream');
      assert.equal((await b.files.read('/tmp/a.txt')).toString(), 'data');
      assert.equal(stub.fileMode(b.id, '/tmp/a.txt'), '600');

      const bytes = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
      await rejectsWith(b.files.write('/deep/dir/x.bin', bytes.subarray(0, 10)), NotFoundError, 'FILE_NOT_FOUND', 404);
      await b.files.write('/deep/dir/x.bin', bytes.subarray(0, 200_000), { parents: true, mode: '0640' });
      assert.equal(stub.lastRequest('PUT', '/files')?.query.get('parents'), 'true');
      assert.ok((await b.files.read('/deep/dir/x.bin')).equals(bytes.subarray(0, 200_000)));
      assert.ok((await drain(b.files.readStream('/deep/dir/x.bin'))).equals(bytes.subarray(0, 200_000)));

      await b.files.mkdir('/data/a/b', { parents: true });
      assert.deepEqual(stub.lastRequest('POST', '/files/mkdir')?.json, { path: '/data/a/b', parents: true });
      await rejectsWith(b.files.mkdir('/data/a/b'), ConflictError, 'FILE_CONFLICT', 409);
      await b.files.write('/data/a/f.txt', Buffer.from('f'));
      const names = (await b.files.list('/data/a')).map((e) => `${e.name}:${e.type}`);
      assert.deepEqual(names, ['b:dir', 'f.txt:file']);
      const st = await b.files.stat('/data/a/f.txt');
      assert.equal(st.size, 1);
      assert.equal(await b.files.exists('/data/a/f.txt'), true);
      assert.equal(await b.files.exists('/data/nope'), false);
      await rejectsWith(b.files.remove('/data'), ConflictError, 'FILE_CONFLICT', 409);
      await b.files.remove('/data', { recursive: true });
      assert.equal(stub.lastRequest('DELETE', '/files')?.query.get('recursive'), 'true');
      await rejectsWith(b.files.stat('/data/a/f.txt'), NotFoundError, 'FILE_NOT_FOUND', 404);
    });

    test('a streamed upload is sent as it is produced, never buffered whole', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const first = Buffer.alloc(64 * 1024, 1);
      const second = Buffer.alloc(32 * 1024, 2);
      async function* producer() {
        yield first;
        // The server must have the first chunk before the producer makes the second one:
        // a client that buffered the whole body first would never get here.
        await Promise.race([
          stub.waitForUploadBytes(first.length),
          new Promise((_, reject) => setTimeout(() => reject(new Error('the upload was not streamed')), 5000)),
        ]);
        yield second;
        yield 'tail';
      }
      const r = await b.files.write('/tmp/streamed.bin', producer());
      assert.equal(r.bytes, first.length + second.length + 4);
      const upload = stub.uploads.at(-1);
      assert.equal(upload?.transferEncoding, 'chunked');
      assert.equal(upload?.contentLength, undefined);
      assert.equal(stub.lastRequest('PUT', '/files')?.headers.connection, 'close', 'a streamed upload is not sent on a reused connection');
      assert.ok(stub.fileContent(b.id, '/tmp/streamed.bin')?.equals(Buffer.concat([first, second, Buffer.from('tail')])));

      const fromReadable = Readable.from([Buffer.from('node '), Buffer.from('readable')]);
      await b.files.write('/tmp/readable.txt', fromReadable);
      assert.equal((await b.files.read('/tmp/readable.txt')).toString(), 'node readable');
    });

    test('uploads over the cap are PayloadTooLargeError, buffered or streamed', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      await rejectsWith(b.files.write('/tmp/big', Buffer.alloc(300 * 1024)), PayloadTooLargeError, 'PAYLOAD_TOO_LARGE', 413);
      async function* big() {
        for (let i = 0; i < 8; i++) yield Buffer.alloc(64 * 1024, i);
      }
      await rejectsWith(b.files.write('/tmp/big', big()), PayloadTooLargeError, 'PAYLOAD_TOO_LARGE', 413);
    });

    test('an endless streamed upload stops at the 413 answer', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      let closed = false;
      async function* endless() {
        try {
          for (;;) yield Buffer.alloc(64 * 1024, 7);
        } finally {
          closed = true;
        }
      }
      await rejectsWith(b.files.write('/tmp/endless', endless()), PayloadTooLargeError, 'PAYLOAD_TOO_LARGE', 413);
      // The connection of an upload answered early is not reused: the next calls work.
      assert.equal((await b.exec('echo next')).stdout, 'next\n');
      assert.deepEqual(await b.files.write('/tmp/small', Readable.from([Buffer.from('ok')])), { path: '/tmp/small', bytes: 2 });
      // The source is closed, not left half-read.
      for (let i = 0; i < 100 && !closed; i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(closed, 'the source was closed');
    });

    test("an upload whose source fails reports the source's error, not a network one", async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      async function* failing() {
        yield Buffer.from('start');
        throw new Error('disk read failed');
      }
      await assert.rejects(b.files.write('/tmp/fail', failing()), /disk read failed/);
    });

    test('a missing file read as a stream errors the stream with NotFoundError', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      await assert.rejects(
        drain(b.files.readStream('/nope')),
        (err: unknown) => err instanceof NotFoundError && err.code === 'FILE_NOT_FOUND',
      );
    });

    test('exec logs (one page or all pages) and the full output of a truncated exec', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      for (let i = 0; i < 3; i++) await b.exec(`echo ${i}`);
      const r = await b.exec('big');
      assert.equal(r.truncated, true);
      assert.equal(r.stdout.length, 1000);
      assert.equal((await b.fullOutput(r.exec_id)).length, 3000);
      assert.equal(stub.lastRequest('GET', '/output')?.query.get('stream'), 'stdout');
      assert.equal((await drain(b.fullOutputStream(r.exec_id, 'stderr'))).length, 0);
      assert.equal(stub.lastRequest('GET', '/output')?.query.get('stream'), 'stderr');
      await rejectsWith(b.fullOutput('ex_00000000000000000000'), NotFoundError, 'OUTPUT_NOT_FOUND', 404);

      const logs = await b.execLogs();
      assert.deepEqual(
        logs.map((l) => l.command),
        ['big', 'echo 2', 'echo 1', 'echo 0'],
      );
      const paged: string[] = [];
      for await (const l of b.execLogPages({ limit: 3 })) paged.push(l.command);
      assert.equal(paged.length, 4);
      assert.equal((await b.execLogs({ limit: 1, cursor: '1' }))[0]?.command, 'echo 2');
    });

    test('admin, workers and images', async () => {
      const tenant = await client.admin.createTenant('acme');
      assert.match(tenant.id, /^tn_/);
      const key = await client.admin.createApiKey(tenant.id, 'ci', ['scaibunker:read', 'scaibunker:execute']);
      assert.match(key.key, /^sbk_/);
      assert.deepEqual(stub.lastRequest('POST', '/api-keys')?.json, { name: 'ci', permissions: ['scaibunker:read', 'scaibunker:execute'] });
      await rejectsWith(
        client.admin.createApiKey('tn_00000000000000000000', 'x', ['scaibunker:read']),
        NotFoundError,
        'TENANT_NOT_FOUND',
        404,
      );
      const [w] = await client.workers.list();
      assert.equal(w?.state, 'online');
      assert.equal((await client.workers.drain(w!.id)).state, 'draining');
      assert.equal((await client.workers.resume(w!.id)).state, 'online');
      await rejectsWith(client.workers.drain('wk_00000000000000000000'), NotFoundError, 'WORKER_NOT_FOUND', 404);
      assert.deepEqual(
        (await client.images.list()).map((i) => i.name),
        ['minimal'],
      );
    });

    test('errors map to their classes', async () => {
      await rejectsWith(Bunker.connect('bk_00000000000000000000', client), NotFoundError, 'BUNKER_NOT_FOUND', 404);
      await rejectsWith(Bunker.create({ image: 'missing' }, client), NotFoundError, 'IMAGE_NOT_FOUND', 404);
      await rejectsWith(Bunker.create({ image: 'minimal', memory_mb: 200000 }, client), QuotaError, 'QUOTA_EXCEEDED', 429);
      await rejectsWith(Bunker.create({} as never, client), ValidationError, 'VALIDATION_FAILED', 400);
      const wrongKey = newClient({ baseUrl: stub.url, apiKey: 'sbk_wrong' });
      await rejectsWith(Bunker.create({ image: 'minimal' }, wrongKey), AuthError, 'UNAUTHENTICATED', 401);
      await rejectsWith(Bunker.connect('bk_proxyerror0000000000', client), UnavailableError, 'UNEXPECTED_RESPONSE', 502);
      const ended = await Bunker.create({ image: 'minimal' }, client);
      await ended.terminate();
      await rejectsWith(ended.exec('echo x'), ConflictError, 'BUNKER_NOT_RUNNING', 409);
      await rejectsWith(ended.exec('echo x', { onStdout: () => undefined }), ConflictError, 'BUNKER_NOT_RUNNING', 409);
    });

    test('an unreachable server is UnavailableError CONNECTION_FAILED', async () => {
      const nowhere = newClient({ baseUrl: 'http://127.0.0.1:1', apiKey: 'k' });
      const err = await rejectsWith(Bunker.connect('bk_00000000000000000000', nowhere), UnavailableError, 'CONNECTION_FAILED', 503);
      assert.match(err.message, /cannot reach http:\/\/127\.0\.0\.1:1/);
    });

    test('an aborted exec rejects with the abort, not a mapped error', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(b.exec('echo x', { signal: controller.signal }), (err: unknown) => (err as Error).name === 'AbortError');
    });

    test('the client reads SCAIBUNKER_URL and SCAIBUNKER_API_KEY when not given', async () => {
      const saved = { url: process.env.SCAIBUNKER_URL, key: process.env.SCAIBUNKER_API_KEY };
      process.env.SCAIBUNKER_URL = stub.url;
      process.env.SCAIBUNKER_API_KEY = 'sbk_secret';
      try {
        const b = await Bunker.create({ image: 'minimal' });
        assert.equal(b.client.baseUrl, stub.url);
        assert.equal(b.client.apiKey, 'sbk_secret');
        assert.equal((await Bunker.connect(b.id, { baseUrl: stub.url, apiKey: 'sbk_secret' })).id, b.id);
      } finally {
        if (saved.url === undefined) delete process.env.SCAIBUNKER_URL;
        else process.env.SCAIBUNKER_URL = saved.url;
        if (saved.key === undefined) delete process.env.SCAIBUNKER_API_KEY;
        else process.env.SCAIBUNKER_API_KEY = saved.key;
      }
    });
    test('an exec aborted while its events stream in rejects with the abort', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const controller = new AbortController();
      const seen: string[] = [];
      await assert.rejects(
        b.exec('echo one; echo two; echo three', {
          signal: controller.signal,
          onStdout: (s) => {
            seen.push(s);
            controller.abort();
          },
        }),
        (err: unknown) => (err as Error).name === 'AbortError',
      );
      assert.deepEqual(seen, ['one\n']);
    });

    test('a connection cut mid-response is CONNECTION_FAILED', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const out: string[] = [];
      const err = await rejectsWith(
        b.exec('echo partial; cut', { onStdout: (s) => void out.push(s) }),
        UnavailableError,
        'CONNECTION_FAILED',
        503,
      );
      assert.match(err.message, /broke mid-response/);
      assert.deepEqual(out, ['partial\n']);
      // The next call gets a fresh connection.
      assert.equal((await b.exec('echo after')).stdout, 'after\n');
    });

    test('a web ReadableStream upload is streamed chunked', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const web = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(Buffer.from('web '));
          controller.enqueue(new Uint8Array(0));
          controller.enqueue(Buffer.from('stream'));
          controller.close();
        },
      });
      assert.deepEqual(await b.files.write('/tmp/web.txt', web), { path: '/tmp/web.txt', bytes: 10 });
      assert.equal(stub.uploads.at(-1)?.transferEncoding, 'chunked');
      assert.equal((await b.files.read('/tmp/web.txt')).toString(), 'web stream');
    });

    test('sequential calls reuse kept-alive connections rather than opening one per call', async () => {
      // A server of its own, so no connection left over from other tests is in the pool.
      const fresh = await StubApiServer.start({ apiKey: 'sbk_secret' });
      try {
        const c = newClient({ baseUrl: fresh.url, apiKey: 'sbk_secret' });
        const b = await Bunker.create({ image: 'minimal' }, c);
        for (let i = 0; i < 5; i++) await b.exec(['true']);
        await b.files.write('/tmp/k.txt', Readable.from([Buffer.from('kk')]));
        await b.files.read('/tmp/k.txt');
        for (let i = 0; i < 5; i++) await b.refresh();
        assert.equal(fresh.requests.length, 13);
        // undici waits one event-loop turn before reusing a connection, so back-to-back calls may
        // alternate between two; never more. A streamed upload's connection is closed after it.
        const put = fresh.requests.findIndex((r) => r.method === 'PUT');
        const portsOf = (rs: typeof fresh.requests) => new Set(rs.map((r) => r.remotePort));
        const before = portsOf(fresh.requests.slice(0, put));
        const after = portsOf(fresh.requests.slice(put + 1));
        assert.ok(before.size <= 2, `at most two connections for 6 sequential calls, got ${before.size}`);
        assert.ok(after.size <= 2, `at most two connections for 6 sequential calls, got ${after.size}`);
        assert.ok(!after.has(fresh.requests[put]?.remotePort), 'the streamed upload connection is not reused');
      } finally {
        await fresh.close();
      }
    });

    test('transport.send answers a fetch Response, and maps errors the same way', async () => {
      const b = await Bunker.create({ image: 'minimal' }, client);
      const res = await client.transport.send('get', '/v1/modules/scaibunker/bunkers/{id}', { path: { id: b.id } });
      assert.ok(res instanceof Response);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      assert.equal(((await res.json()) as { id: string }).id, b.id);
      await rejectsWith(
        client.transport.send('get', '/v1/modules/scaibunker/bunkers/{id}', { path: { id: 'bk_00000000000000000000' } }),
        NotFoundError,
        'BUNKER_NOT_FOUND',
        404,
      );
    });

    test(
      via === 'own-client' ? 'without a custom fetch no call goes through fetch' : 'with a custom fetch every call goes through it',
      async () => {
        const before = fetchCalls.length;
        const everything = async () => {
          const b = await Bunker.create({ image: 'minimal' }, client);
          await b.exec('echo x');
          await b.exec('echo y', { onStdout: () => undefined });
          await b.files.write('/tmp/f', Readable.from([Buffer.from('f')]));
          await drain(b.files.readStream('/tmp/f'));
          const big = await b.exec('big');
          await drain(b.fullOutputStream(big.exec_id));
          await b.terminate();
        };
        if (via === 'own-client') await withoutGlobalFetch(everything);
        else await everything();
        assert.equal(fetchCalls.length - before, via === 'own-client' ? 0 : 8);
      },
    );
  });
}
