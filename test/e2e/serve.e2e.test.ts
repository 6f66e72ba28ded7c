/**
 * End to end through the SDK against a real `scaibunker serve` process running real crun
 * bunkers: the full bunker life, SSE streaming, large output, tenants, permissions, lifecycle
 * errors, the sweeper, a controller restart, uploads over the cap, and escape attempts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import {
  adminKeyOf,
  destroyLeftoverBunkers,
  eventually,
  FAST_INTERVALS,
  freePort,
  IMAGE_DIR,
  mountsUnder,
  ServerProcess,
  tempDataDir,
} from './harness.js';

const UPLOAD_CAP = 4 * 1024 * 1024;

async function expectError(p: Promise<unknown>, code: string, status: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ScaiBunkerError, `expected a ScaiBunkerError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    return true;
  });
}

describe('scaibunker serve, end to end', () => {
  const data = tempDataDir();
  let server: ServerProcess;
  let admin: ScaiBunkerClient;
  let alice: ScaiBunkerClient;
  let bob: ScaiBunkerClient;
  let readOnly: ScaiBunkerClient;
  const created: Bunker[] = [];
  let port = 0;

  const startServer = () =>
    ServerProcess.start([
      'serve',
      '--port',
      String(port),
      '--data-dir',
      data.dir,
      '--image-dir',
      IMAGE_DIR,
      '--upload-cap-bytes',
      String(UPLOAD_CAP),
      ...FAST_INTERVALS,
    ]);

  before(async () => {
    port = await freePort();
    server = await startServer();
    admin = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
    const keyFor = async (name: string, permissions: string[]) => {
      const tenant = await admin.admin.createTenant(name);
      const { key } = await admin.admin.createApiKey(tenant.id, `${name}-key`, permissions as never);
      return new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });
    };
    alice = await keyFor('alice', ['scaibunker:admin:tenant']);
    bob = await keyFor('bob', ['scaibunker:admin:tenant']);
    const t = await admin.admin.createTenant('reader');
    readOnly = new ScaiBunkerClient({ baseUrl: server.url, apiKey: (await admin.admin.createApiKey(t.id, 'r', ['scaibunker:read'])).key });
  });

  // Each test's bunkers end with it, so the worker's capacity is not the limit of the suite.
  afterEach(async () => {
    for (const b of created.splice(0)) await b.terminate().catch(() => undefined);
  });

  after(async () => {
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(`${data.dir}/worker`);
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was terminated through the API');
  });

  const create = async (client: ScaiBunkerClient, opts: Record<string, unknown> = {}) => {
    const b = await Bunker.create({ image: 'minimal', ...opts }, client);
    created.push(b);
    return b;
  };

  test('the admin key file is private and the OpenAPI document is served', async () => {
    const { statSync } = await import('node:fs');
    assert.equal(statSync(`${data.dir}/admin.key`).mode & 0o777, 0o600);
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as { openapi: string; paths: object };
    assert.equal(doc.openapi, '3.1.0');
    assert.ok('/v1/modules/scaibunker/bunkers/{id}/exec' in doc.paths);
  });

  test('the built-in images run their language: python and nodejs (Debian-built equivalents)', async () => {
    const images = (await alice.images.list()).map((i) => i.name);
    for (const name of ['minimal', 'python', 'nodejs']) assert.ok(images.includes(name), `${name} is in the catalog`);
    const py = await create(alice, { image: 'python' });
    assert.equal((await py.exec(['python3', '-c', 'print(6*7)'])).stdout, '42\n');
    const node = await create(alice, { image: 'nodejs' });
    assert.equal((await node.exec(['node', '-e', 'console.log(6*7)'])).stdout, '42\n');
  });

  test('full bunker life: create, exec, files, exec logs, terminate (idempotent), no exec after', async () => {
    const b = await create(alice, { metadata: { purpose: 'life' }, memory_mb: 256 });
    assert.equal(b.state, 'running');
    assert.match(b.id, /^bk_/);

    const r = await b.exec('echo hello; echo oops >&2; exit 3');
    assert.equal(r.stdout, 'hello\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.exit_code, 3);
    assert.equal(r.timed_out, false);

    const argv = await b.exec(['/bin/sh', '-c', 'echo "$GREETING from $(pwd) as $(id -u)"'], {
      env: { GREETING: 'hi' },
      cwd: '/tmp',
      user: 'user',
    });
    assert.equal(argv.stdout, 'hi from /tmp as 1000\n');
    const stdin = await b.exec('tr a-z A-Z', { stdin: 'shout' });
    assert.equal(stdin.stdout, 'SHOUT');

    const payload = randomBytes(3 * 1024 * 1024);
    await b.files.mkdir('/data/deep', { parents: true });
    await b.files.write('/data/deep/blob.bin', payload);
    assert.ok((await b.files.read('/data/deep/blob.bin')).equals(payload));
    const st = await b.files.stat('/data/deep/blob.bin');
    assert.equal(st.type, 'file');
    assert.equal(st.size, payload.length);
    const names = (await b.files.list('/data/deep')).map((e) => e.name);
    assert.deepEqual(names, ['blob.bin']);
    const inside = await b.exec('sha256sum /data/deep/blob.bin | cut -d" " -f1');
    const { createHash } = await import('node:crypto');
    assert.equal(inside.stdout.trim(), createHash('sha256').update(payload).digest('hex'));
    await expectError(b.files.remove('/data'), 'FILE_CONFLICT', 409);
    await b.files.remove('/data', { recursive: true });
    await expectError(b.files.read('/data/deep/blob.bin'), 'FILE_NOT_FOUND', 404);

    const logs = await b.execLogs();
    assert.ok(logs.length >= 4);
    const first = logs.find((l) => l.command.includes('exit 3'));
    assert.equal(first?.exit_code, 3);
    assert.equal(first?.stdout_preview, 'hello\n');
    assert.match(first?.caller ?? '', /^key:/);
    // A blocking exec past START_ROW_DELAY_MS is in the log while it runs, then completed in place.
    const slow = b.exec('sleep 1.5; echo done');
    const running = await eventually('the running exec in the log', async () =>
      (await b.execLogs()).find((l) => l.command.includes('sleep 1.5') && l.finished_at === null),
    );
    assert.equal((await slow).stdout, 'done\n');
    const completed = (await b.execLogs()).filter((l) => l.id === running.id);
    assert.deepEqual(
      completed.map((l) => [l.exit_code, l.stdout_preview, l.finished_at !== null]),
      [[0, 'done\n', true]],
    );

    const ended = await b.terminate();
    assert.equal(ended.state, 'terminated');
    assert.equal(ended.termination_reason, 'user');
    const again = await b.terminate();
    assert.equal(again.state, 'terminated');
    await expectError(b.exec('true'), 'BUNKER_NOT_RUNNING', 409);
    assert.ok((await b.execLogs()).length >= 4, 'exec logs outlive the bunker');
  });

  test('pause and resume follow the state machine; illegal moves are 409 BUNKER_INVALID_TRANSITION', async () => {
    const b = await create(alice);
    const post = async (action: string) => {
      const res = await fetch(`${server.url}/v1/modules/scaibunker/bunkers/${b.id}/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${alice.apiKey}` },
      });
      return { status: res.status, body: (await res.json()) as { state?: string; error?: { code: string } } };
    };
    const counter = 'while true; do echo x >> /tmp/ticks; sleep 0.05; done';
    await b.exec(`(${counter}) >/dev/null 2>&1 &`);
    const resumeRunning = await post('resume');
    assert.equal(resumeRunning.status, 409);
    assert.equal(resumeRunning.body.error?.code, 'BUNKER_INVALID_TRANSITION');
    assert.equal((await post('pause')).body.state, 'paused');
    await expectError(b.exec('true'), 'BUNKER_NOT_RUNNING', 409);
    assert.equal((await post('pause')).body.error?.code, 'BUNKER_INVALID_TRANSITION');
    assert.equal((await post('resume')).body.state, 'running');
    const ticks = async () => Number((await b.exec('wc -c < /tmp/ticks')).stdout.trim());
    const t1 = await ticks();
    await b.exec('sleep 0.3');
    assert.ok((await ticks()) > t1, 'the background process runs again after resume');
    await b.terminate();
    assert.equal((await post('resume')).body.error?.code, 'BUNKER_INVALID_TRANSITION');
  });

  test('SSE streaming delivers stdout and stderr chunks as they come, then the exit', async () => {
    const b = await create(alice);
    const out: string[] = [];
    const err: string[] = [];
    const r = await b.exec('for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 7', {
      onStdout: (s: string) => void out.push(s),
      onStderr: (s: string) => void err.push(s),
    });
    assert.equal(out.join(''), 'out1\nout2\nout3\n');
    assert.equal(err.join(''), 'err1\nerr2\nerr3\n');
    assert.equal(r.exit_code, 7);
  });

  test('large output is capped inline and downloadable whole through full_output_ref', async () => {
    const b = await create(alice);
    const r = await b.exec("head -c 3000000 /dev/zero | tr '\\0' a; echo done >&2");
    assert.equal(r.truncated, true);
    assert.equal(r.stdout.length, 1024 * 1024);
    assert.ok(r.full_output_ref);
    const full = await b.fullOutput(r.exec_id, 'stdout');
    assert.equal(full.length, 3_000_000);
    assert.ok(full.every((c: number) => c === 0x61));
    assert.equal((await b.fullOutput(r.exec_id, 'stderr')).toString(), 'done\n');
  });

  test('a command that never ends times out and its process group dies', async () => {
    const b = await create(alice);
    const r = await b.exec('sleep 1000 & sleep 1000; echo never', { timeoutS: 1 });
    assert.equal(r.timed_out, true);
    assert.equal(r.stdout, '');
    const ps = await b.exec('ps -o comm | grep -c sleep || true');
    assert.equal(ps.stdout.trim(), '0', 'no sleep survives the timeout');
  });

  test('a flood of output completes and the bunker stays responsive', async () => {
    const b = await create(alice);
    const r = await b.exec('yes | head -c 50000000 | wc -c');
    assert.equal(r.stdout.trim(), '50000000');
    const flood = await b.exec('yes', { timeoutS: 2 });
    assert.equal(flood.timed_out, true);
    assert.equal(flood.truncated, true);
    assert.equal((await b.exec('echo alive')).stdout, 'alive\n');
  });

  test('two tenants are isolated: the other tenant gets 404 everywhere, and sees nothing in lists', async () => {
    const a = await create(alice, { metadata: { owner: 'alice' } });
    const asBob = await Bunker.connect(a.id, bob).catch((e: unknown) => e);
    assert.ok(asBob instanceof ScaiBunkerError && asBob.code === 'BUNKER_NOT_FOUND' && asBob.status === 404);
    const raw = (method: string, path: string, body?: unknown) =>
      fetch(`${server.url}/v1/modules/scaibunker/bunkers/${a.id}${path}`, {
        method,
        headers: { authorization: `Bearer ${bob.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    for (const [method, path, body] of [
      ['GET', ''],
      ['DELETE', ''],
      ['POST', '/exec', { command: 'true' }],
      ['GET', '/files?path=/etc/passwd'],
      ['GET', '/exec-logs'],
    ] as const) {
      const res = await raw(method, path, body);
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'BUNKER_NOT_FOUND');
    }
    const bobs: string[] = [];
    for await (const x of Bunker.list({}, bob)) bobs.push(x.id);
    assert.ok(!bobs.includes(a.id));
    assert.equal((await a.refresh()).state, 'running', "bob's attempts changed nothing");
  });

  test('permissions are enforced: a read-only key cannot create or exec', async () => {
    await expectError(Bunker.create({ image: 'minimal' }, readOnly), 'PERMISSION_DENIED', 403);
    await expectError(readOnly.admin.createTenant('nope'), 'PERMISSION_DENIED', 403);
    await expectError(alice.admin.createTenant('nope'), 'PERMISSION_DENIED', 403);
    const unauth = new ScaiBunkerClient({ baseUrl: server.url, apiKey: 'sbk_wrong' });
    await expectError(Bunker.create({ image: 'minimal' }, unauth), 'UNAUTHENTICATED', 401);
  });

  test('list filters by state and label with cursor pagination', async () => {
    const mine = [
      await create(alice, { metadata: { batch: 'p' } }),
      await create(alice, { metadata: { batch: 'p' } }),
      await create(alice, { metadata: { batch: 'p' } }),
    ];
    await mine[0]?.terminate();
    const running: string[] = [];
    for await (const x of Bunker.list({ labels: { batch: 'p' }, state: 'running', limit: 1 }, alice)) running.push(x.id);
    assert.deepEqual(new Set(running), new Set([mine[1]?.id, mine[2]?.id]));
  });

  test('paths cannot escape the rootfs: symlinks resolve inside the bunker, the host is untouched', async () => {
    const secret = `/tmp/sb-host-secret-${process.pid}`;
    writeFileSync(secret, 'host secret');
    try {
      const b = await create(alice);
      await b.exec(`ln -s ${secret} /tmp/escape; ln -s /../../../../../${secret} /tmp/escape2; ln -s /proc/1/root/../../.. /tmp/up`);
      await expectError(b.files.read('/tmp/escape'), 'FILE_NOT_FOUND', 404);
      await expectError(b.files.read('/tmp/escape2'), 'FILE_NOT_FOUND', 404);
      await b.files.write('/tmp/escape', 'written at a symlink');
      assert.equal(readFileSync(secret, 'utf8'), 'host secret', 'the host file is unchanged');
      // Writes are atomic (temp file + rename), so they replace the link itself, inside the bunker.
      assert.equal((await b.files.stat('/tmp/escape')).type, 'file');
      assert.equal((await b.files.read('/tmp/escape')).toString(), 'written at a symlink');
      const hostOnly = await b.exec('ls /work 2>&1; ls /var/lib/scaibunker 2>&1');
      assert.doesNotMatch(hostOnly.stdout, /main|images/);
    } finally {
      rmSync(secret, { force: true });
    }
  });

  test('an upload over the cap is refused with 413 and leaves nothing behind', async () => {
    const b = await create(alice);
    await expectError(b.files.write('/tmp/big.bin', randomBytes(UPLOAD_CAP + 1)), 'PAYLOAD_TOO_LARGE', 413);
    await expectError(b.files.stat('/tmp/big.bin'), 'FILE_NOT_FOUND', 404);
    assert.equal((await b.exec('ls -a /tmp | grep -c big || true')).stdout.trim(), '0', 'no temp file is left');
    await b.files.write('/tmp/ok.bin', randomBytes(UPLOAD_CAP));
  });

  test('limits are enforced inside the bunker: memory and disk', async () => {
    const b = await create(alice, { memory_mb: 64, disk_mb: 32 });
    const oom = await b.exec(
      "head -c 200000000 /dev/zero | tr '\\0' a > /dev/null; x=$(head -c 150000000 /dev/zero | tr '\\0' b); echo ${#x}",
      { timeoutS: 60 },
    );
    assert.notEqual(oom.exit_code, 0, 'allocating past memory_mb fails');
    const disk = await b.exec('dd if=/dev/zero of=/root/fill bs=1M count=64 2>&1; echo rc=$?');
    assert.match(disk.stdout, /No space left|rc=1/);
  });

  test('the sweeper ends idle bunkers with idle_timeout', async () => {
    const b = await create(alice, { idle_timeout_s: 1 });
    const ended = await eventually('idle sweep', async () => {
      const s = await b.refresh();
      return s.state === 'terminated' ? s : undefined;
    });
    assert.equal(ended.termination_reason, 'idle_timeout');
  });

  test('the sweeper ends bunkers past max_lifetime_s even when busy', async () => {
    const b = await create(alice, { max_lifetime_s: 2, idle_timeout_s: 2 });
    const ended = await eventually('lifetime sweep', async () => {
      await b.exec('true').catch(() => undefined);
      const s = await b.refresh();
      return s.state === 'terminated' ? s : undefined;
    });
    assert.equal(ended.termination_reason, 'max_lifetime');
  });

  test('a controller restart keeps every bunker row and reconnects to running bunkers', async () => {
    const b = await create(alice, { lifecycle: 'session' });
    await b.files.write('/tmp/before-restart', 'still here');
    const ended = await create(alice);
    await ended.terminate();
    await server.kill('SIGKILL');
    server = await startServer();
    assert.equal(server.url, `http://127.0.0.1:${port}`);
    const client = alice;
    const again = await Bunker.connect(b.id, client);
    assert.equal(again.state, 'running');
    assert.equal((await again.files.read('/tmp/before-restart')).toString(), 'still here');
    assert.equal((await again.exec('echo after')).stdout, 'after\n');
    assert.equal((await Bunker.connect(ended.id, client)).state, 'terminated');
  });
});
