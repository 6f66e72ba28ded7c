/**
 * The unmodified `@e2b/code-interpreter` SDK against a real `scaibunker serve` (configured only
 * through E2B_API_URL / E2B_SANDBOX_URL / E2B_API_KEY): `runCode` keeps state across calls,
 * streams stdout/stderr to callbacks, returns the trailing value (and its HTML form), reports
 * errors with their traceback, takes per-run env vars; contexts are created, listed, isolated,
 * restarted and removed; another tenant's key reaches none of it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Sandbox } from '@e2b/code-interpreter';
import { adminKeyOf, apiCall as api, destroyLeftoverBunkers, IMAGE_DIR, mountsUnder, ServerProcess, tempDataDir } from './harness.js';

describe('@e2b/code-interpreter against scaibunker serve', () => {
  const data = tempDataDir();
  let server: ServerProcess;
  let alice = '';
  let bob = '';
  let sbx: Sandbox;

  before(async () => {
    server = await ServerProcess.start(['serve', '--port', '0', '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
    const admin = adminKeyOf(data.dir);
    const keys: string[] = [];
    for (const name of ['ci-alice', 'ci-bob']) {
      const t = await api(server.url, admin, 'POST', '/v1/admin/tenants', { name });
      const k = await api(server.url, admin, 'POST', `/v1/admin/tenants/${t.json.id}/api-keys`, {
        name: 'sdk',
        permissions: ['scaibunker:read', 'scaibunker:create', 'scaibunker:execute'],
      });
      keys.push(k.json.key);
    }
    [alice, bob] = keys as [string, string];
    process.env.E2B_API_URL = server.url;
    process.env.E2B_SANDBOX_URL = server.url;
    process.env.E2B_API_KEY = alice;
    sbx = await Sandbox.create('python', { metadata: { 'scaibunker.memory_mb': '256' } });
  });

  after(async () => {
    await sbx?.kill().catch(() => undefined);
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(data.dir);
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, []);
    assert.deepEqual(orphans, []);
  });

  test('runCode keeps state; stdout streams to callbacks; the trailing value is the main result', async () => {
    const seen: string[] = [];
    const first = await sbx.runCode('x = 20\nprint("hello")\nx * 2 + 2', { onStdout: (m) => void seen.push(m.line) });
    assert.deepEqual(first.logs.stdout.join(''), 'hello\n');
    assert.equal(seen.join(''), 'hello\n');
    assert.equal(first.text, '42');
    assert.equal(first.results[0]?.isMainResult, true);
    assert.equal(first.error, undefined);
    const second = await sbx.runCode('x + 1');
    assert.equal(second.text, '21');
    assert.equal(second.executionCount, (first.executionCount ?? 0) + 1);
  });

  test('errors carry name, value and traceback; stderr and rich results come through', async () => {
    const failed = await sbx.runCode('def f():\n    raise ValueError("bad input")\nf()');
    assert.equal(failed.error?.name, 'ValueError');
    assert.equal(failed.error?.value, 'bad input');
    assert.match(failed.error?.traceback ?? '', /raise ValueError/);
    const warn = await sbx.runCode('import sys\nsys.stderr.write("careful\\n")\nNone');
    assert.equal(warn.logs.stderr.join(''), 'careful\n');
    const html = await sbx.runCode('class H:\n    def _repr_html_(self):\n        return "<i>h</i>"\nH()');
    assert.equal(html.results[0]?.html, '<i>h</i>');
  });

  test('env vars are set for one run only', async () => {
    const withEnv = await sbx.runCode('import os\nos.environ.get("GREETING")', { envs: { GREETING: 'hi' } });
    assert.equal(withEnv.text, "'hi'");
    const after = await sbx.runCode('os.environ.get("GREETING") is None');
    assert.equal(after.text, 'True');
  });

  test('contexts: separate state, listed, restarted, removed', async () => {
    await sbx.runCode('shared = 1');
    const ctx = await sbx.createCodeContext();
    assert.ok(ctx.id);
    const missing = await sbx.runCode('shared', { context: ctx });
    assert.equal(missing.error?.name, 'NameError');
    await sbx.runCode('mine = 5', { context: ctx });
    assert.equal((await sbx.runCode('mine', { context: ctx })).text, '5');
    const listed = await sbx.listCodeContexts();
    assert.ok(listed.some((c) => c.id === ctx.id));
    await sbx.restartCodeContext(ctx);
    assert.equal((await sbx.runCode('mine', { context: ctx })).error?.name, 'NameError');
    await sbx.removeCodeContext(ctx);
    assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id));
    // requestTimeoutMs 0: on a refused call the SDK leaves its request timer (60 s) running,
    // which would hold this test process open for a minute after the last test.
    await assert.rejects(sbx.runCode('1', { context: ctx, requestTimeoutMs: 0 }));
    await assert.rejects(sbx.runCode('1', { language: 'javascript', requestTimeoutMs: 0 }));
  });

  test("another tenant's key reaches none of it", async () => {
    const res = await fetch(`${server.url}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': bob, 'e2b-sandbox-id': sbx.sandboxId, 'e2b-sandbox-port': '49999' },
      body: JSON.stringify({ code: '1' }),
    });
    assert.equal(res.status, 404, await res.clone().text());
  });
});
