/**
 * Code contexts for real: `scaibunker serve` running crun bunkers of the `python` image. State
 * kept across runs, output/result/error events in order, separate contexts, restart and delete,
 * a timeout that interrupts without losing state, rich results, an image without python3, and
 * tenant scoping.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { adminKeyOf, destroyLeftoverBunkers, freePort, IMAGE_DIR, mountsUnder, ServerProcess, tempDataDir } from './harness.js';

const API = '/v1/modules/scaibunker';

interface CodeEvent {
  type: string;
  text?: string;
  html?: string;
  name?: string;
  value?: string;
  traceback?: string;
  execution_count?: number | null;
}

describe('code contexts (serve, python image)', () => {
  const data = tempDataDir();
  let server: ServerProcess;
  let key = '';
  let otherKey = '';
  let py: Bunker;
  let bare: Bunker;

  before(async () => {
    server = await ServerProcess.start(['serve', '--port', String(await freePort()), '--data-dir', data.dir, '--image-dir', IMAGE_DIR]);
    const admin = new ScaiBunkerClient({ baseUrl: server.url, apiKey: adminKeyOf(data.dir) });
    const keyFor = async (name: string) => {
      const t = await admin.admin.createTenant(name);
      return (await admin.admin.createApiKey(t.id, `${name}-key`, ['scaibunker:admin:tenant'])).key;
    };
    key = await keyFor('coder');
    otherKey = await keyFor('other');
    const client = new ScaiBunkerClient({ baseUrl: server.url, apiKey: key });
    py = await Bunker.create({ image: 'python', memory_mb: 256, disk_mb: 512 }, client);
    bare = await Bunker.create({ image: 'minimal', memory_mb: 64, disk_mb: 64 }, client);
  });

  after(async () => {
    await py?.terminate().catch(() => undefined);
    await bare?.terminate().catch(() => undefined);
    await server?.kill();
    const orphans = await destroyLeftoverBunkers(data.dir);
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, []);
    assert.deepEqual(orphans, []);
  });

  const call = async (method: string, path: string, body?: unknown, k = key) => {
    const res = await fetch(`${server.url}${API}${path}`, {
      method,
      headers: { authorization: `Bearer ${k}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type') ?? '', text, json: () => JSON.parse(text) };
  };
  /** Runs code; the SSE events in order (their event names must match their types). */
  const run = async (code: string, extra: object = {}, bunker = py): Promise<CodeEvent[]> => {
    const res = await call('POST', `/bunkers/${bunker.id}/code`, { code, ...extra });
    assert.equal(res.status, 200, res.text);
    assert.match(res.type, /text\/event-stream/);
    const events: CodeEvent[] = [];
    for (const block of res.text.split('\n\n')) {
      const name = /^event: (.*)$/m.exec(block)?.[1];
      const payload = /^data: (.*)$/m.exec(block)?.[1];
      if (!name || !payload) continue;
      const e = JSON.parse(payload) as CodeEvent;
      assert.equal(e.type, name);
      events.push(e);
    }
    assert.equal(events.at(-1)?.type, 'end_of_execution', `the stream ends with end_of_execution: ${res.text}`);
    return events;
  };
  const stdout = (events: CodeEvent[]) =>
    events
      .filter((e) => e.type === 'stdout')
      .map((e) => e.text)
      .join('');
  const result = (events: CodeEvent[]) => events.find((e) => e.type === 'result');

  test('the default context keeps state across runs: output, the trailing value, errors with their traceback', async () => {
    const first = await run('x = 41\nprint("hello")\nx + 1');
    assert.equal(stdout(first), 'hello\n');
    assert.equal(result(first)?.text, '42');
    const second = await run('def f(y):\n    return x / y\nf(0)');
    const error = second.find((e) => e.type === 'error');
    assert.equal(error?.name, 'ZeroDivisionError');
    assert.match(error?.traceback ?? '', /<cell>.*\n.*return x \/ y/);
    assert.doesNotMatch(error?.traceback ?? '', /kernel/);
    const third = await run('import sys\nsys.stderr.write("warn\\n")\nx');
    assert.equal(third.find((e) => e.type === 'stderr')?.text, 'warn\n');
    assert.equal(result(third)?.text, '41');
    const counts = [first, second, third].map((ev) => ev.at(-1)?.execution_count as number);
    assert.deepEqual(
      counts.map((c) => c - (counts[0] as number)),
      [0, 1, 2],
    );
  });

  test('separate contexts have separate state; restart drops it; delete stops it', async () => {
    await run('shared = "default"');
    const created = await call('POST', `/bunkers/${py.id}/code/contexts`, {});
    assert.equal(created.status, 201, created.text);
    const ctx = created.json();
    assert.match(ctx.id, /^cx_/);
    assert.match(ctx.exec_id, /^ex_/);
    const missing = await run('shared', { context_id: ctx.id });
    assert.equal(missing.find((e) => e.type === 'error')?.name, 'NameError');
    await run('mine = 7', { context_id: ctx.id });
    assert.equal(result(await run('mine', { context_id: ctx.id }))?.text, '7');
    const listed = (await call('GET', `/bunkers/${py.id}/code/contexts`)).json().items.map((c: { id: string }) => c.id);
    assert.ok(listed.includes(ctx.id) && listed.includes('default'), JSON.stringify(listed));
    // The kernel is a process of the bunker like any other.
    const procs = (await call('GET', `/bunkers/${py.id}/execs?tag=code:${ctx.id}&state=running`)).json().items;
    assert.equal(procs.length, 1);

    const restarted = await call('POST', `/bunkers/${py.id}/code/contexts/${ctx.id}/restart`);
    assert.equal(restarted.status, 200, restarted.text);
    assert.equal(restarted.json().id, ctx.id);
    assert.notEqual(restarted.json().exec_id, ctx.exec_id);
    assert.equal((await run('mine', { context_id: ctx.id })).find((e) => e.type === 'error')?.name, 'NameError');

    assert.equal((await call('DELETE', `/bunkers/${py.id}/code/contexts/${ctx.id}`)).status, 204);
    const gone = await call('POST', `/bunkers/${py.id}/code`, { code: '1', context_id: ctx.id });
    assert.equal(gone.status, 404);
    assert.equal(gone.json().error.code, 'CODE_CONTEXT_NOT_FOUND');
  });

  test('a timeout interrupts the run (KeyboardInterrupt) and the context keeps its state', async () => {
    await run('kept = "yes"');
    const t0 = Date.now();
    const slow = await run('import time\nprint("start")\ntime.sleep(60)', { timeout_s: 1 });
    assert.ok(Date.now() - t0 < 20_000);
    assert.equal(stdout(slow), 'start\n');
    assert.equal(slow.find((e) => e.type === 'error')?.name, 'KeyboardInterrupt');
    assert.equal(result(await run('kept'))?.text, "'yes'");
  });

  test('rich results: an object with _repr_html_ answers html beside its text', async () => {
    const events = await run(
      'class T:\n    def _repr_html_(self):\n        return "<b>t</b>"\n    def __repr__(self):\n        return "T()"\nT()',
    );
    assert.deepEqual(result(events), { type: 'result', text: 'T()', html: '<b>t</b>' });
  });

  test('the SDK: bunker.code.run collects output, results and errors; contexts', async () => {
    const seen: string[] = [];
    await py.code.run('y = 5');
    const exec = await py.code.run('print("p")\ny * 2', { onStdout: (t) => void seen.push(t) });
    assert.equal(exec.stdout, 'p\n');
    assert.deepEqual(seen.join(''), 'p\n');
    assert.equal(exec.results[0]?.text, '10');
    assert.equal(exec.error, undefined);
    const failed = await py.code.run('raise ValueError("no")');
    assert.equal(failed.error?.name, 'ValueError');
    assert.equal(failed.error?.value, 'no');
    const ctx = await py.code.createContext();
    assert.ok((await py.code.listContexts()).some((c) => c.id === ctx.id));
    assert.equal((await py.code.run('y', { contextId: ctx.id })).error?.name, 'NameError');
    await py.code.deleteContext(ctx.id);
  });

  test('refusals: no python3 in the image, unknown language, another tenant, a bad context id', async () => {
    const noPython = await call('POST', `/bunkers/${bare.id}/code`, { code: '1' });
    assert.equal(noPython.status, 409, noPython.text);
    assert.equal(noPython.json().error.code, 'KERNEL_UNAVAILABLE');
    const js = await call('POST', `/bunkers/${py.id}/code`, { code: '1', language: 'javascript' });
    assert.equal(js.status, 400);
    const other = await call('POST', `/bunkers/${py.id}/code`, { code: '1' }, otherKey);
    assert.equal(other.status, 404);
    assert.equal(other.json().error.code, 'BUNKER_NOT_FOUND');
    assert.equal((await call('GET', `/bunkers/${py.id}/code/contexts`, undefined, otherKey)).status, 404);
    const badId = await call('POST', `/bunkers/${py.id}/code`, { code: '1', context_id: '../x' });
    assert.equal(badId.status, 400);
  });
});
