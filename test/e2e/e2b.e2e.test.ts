/**
 * The unmodified `e2b` SDK against a real `scaibunker serve` running crun bunkers: configured
 * only through E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY (a ScaiBunker API key), everything
 * on the one port. Control plane (create, connect, list, getInfo, setTimeout, pause, kill),
 * commands (run, streaming callbacks, exit errors, envs, cwd, background, list, kill, connect by
 * pid, stdin), PTYs, files (text and bytes, list, exists, getInfo, makeDir, rename, remove,
 * watchDir, not-found errors), tenant isolation, and Connect protocol refusals on the wire.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CommandExitError, FileNotFoundError, NotFoundError, Sandbox, SandboxNotFoundError } from 'e2b';
import { adminKeyOf, apiCall as api, destroyLeftoverBunkers, eventually, IMAGE_DIR, ServerProcess, tempDataDir } from './harness.js';

const SMALL = { 'scaibunker.memory_mb': '128', 'scaibunker.cpu_millicores': '500', 'scaibunker.disk_mb': '64' };

describe('the e2b SDK against scaibunker serve', () => {
  const data = tempDataDir();
  let server: ServerProcess;
  let alice = '';
  let bob = '';
  const sandboxes: Sandbox[] = [];
  const opts = () => ({ apiKey: alice });

  before(async () => {
    server = await ServerProcess.start(['serve', '--port', '0', '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
    const admin = adminKeyOf(data.dir);
    const keys: string[] = [];
    for (const name of ['e2b-alice', 'e2b-bob']) {
      const t = await api(server.url, admin, 'POST', '/v1/admin/tenants', { name });
      assert.equal(t.status, 201, JSON.stringify(t.json));
      const k = await api(server.url, admin, 'POST', `/v1/admin/tenants/${t.json.id}/api-keys`, {
        name: 'sdk',
        permissions: ['scaibunker:read', 'scaibunker:create', 'scaibunker:execute'],
      });
      assert.equal(k.status, 201, JSON.stringify(k.json));
      keys.push(k.json.key);
    }
    [alice, bob] = keys as [string, string];
    process.env.E2B_API_URL = server.url;
    process.env.E2B_SANDBOX_URL = server.url;
    process.env.E2B_API_KEY = alice;
  });

  after(async () => {
    for (const s of sandboxes) await s.kill().catch(() => undefined);
    await server?.kill();
    await destroyLeftoverBunkers(join(data.dir, 'worker')).catch(() => undefined);
    data.remove();
  });

  let sbx: Sandbox;

  test('create, getInfo, list by metadata, connect, setTimeout', async () => {
    sbx = await Sandbox.create('minimal', { metadata: { ...SMALL, purpose: 'e2e' }, envs: { GREETING: 'hi' }, timeoutMs: 120_000 });
    sandboxes.push(sbx);
    assert.match(sbx.sandboxId, /^bk_/);
    const info = await sbx.getInfo();
    assert.equal(info.sandboxId, sbx.sandboxId);
    assert.equal(info.templateId, 'minimal');
    assert.equal(info.state, 'running');
    assert.equal(info.metadata.purpose, 'e2e');
    assert.equal(info.memoryMB, 128);
    assert.ok(
      info.endAt.getTime() - Date.now() > 100_000 && info.endAt.getTime() - Date.now() <= 121_000,
      `endAt ${info.endAt.toISOString()}`,
    );
    const page = await Sandbox.list({ query: { metadata: { purpose: 'e2e' } } }).nextItems();
    assert.deepEqual(
      page.map((s) => s.sandboxId),
      [sbx.sandboxId],
    );
    const again = await Sandbox.connect(sbx.sandboxId);
    assert.equal((await again.commands.run('echo connected')).stdout, 'connected\n');
    await sbx.setTimeout(600_000);
    const later = await sbx.getInfo();
    assert.ok(later.endAt.getTime() - Date.now() > 500_000, 'setTimeout moved endAt');
    assert.equal(await sbx.isRunning(), true);
  });

  test('commands.run: output, streaming callbacks, exit errors, envs, cwd', async () => {
    const r = await sbx.commands.run('echo out; echo err >&2; echo $GREETING $EXTRA; pwd', { envs: { EXTRA: 'there' }, cwd: '/tmp' });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, 'out\nhi there\n/tmp\n');
    assert.equal(r.stderr, 'err\n');
    const chunks: string[] = [];
    const errs: string[] = [];
    await sbx.commands.run('for i in 1 2 3; do echo line$i; sleep 0.1; done; echo bad >&2', {
      onStdout: (d) => void chunks.push(d),
      onStderr: (d) => void errs.push(d),
    });
    assert.equal(chunks.join(''), 'line1\nline2\nline3\n');
    assert.ok(chunks.length >= 2, 'output arrived in several chunks');
    assert.equal(errs.join(''), 'bad\n');
    await assert.rejects(sbx.commands.run('echo nope >&2; exit 3'), (e: unknown) => {
      assert.ok(e instanceof CommandExitError);
      assert.equal(e.exitCode, 3);
      assert.equal(e.stderr, 'nope\n');
      return true;
    });
  });

  test('background commands: list, connect by pid, stdin, kill', async () => {
    const h = await sbx.commands.run('read line; echo got:$line; sleep 30', { background: true, stdin: true });
    assert.ok(h.pid > 0);
    const listed = await sbx.commands.list();
    assert.ok(
      listed.some((p) => p.pid === h.pid),
      JSON.stringify(listed),
    );
    const attached = await sbx.commands.connect(h.pid);
    await sbx.commands.sendStdin(h.pid, 'hello\n');
    await eventually('stdin echoed', async () => (attached.stdout.includes('got:hello') ? true : undefined), 10_000);
    assert.equal(await sbx.commands.kill(h.pid), true);
    await assert.rejects(attached.wait(), (e: unknown) => e instanceof CommandExitError);
    assert.equal(await sbx.commands.kill(999_999), false);
  });

  test('pty: create, sendInput, resize', async () => {
    let out = '';
    const term = await sbx.pty.create({
      cols: 80,
      rows: 24,
      onData: (d) => {
        out += new TextDecoder().decode(d);
      },
    });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size\n'));
    await eventually('stty size 24 80', async () => (out.includes('24 80') ? true : undefined), 10_000);
    await sbx.pty.resize(term.pid, { cols: 100, rows: 40 });
    await sbx.pty.sendInput(term.pid, new TextEncoder().encode('stty size; exit\n'));
    await eventually('stty size 40 100', async () => (out.includes('40 100') ? true : undefined), 10_000);
    const r = await term.wait();
    assert.equal(r.exitCode, 0);
  });

  test('files: write/read text and bytes, list, exists, getInfo, makeDir, rename, remove, not-found', async () => {
    const w = await sbx.files.write('/tmp/e2b/hello.txt', 'hello world');
    assert.equal(w.path, '/tmp/e2b/hello.txt');
    assert.equal(await sbx.files.read('/tmp/e2b/hello.txt'), 'hello world');
    const bytes = new Uint8Array([0, 1, 2, 250, 255]);
    await sbx.files.write('/tmp/e2b/bin.dat', bytes.buffer);
    assert.deepEqual(await sbx.files.read('/tmp/e2b/bin.dat', { format: 'bytes' }), bytes);
    await sbx.files.write([
      { path: '/tmp/e2b/many/a.txt', data: 'A' },
      { path: '/tmp/e2b/many/b.txt', data: 'B' },
    ]);
    assert.equal(await sbx.files.read('/tmp/e2b/many/b.txt'), 'B');
    const entries = await sbx.files.list('/tmp/e2b');
    assert.deepEqual(entries.map((e) => e.name).sort(), ['bin.dat', 'hello.txt', 'many']);
    assert.equal(entries.find((e) => e.name === 'many')?.type, 'dir');
    const deep = await sbx.files.list('/tmp/e2b', { depth: 2 });
    assert.ok(deep.some((e) => e.path === '/tmp/e2b/many/a.txt'));
    assert.equal(await sbx.files.exists('/tmp/e2b/hello.txt'), true);
    assert.equal(await sbx.files.exists('/tmp/e2b/nope'), false);
    const info = await sbx.files.getInfo('/tmp/e2b/hello.txt');
    assert.equal(info.type, 'file');
    assert.equal(info.size, 11);
    assert.equal(await sbx.files.makeDir('/tmp/e2b/dir/sub'), true);
    assert.equal(await sbx.files.makeDir('/tmp/e2b/dir/sub'), false);
    const moved = await sbx.files.rename('/tmp/e2b/hello.txt', '/tmp/e2b/dir/renamed.txt');
    assert.equal(moved.path, '/tmp/e2b/dir/renamed.txt');
    assert.equal(await sbx.files.read('/tmp/e2b/dir/renamed.txt'), 'hello world');
    await sbx.files.remove('/tmp/e2b/dir');
    assert.equal(await sbx.files.exists('/tmp/e2b/dir'), false);
    await assert.rejects(sbx.files.read('/tmp/e2b/missing.txt'), (e: unknown) => e instanceof FileNotFoundError);
    await assert.rejects(sbx.files.getInfo('/tmp/e2b/missing.txt'), (e: unknown) => e instanceof FileNotFoundError);
    // Relative paths resolve against the user's home (root: /root).
    await sbx.files.write('rel.txt', 'relative');
    assert.equal((await sbx.commands.run('cat /root/rel.txt')).stdout, 'relative');
  });

  test('files.watchDir', async () => {
    await sbx.files.makeDir('/tmp/watched');
    const seen: string[] = [];
    const handle = await sbx.files.watchDir('/tmp/watched', (e) => void seen.push(`${e.type}:${e.name}`));
    await sbx.files.write('/tmp/watched/new.txt', 'x');
    await eventually('a create event', async () => (seen.some((s) => s.endsWith(':new.txt')) ? true : undefined), 10_000);
    await handle.stop();
  });

  test('tenant isolation: another key sees no sandbox', async () => {
    await assert.rejects(Sandbox.connect(sbx.sandboxId, { apiKey: bob }), (e: unknown) => e instanceof NotFoundError);
    await assert.rejects(Sandbox.getInfo(sbx.sandboxId, { apiKey: bob }), (e: unknown) => e instanceof SandboxNotFoundError);
    assert.equal(await Sandbox.kill(sbx.sandboxId, { apiKey: bob }), false);
    assert.deepEqual(await Sandbox.list({ apiKey: bob }).nextItems(), []);
    // envd with bob's key and alice's sandbox id: not found either.
    const res = await fetch(`${server.url}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': bob, 'e2b-sandbox-id': sbx.sandboxId },
      body: JSON.stringify({ path: '/' }),
    });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as { code: string }).code, 'not_found');
  });

  test('Connect on the wire: unknown method, malformed envelope, bad JSON', async () => {
    const headers = { 'x-api-key': alice, 'e2b-sandbox-id': sbx.sandboxId };
    const unknown = await fetch(`${server.url}/process.Process/Nope`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(((await unknown.json()) as { code: string }).code, 'unimplemented');
    const badJson = await fetch(`${server.url}/filesystem.Filesystem/Stat`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: '{nope',
    });
    assert.equal(badJson.status, 400);
    assert.equal(((await badJson.json()) as { code: string }).code, 'invalid_argument');
    // A stream request whose envelope says 100 bytes and carries 3: an end-of-stream error, not a hang.
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.from('{}}')]);
    const truncated = await fetch(`${server.url}/process.Process/Start`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/connect+json' },
      body: frame,
    });
    assert.equal(truncated.status, 200);
    const body = Buffer.from(await truncated.arrayBuffer());
    assert.equal(body[0], 2, 'end-of-stream flag');
    assert.equal(JSON.parse(body.subarray(5).toString()).error.code, 'invalid_argument');
  });

  test('pause and connect resumes; kill → getInfo NotFound, kill again false', async () => {
    const other = await Sandbox.create('minimal', { metadata: SMALL });
    sandboxes.push(other);
    await other.files.write('/tmp/keep.txt', 'kept');
    assert.equal(await other.pause(), true);
    assert.equal((await other.getInfo()).state, 'paused');
    assert.equal(await other.pause(), false);
    const back = await Sandbox.connect(other.sandboxId);
    assert.equal((await back.getInfo()).state, 'running');
    assert.equal(await back.files.read('/tmp/keep.txt'), 'kept');
    assert.equal(await other.kill(), true);
    await assert.rejects(other.getInfo(), (e: unknown) => e instanceof SandboxNotFoundError);
    assert.equal(await other.kill(), false);
  });

  test('refusals are clear 4xx answers', async () => {
    await assert.rejects(Sandbox.create('minimal', { metadata: { ...SMALL, userId: 'x' } }), /metadata keys/);
    await assert.rejects(Sandbox.create('minimal', { metadata: SMALL, network: { denyOut: ['10.0.0.0/8'] } }), /denyOut/);
    await assert.rejects(Sandbox.create('no-such-template', { metadata: SMALL }), /no image named/);
  });
});
