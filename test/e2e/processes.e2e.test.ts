/**
 * Background processes, terminals, shells and file watch for real: `scaibunker controller` and
 * `scaibunker worker` as separate processes running crun bunkers. Replay after the process
 * ended, resume from a sequence number and Last-Event-ID, stdin, signals, a PTY shell over a
 * WebSocket with resize (`stty size`), the ticket rules, recursive watch, tenant scoping, the
 * disconnect rule of blocking execs, and a controller restart while a background process
 * writes output: nothing is lost, and the restarted controller completes its row.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
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
  terminalScreen,
} from './harness.js';

const API = '/v1/modules/scaibunker';
/** A dropped shell is killed after this (the product's default is 60 s). */
const SHELL_GRACE_S = 3;
const SMALL = { image: 'minimal', cpu_millicores: 250, memory_mb: 64, disk_mb: 64 } as const;

interface SseEvent {
  event: string;
  id: string | null;
  data: any;
}

describe('processes, shells and file watch (controller + worker)', () => {
  const data = tempDataDir();
  const token = randomBytes(24).toString('hex');
  let controller: ServerProcess;
  let worker: ServerProcess | undefined;
  let controllerPort = 0;
  let aliceKey = '';
  let bobKey = '';
  let alice: ScaiBunkerClient;
  let bob: ScaiBunkerClient;
  const created: Bunker[] = [];

  const startController = () =>
    ServerProcess.start(
      [
        'controller',
        '--port',
        String(controllerPort),
        '--data-dir',
        join(data.dir, 'c'),
        '--image-dir',
        IMAGE_DIR,
        '--shell-grace',
        `${SHELL_GRACE_S}s`,
        ...FAST_INTERVALS,
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
    );

  before(async () => {
    controllerPort = await freePort();
    controller = await startController();
    const workerPort = await freePort();
    worker = await ServerProcess.start(
      [
        'worker',
        '--controller',
        controller.url,
        '--port',
        String(workerPort),
        '--data-dir',
        join(data.dir, 'w'),
        '--image-dir',
        IMAGE_DIR,
        '--heartbeat-interval-ms',
        '200',
      ],
      { SCAIBUNKER_WORKER_TOKEN: token },
      /worker (wk_\w+) at/,
    );
    const admin = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: adminKeyOf(join(data.dir, 'c')) });
    const keyFor = async (name: string) => {
      const t = await admin.admin.createTenant(name);
      return (await admin.admin.createApiKey(t.id, `${name}-key`, ['scaibunker:admin:tenant'])).key;
    };
    aliceKey = await keyFor('alice');
    bobKey = await keyFor('bob');
    alice = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: aliceKey });
    bob = new ScaiBunkerClient({ baseUrl: controller.url, apiKey: bobKey });
    await eventually('worker online', async () => ((await admin.workers.list()).some((w) => w.state === 'online') ? true : undefined));
  });

  afterEach(async () => {
    for (const b of created.splice(0)) await b.terminate().catch(() => undefined);
  });

  after(async () => {
    await worker?.kill();
    await controller?.kill();
    const orphans = await destroyLeftoverBunkers(join(data.dir, 'w'));
    const left = mountsUnder(data.dir);
    data.remove();
    assert.deepEqual(left, [], 'no mount is left under the data dir');
    assert.deepEqual(orphans, [], 'every bunker was destroyed by the product, not by this cleanup');
  });

  async function bunker(): Promise<Bunker> {
    const b = await Bunker.create(SMALL, alice);
    created.push(b);
    return b;
  }

  async function call(method: string, path: string, opts: { key?: string; json?: unknown; body?: string } = {}) {
    const res = await fetch(`${controller.url}${API}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${opts.key ?? aliceKey}`,
        ...(opts.json !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(opts.body !== undefined ? { 'content-type': 'application/octet-stream' } : {}),
      },
      ...(opts.json !== undefined ? { body: JSON.stringify(opts.json) } : {}),
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  /** Reads an SSE stream until `until` says stop (or the stream ends). */
  async function sse(path: string, until: (e: SseEvent) => boolean, headers: Record<string, string> = {}): Promise<SseEvent[]> {
    const abort = new AbortController();
    const res = await fetch(`${controller.url}${API}${path}`, {
      headers: { authorization: `Bearer ${aliceKey}`, ...headers },
      signal: abort.signal,
    });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    const events: SseEvent[] = [];
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let end = buf.indexOf('\n\n');
        while (end >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          end = buf.indexOf('\n\n');
          if (block.startsWith(':')) continue;
          const field = (name: string) =>
            block
              .split('\n')
              .find((l) => l.startsWith(`${name}: `))
              ?.slice(name.length + 2) ?? null;
          const e = { event: field('event') ?? 'message', id: field('id'), data: JSON.parse(field('data') ?? 'null') };
          events.push(e);
          if (until(e)) return events;
        }
      }
    } finally {
      abort.abort();
    }
    return events;
  }

  const text = (events: SseEvent[], stream = 'stdout') =>
    events
      .filter((e) => e.event === stream)
      .map((e) => e.data.data)
      .join('');

  test('a background exec answers 202 at once; its output replays after it ended, from any sequence number', async () => {
    const b = await bunker();
    const started = await call('POST', `/bunkers/${b.id}/exec`, {
      json: { command: 'for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; exit 7', background: true, tag: 'lines' },
    });
    assert.equal(started.status, 202);
    assert.match(started.body.exec_id, /^ex_/);
    assert.equal(started.body.state, 'running');
    assert.ok(Number.isInteger(started.body.pid) && started.body.pid > 0);
    const id = started.body.exec_id;
    const all = await sse(`/bunkers/${b.id}/execs/${id}/events`, (e) => e.event === 'exit');
    assert.equal(text(all), 'line1\nline2\nline3\nline4\nline5\n');
    assert.equal(text(all, 'stderr'), 'oops\n');
    const exit = all.at(-1) as SseEvent;
    assert.equal(exit.event, 'exit');
    assert.equal(exit.data.state, 'exited');
    assert.equal(exit.data.exit_code, 7);
    // Every output event has an increasing id; a resume from one of them replays what followed.
    const ids = all.filter((e) => e.id !== null).map((e) => Number(e.id));
    assert.deepEqual(
      ids,
      [...ids].sort((x, y) => x - y),
    );
    const second = ids[1] as number;
    const resumed = await sse(`/bunkers/${b.id}/execs/${id}/events?from=${second}`, (e) => e.event === 'exit');
    assert.equal(Number(resumed[0]?.id), second);
    const lastEvent = await sse(`/bunkers/${b.id}/execs/${id}/events`, (e) => e.event === 'exit', { 'last-event-id': String(ids[0]) });
    assert.equal(Number(lastEvent[0]?.id), second, 'Last-Event-ID resumes after that event');
    // Listed by tag, and gettable; the row completes with the exit.
    const listed = await call('GET', `/bunkers/${b.id}/execs?tag=lines`);
    assert.deepEqual(
      listed.body.items.map((p: { exec_id: string }) => p.exec_id),
      [id],
    );
    const got = await eventually('row completed', async () => {
      const r = await call('GET', `/bunkers/${b.id}/execs/${id}`);
      return r.body.finished_at ? r.body : undefined;
    });
    assert.equal(got.state, 'exited');
    assert.equal(got.exit_code, 7);
    assert.equal(got.background, true);
  });

  test('stdin is streamed to a background process; closing it ends `cat`; signals reach the group', async () => {
    const b = await bunker();
    const cat = (await call('POST', `/bunkers/${b.id}/exec`, { json: { command: ['cat'], background: true, stdin: true } })).body;
    const reading = sse(`/bunkers/${b.id}/execs/${cat.exec_id}/events`, (e) => e.event === 'exit');
    assert.deepEqual((await call('POST', `/bunkers/${b.id}/execs/${cat.exec_id}/stdin`, { body: 'hello\n' })).body, { bytes: 6 });
    assert.deepEqual((await call('POST', `/bunkers/${b.id}/execs/${cat.exec_id}/stdin`, { body: 'world\n' })).body, { bytes: 6 });
    assert.equal((await call('POST', `/bunkers/${b.id}/execs/${cat.exec_id}/stdin/close`)).status, 204);
    const events = await reading;
    assert.equal(text(events), 'hello\nworld\n');
    assert.equal(events.at(-1)?.data.exit_code, 0);
    // After the end: steering is a conflict, not a crash.
    const late = await call('POST', `/bunkers/${b.id}/execs/${cat.exec_id}/stdin`, { body: 'x' });
    assert.equal(late.status, 409);
    assert.equal(late.body.error.code, 'EXEC_CONFLICT');

    const sleeper = (await call('POST', `/bunkers/${b.id}/exec`, { json: { command: 'sleep 300', background: true } })).body;
    assert.equal((await call('POST', `/bunkers/${b.id}/execs/${sleeper.exec_id}/signal`, { json: { signal: 'SIGTERM' } })).status, 204);
    const ended = await sse(`/bunkers/${b.id}/execs/${sleeper.exec_id}/events`, (e) => e.event === 'exit');
    assert.equal(ended.at(-1)?.data.state, 'killed');
    assert.equal(ended.at(-1)?.data.signal, 'SIGTERM');
    const bad = await call('POST', `/bunkers/${b.id}/execs/${sleeper.exec_id}/signal`, { json: { signal: 'SIGNOPE' } });
    assert.equal(bad.status, 400);
  });

  test("another tenant's exec is not found; unknown exec ids are 404", async () => {
    const b = await bunker();
    const p = (await call('POST', `/bunkers/${b.id}/exec`, { json: { command: 'sleep 60', background: true } })).body;
    for (const path of [`/bunkers/${b.id}/execs/${p.exec_id}`, `/bunkers/${b.id}/execs`, `/bunkers/${b.id}/execs/${p.exec_id}/events`]) {
      const r = await call('GET', path, { key: bobKey });
      assert.equal(r.status, 404, path);
      assert.equal(r.body.error.code, 'BUNKER_NOT_FOUND');
    }
    const steer = await call('POST', `/bunkers/${b.id}/execs/${p.exec_id}/signal`, { key: bobKey, json: { signal: 'SIGKILL' } });
    assert.equal(steer.status, 404);
    const unknown = await call('GET', `/bunkers/${b.id}/execs/ex_${'0'.repeat(20)}`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'EXEC_NOT_FOUND');
    assert.equal((await call('GET', `/bunkers/${b.id}/execs/${p.exec_id}`)).body.state, 'running', 'bob could not touch it');
    void bob;
  });

  test('a blocking exec whose client goes away is killed and its row says client_gone', async () => {
    const b = await bunker();
    const abort = new AbortController();
    const running = fetch(`${controller.url}${API}/bunkers/${b.id}/exec`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ command: 'sleep 300' }),
      signal: abort.signal,
    }).catch(() => undefined);
    const row = await eventually('the exec runs', async () => {
      const r = await call('GET', `/bunkers/${b.id}/execs?state=running`);
      return r.body.items[0];
    });
    abort.abort();
    await running;
    // Its worker reports it killed at once; the row says why once the controller wrote it.
    const ended = await eventually('the exec row ended', async () => {
      const r = await call('GET', `/bunkers/${b.id}/execs/${row.exec_id}`);
      return r.body.end_reason ? r.body : undefined;
    });
    assert.equal(ended.state, 'killed');
    assert.equal(ended.end_reason, 'client_gone');
    const ps = await b.exec(['sh', '-c', 'ps -eo comm | grep -c "^sleep$" || true']);
    assert.equal(ps.stdout.trim(), '0', 'the sleep was killed');
  });

  /** A WebSocket and what came over it. */
  async function socket(path: string, headers: Record<string, string> = { authorization: `Bearer ${aliceKey}` }) {
    const ws = new WebSocket(`${controller.url.replace('http', 'ws')}${API}${path}`, { headers } as never);
    ws.binaryType = 'arraybuffer';
    let output = '';
    const control: any[] = [];
    const listeners = new Set<() => void>();
    const notify = () => {
      for (const l of [...listeners]) l();
    };
    ws.onmessage = (m) => {
      if (typeof m.data === 'string') control.push(JSON.parse(m.data));
      else output += Buffer.from(m.data as ArrayBuffer).toString('utf8');
      notify();
    };
    const closed = new Promise<number>((resolve) => {
      ws.onclose = (e) => {
        resolve(e.code);
        notify();
      };
    });
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`websocket ${path} failed`));
    });
    /** Resolves once `ok()` holds (checked on every frame), fails if the socket closes first. */
    const waitFor = (what: string, ok: () => boolean, timeoutMs = 20_000) =>
      new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (err) reject(err);
          else resolve();
        };
        const check = () => {
          if (ok()) done();
          else if (ws.readyState === ws.CLOSED) done(new Error(`socket closed waiting for ${what}; output: ${output}`));
        };
        const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}; output: ${output}`)), timeoutMs);
        listeners.add(check);
        check();
      });
    return { ws, output: () => output, control, closed, waitFor };
  }

  test('a shell is a login shell in a terminal: stty size follows resize, exit ends it with its code', async () => {
    const b = await bunker();
    const sh = await socket(`/bunkers/${b.id}/shell?cols=100&rows=30`);
    try {
      await sh.waitFor('ready', () => sh.control.some((c) => c.type === 'ready'));
      const ready = sh.control.find((c) => c.type === 'ready');
      assert.match(ready.exec_id, /^ex_/);
      sh.ws.send(new TextEncoder().encode('stty size; tty\n'));
      await sh.waitFor('30 100 and a pts', () => /30 100/.test(sh.output()) && /\/dev\/pts\/\d+/.test(sh.output()));
      sh.ws.send(JSON.stringify({ type: 'resize', cols: 120, rows: 40 }));
      sh.ws.send(new TextEncoder().encode('stty size\n'));
      await sh.waitFor('40 120', () => /40 120/.test(sh.output()));
      const listed = await call('GET', `/bunkers/${b.id}/execs/${ready.exec_id}`);
      assert.equal(listed.body.pty, true);
      assert.equal(listed.body.state, 'running');
      sh.ws.send(new TextEncoder().encode('exit 3\n'));
      await sh.waitFor('exit frame', () => sh.control.some((c) => c.type === 'exit'));
      assert.equal(sh.control.find((c) => c.type === 'exit').exit_code, 3);
      assert.equal(await sh.closed, 1000);
    } finally {
      sh.ws.close();
    }
  });

  /** The status an upgrade request gets (a refused one never becomes a socket). */
  function upgradeStatus(path: string, headers: Record<string, string> = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(`${controller.url}${API}${path}`, {
        agent: false,
        headers: {
          connection: 'Upgrade',
          upgrade: 'websocket',
          'sec-websocket-version': '13',
          'sec-websocket-key': randomBytes(16).toString('base64'),
          ...headers,
        },
      });
      req.on('upgrade', (res, sock) => {
        sock.destroy();
        resolve(res.statusCode ?? 0);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('shell tickets open one socket, for one bunker, and are refused before the upgrade otherwise', async () => {
    const b = await bunker();
    const other = await bunker();
    const mint = async (id: string) => (await call('POST', `/bunkers/${id}/shell-tickets`)).body.ticket as string;
    const ticket = await mint(b.id);
    const sh = await socket(`/bunkers/${b.id}/shell?ticket=${encodeURIComponent(ticket)}`, {});
    await sh.waitFor('ready', () => sh.control.some((c) => c.type === 'ready'));
    sh.ws.close();
    await sh.closed;
    assert.equal(await upgradeStatus(`/bunkers/${b.id}/shell?ticket=${encodeURIComponent(ticket)}`), 401, 'used twice');
    const forOther = await mint(other.id);
    assert.equal(await upgradeStatus(`/bunkers/${b.id}/shell?ticket=${encodeURIComponent(forOther)}`), 401, 'another bunker');
    assert.equal(await upgradeStatus(`/bunkers/${b.id}/shell?ticket=sbtkt_forged.x`), 401, 'forged');
    assert.equal(await upgradeStatus(`/bunkers/${b.id}/shell`), 401, 'no credentials');
    assert.equal(await upgradeStatus(`/bunkers/${b.id}/shell`, { authorization: `Bearer ${bobKey}` }), 404, "another tenant's bunker");
    // Bob cannot mint one for Alice's bunker either.
    assert.equal((await call('POST', `/bunkers/${b.id}/shell-tickets`, { key: bobKey })).status, 404);
  });

  test('a dropped shell is reattached by its exec id and keeps its state', async () => {
    const b = await bunker();
    const first = await socket(`/bunkers/${b.id}/shell`);
    await first.waitFor('ready', () => first.control.some((c) => c.type === 'ready'));
    const execId = first.control.find((c) => c.type === 'ready').exec_id;
    first.ws.send(new TextEncoder().encode('export MARK=kept-$((6*7))\n'));
    first.ws.send(new TextEncoder().encode('echo set-$MARK\n'));
    await first.waitFor('set', () => /set-kept-42/.test(first.output()));
    first.ws.close();
    await first.closed;
    assert.equal(
      await upgradeStatus(`/bunkers/${b.id}/shell?exec_id=${execId}&command=true`, { authorization: `Bearer ${aliceKey}` }),
      400,
    );
    const again = await socket(`/bunkers/${b.id}/shell?exec_id=${execId}&cols=77&rows=21`);
    try {
      await again.waitFor('replay', () => /set-kept-42/.test(again.output()));
      again.ws.send(new TextEncoder().encode('echo again-$MARK; stty size\n'));
      await again.waitFor('same shell, resized', () => /again-kept-42/.test(again.output()) && /21 77/.test(again.output()));
    } finally {
      again.ws.close();
    }
  });

  test('a shell whose client vanished is killed, with its process group, after the grace', async () => {
    const b = await bunker();
    const sh = await socket(`/bunkers/${b.id}/shell`);
    await sh.waitFor('ready', () => sh.control.some((c) => c.type === 'ready'));
    const execId = sh.control.find((c) => c.type === 'ready').exec_id;
    sh.ws.send(new TextEncoder().encode('sleep 600 &\n'));
    sh.ws.send(new TextEncoder().encode('echo started-$((1+1))\n'));
    await sh.waitFor('the job started', () => /started-2/.test(sh.output()));
    const closedAt = Date.now();
    sh.ws.close();
    await sh.closed;
    const events = await sse(`/bunkers/${b.id}/execs/${execId}/events`, (e) => e.event === 'exit');
    const exit = events.at(-1) as SseEvent;
    assert.equal(exit.event, 'exit');
    assert.equal(exit.data.state, 'killed');
    assert.equal(exit.data.signal, 'SIGKILL');
    assert.ok(Date.now() - closedAt >= SHELL_GRACE_S * 1000 - 200, 'not before the grace');
    const left = await b.exec(['sh', '-c', 'ps -eo comm | grep -c "^sleep$" || true']);
    assert.equal(left.stdout.trim(), '0', "the shell's background job went with it");
  });

  test('recursive file watch reports creates, writes and removes, in subdirectories made later', async () => {
    const b = await bunker();
    await b.exec(['mkdir', '-p', '/tmp/w']);
    const seen = sse(
      `/bunkers/${b.id}/files/watch?path=/tmp/w&recursive=true`,
      (e) => e.event === 'change' && e.data.path === '/tmp/w/sub/deep.txt' && e.data.type === 'remove',
    );
    // The watch is live once a first change made after it shows up: poke until one does.
    await eventually('the watch sees a change', async () => {
      const r = await b.exec(['sh', '-c', 'echo x > /tmp/w/poke && rm -f /tmp/w/poke']);
      return r.exit_code === 0 ? true : undefined;
    });
    await b.exec(['sh', '-c', 'mkdir /tmp/w/sub && sleep 0.5 && echo hi > /tmp/w/sub/deep.txt && rm /tmp/w/sub/deep.txt']);
    const events = await seen;
    const changes = events.filter((e) => e.event === 'change').map((e) => `${e.data.type} ${e.data.path}`);
    assert.ok(changes.includes('create /tmp/w/sub'), changes.join('\n'));
    assert.ok(changes.includes('create /tmp/w/sub/deep.txt'), changes.join('\n'));
    assert.ok(changes.includes('remove /tmp/w/sub/deep.txt'), changes.join('\n'));
    const missing = await call('GET', `/bunkers/${b.id}/files/watch?path=/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'FILE_NOT_FOUND');
  });

  test('the SDK drives it: processes.start/events/wait/sendStdin, shell() with resize, files.watch()', async () => {
    const b = await bunker();
    const p = await b.processes.start('read name; echo hello $name; exit 5', { stdin: true, tag: 'sdk' });
    assert.equal(p.state, 'running');
    await p.sendStdin('sdk\n');
    const events: string[] = [];
    for await (const e of p.events()) {
      if (e.type === 'exit') {
        assert.equal(e.process.exit_code, 5);
        break;
      }
      events.push(e.data.toString());
    }
    assert.equal(events.join(''), 'hello sdk\n');
    assert.equal((await p.wait()).state, 'exited');
    const listed = await b.processes.list({ tag: 'sdk' }).toArray();
    assert.deepEqual(
      listed.map((x) => x.execId),
      [p.execId],
    );

    const term = await b.shell({ cols: 90, rows: 20 });
    const screen = terminalScreen(term);
    term.write('stty size\n');
    await screen.waitFor(/20 90/);
    term.resize(100, 33);
    term.write('stty size\n');
    await screen.waitFor(/33 100/);
    term.write('exit 4\n');
    assert.equal((await term.exited).exit_code, 4);

    await b.exec(['mkdir', '-p', '/tmp/sdkw']);
    const abort = new AbortController();
    const changes: string[] = [];
    const watching = (async () => {
      try {
        for await (const c of b.files.watch('/tmp/sdkw', { recursive: true, signal: abort.signal })) {
          changes.push(`${c.type} ${c.path}`);
          if (c.path === '/tmp/sdkw/done') break;
        }
      } catch (err) {
        if (!abort.signal.aborted) throw err;
      }
    })();
    await eventually('the watch sees the file', async () => {
      await b.exec(['sh', '-c', 'touch /tmp/sdkw/done']);
      return changes.some((c) => c.endsWith('/tmp/sdkw/done')) ? true : undefined;
    });
    abort.abort();
    await watching;
  });

  test('1,000 background processes across four bunkers run at once, each listed and readable', async () => {
    const bunkers = await Promise.all([0, 1, 2, 3].map(() => bunker()));
    const started: Array<{ bunker: string; exec: string }> = [];
    const jobs = bunkers.flatMap((b) => Array.from({ length: 250 }, (_, i) => ({ b, i })));
    // 25 requests in flight at a time, as a busy client would.
    for (let at = 0; at < jobs.length; at += 25) {
      const batch = await Promise.all(
        jobs.slice(at, at + 25).map(async ({ b, i }) => {
          const r = await call('POST', `/bunkers/${b.id}/exec`, {
            json: { command: `echo p${i}; exec sleep 600`, background: true, tag: 'many' },
          });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          return { bunker: b.id, exec: r.body.exec_id as string };
        }),
      );
      started.push(...batch);
    }
    assert.equal(started.length, 1000);
    for (const b of bunkers) {
      let running = 0;
      let cursor: string | null = null;
      do {
        const page: { body: { items: Array<{ state: string }>; next_cursor: string | null } } = await call(
          'GET',
          `/bunkers/${b.id}/execs?state=running&tag=many&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        running += page.body.items.filter((p) => p.state === 'running').length;
        cursor = page.body.next_cursor;
      } while (cursor);
      assert.equal(running, 250, `bunker ${b.id} runs 250`);
    }
    const last = started.at(-1) as { bunker: string; exec: string };
    const out = await sse(`/bunkers/${last.bunker}/execs/${last.exec}/events`, (e) => e.event === 'stdout');
    assert.equal(text(out), 'p249\n');
  });

  test('a controller restart while a background process writes loses no output, and the new controller completes its row', async () => {
    const b = await bunker();
    const p = (
      await call('POST', `/bunkers/${b.id}/exec`, {
        json: { command: 'i=0; while [ $i -lt 40 ]; do echo n$i; i=$((i+1)); sleep 0.05; done', background: true },
      })
    ).body;
    await controller.kill();
    controller = await startController();
    const events = await sse(`/bunkers/${b.id}/execs/${p.exec_id}/events`, (e) => e.event === 'exit');
    const expected = Array.from({ length: 40 }, (_, i) => `n${i}\n`).join('');
    assert.equal(text(events), expected);
    const row = await eventually(
      'the restarted controller completes the row',
      async () => {
        const r = await call('GET', `/bunkers/${b.id}/execs/${p.exec_id}`);
        return r.body.finished_at ? r.body : undefined;
      },
      60_000,
    );
    assert.equal(row.state, 'exited');
    assert.equal(row.exit_code, 0);
    const logs = await call('GET', `/bunkers/${b.id}/exec-logs`);
    const log = logs.body.items.find((l: { id: string }) => l.id === p.exec_id);
    assert.equal(log.stdout_preview, expected, "the stored output is the process's whole output");
  });
});
