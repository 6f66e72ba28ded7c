/**
 * Background processes, terminals and file watch through the SDK against the stub API: the
 * requests built, SSE events followed and resumed after a dropped connection, the WebSocket
 * terminal (header and ticket auth, control frames, refused upgrades mapped to typed errors),
 * and files.watch.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  AuthError,
  Bunker,
  ConflictError,
  InternalError,
  NotFoundError,
  type ProcessEvent,
  ScaiBunkerClient,
  type ScaiBunkerError,
  type Terminal,
  UnavailableError,
} from '../src/index.js';
import { StubApiServer } from './support/StubApiServer.js';

const API_KEY = 'sbk_processes';

function assertTyped(err: unknown, Class: new (...args: never[]) => ScaiBunkerError, code: string, status: number): true {
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${String(err)}`);
  assert.equal(err.code, code);
  assert.equal(err.status, status);
  return true;
}

async function collect<T>(events: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** Reads a terminal's output until `want` has been seen. */
async function readUntil(terminal: Terminal, want: string): Promise<string> {
  let text = '';
  for await (const chunk of terminal) {
    text += chunk.toString('utf8');
    if (text.includes(want)) return text;
  }
  throw new Error(`terminal ended before ${JSON.stringify(want)}; got ${JSON.stringify(text)}`);
}

describe('SDK processes, terminals and file watch', { timeout: 20_000 }, () => {
  let stub: StubApiServer;
  let client: ScaiBunkerClient;
  let bunker: Bunker;
  const terminals: Terminal[] = [];

  before(async () => {
    stub = await StubApiServer.start({ apiKey: API_KEY });
    client = new ScaiBunkerClient({ baseUrl: stub.url, apiKey: API_KEY });
  });
  after(async () => {
    await stub.close();
  });
  afterEach(() => {
    // Terminals left open by a failed assertion must not keep the stub's sockets alive.
    for (const t of terminals.splice(0)) t.close();
  });
  const track = (t: Terminal) => {
    terminals.push(t);
    return t;
  };
  const fresh = async () => {
    bunker = await Bunker.connect(stub.addBunker().id, client);
    return bunker;
  };

  test('start sends a background exec with every option and answers the running process', async () => {
    const b = await fresh();
    const p = await b.processes.start(['cat'], {
      tag: 'worker-1',
      stdin: true,
      pty: { cols: 100, rows: 30 },
      env: { A: '1' },
      cwd: '/tmp',
      user: 'user',
      timeoutS: 120,
    });
    assert.match(p.execId, /^ex_/);
    assert.equal(p.state, 'running');
    assert.equal(typeof p.pid, 'number');
    assert.equal(p.info.tag, 'worker-1');
    assert.deepEqual(stub.lastRequest('POST', '/exec')?.json, {
      command: ['cat'],
      background: true,
      tag: 'worker-1',
      stdin: true,
      pty: { cols: 100, rows: 30 },
      env: { A: '1' },
      cwd: '/tmp',
      user: 'user',
      timeout_s: 120,
    });
    await p.kill();
  });

  test('list filters by state and tag and walks pages; get finds one, or EXEC_NOT_FOUND', async () => {
    const b = await fresh();
    const held = await b.processes.start('hold', { tag: 'svc' });
    await b.processes.start('echo done');
    await b.processes.start('hold', { tag: 'other' });
    const running = await b.processes.list({ state: 'running', limit: 1 }).toArray();
    assert.equal(running.length, 2);
    assert.ok(running.every((p) => p.state === 'running'));
    assert.equal(stub.lastRequest('GET', '/execs')?.query.get('state'), 'running');
    assert.equal(stub.lastRequest('GET', '/execs')?.query.get('cursor'), '1', 'the second page was fetched with the cursor');
    const tagged = await b.processes.list({ tag: 'svc' }).toArray();
    assert.deepEqual(
      tagged.map((p) => p.execId),
      [held.execId],
    );
    assert.equal((await b.processes.get(held.execId)).info.tag, 'svc');
    await assert.rejects(b.processes.get('ex_00000000000000000000'), (e) => assertTyped(e, NotFoundError, 'EXEC_NOT_FOUND', 404));
  });

  test('events replay the journal with sequence numbers, then the exit', async () => {
    const b = await fresh();
    const p = await b.processes.start('echo one; err two; exit 3');
    const events = await collect(p.events());
    assert.deepEqual(events.slice(0, 2), [
      { type: 'stdout', data: 'one\n', seq: 1 },
      { type: 'stderr', data: 'two\n', seq: 2 },
    ]);
    const exit = events[2];
    assert.ok(exit?.type === 'exit');
    assert.equal(exit.process.exit_code, 3);
    assert.equal(exit.process.state, 'exited');
    assert.equal(events.length, 3);
    const later = await collect(p.events({ from: 2 }));
    assert.deepEqual(later[0], { type: 'stderr', data: 'two\n', seq: 2 }, 'from skips what was already read');
  });

  test('events follow live output, and kill ends the process with SIGKILL', async () => {
    const b = await fresh();
    const p = await b.processes.start('hold');
    const events = p.events();
    const first = events.next();
    await stub.processes.waitForEventReaders(p.execId, 1);
    stub.processes.output(p.execId, 'stdout', 'live\n');
    assert.deepEqual((await first).value, { type: 'stdout', data: 'live\n', seq: 1 });
    await p.kill();
    const rest = await collect(events);
    assert.equal(rest.length, 1);
    assert.ok(rest[0]?.type === 'exit');
    assert.equal(rest[0].process.state, 'killed');
    assert.equal(rest[0].process.signal, 'SIGKILL');
    assert.deepEqual(stub.processes.get(p.execId)?.signals, ['SIGKILL']);
  });

  test('a dropped event stream is resumed from the last sequence number, without duplicates', async () => {
    const b = await fresh();
    const p = await b.processes.start('echo a; echo b; echo c; echo d');
    stub.processes.cutNextEventStream(2);
    const events = await collect(p.events());
    assert.deepEqual(
      events.map((e) => (e.type === 'exit' ? 'exit' : `${e.seq}:${e.data.trim()}`)),
      ['1:a', '2:b', '3:c', '4:d', 'exit'],
    );
    const froms = stub.requests.filter((r) => r.path.endsWith(`/execs/${p.execId}/events`)).map((r) => r.query.get('from'));
    assert.deepEqual(froms, ['1', '3']);
  });

  test('a dropped event stream past maxReconnects is CONNECTION_FAILED', async () => {
    const b = await fresh();
    const p = await b.processes.start('echo a; echo b');
    stub.processes.cutNextEventStream(1);
    const seen: ProcessEvent[] = [];
    await assert.rejects(
      (async () => {
        for await (const e of p.events({ maxReconnects: 0 })) seen.push(e);
      })(),
      (e) => assertTyped(e, UnavailableError, 'CONNECTION_FAILED', 503),
    );
    assert.equal(seen.length, 1, 'the event before the drop was delivered');
  });

  test('wait follows from the next sequence number and returns the process as it ended', async () => {
    const b = await fresh();
    const p = await b.processes.start('echo early; hold');
    const waited = p.wait();
    await stub.processes.waitForEventReaders(p.execId, 1);
    assert.equal(stub.lastRequest('GET', `/execs/${p.execId}/events`)?.query.get('from'), '2', 'the output so far is not replayed');
    stub.processes.end(p.execId, { exit_code: 7 });
    const ended = await waited;
    assert.equal(ended.state, 'exited');
    assert.equal(ended.exit_code, 7);
    assert.equal(p.state, 'exited');
    assert.equal((await p.wait()).exit_code, 7, 'an ended process answers at once');
  });

  test('stdin is written and closed; steering an ended process is EXEC_CONFLICT', async () => {
    const b = await fresh();
    const p = await b.processes.start('cat', { stdin: true });
    assert.deepEqual(await p.sendStdin('hello'), { bytes: 5 });
    assert.equal(stub.lastRequest('POST', '/stdin')?.headers['content-type'], 'application/octet-stream');
    await p.sendStdin(new Uint8Array([0x21, 0x0a]));
    await p.closeStdin();
    const events = await collect(p.events());
    assert.equal(events.map((e) => (e.type === 'stdout' ? e.data : '')).join(''), 'hello!\n');
    await assert.rejects(p.sendStdin('late'), (e) => assertTyped(e, ConflictError, 'EXEC_CONFLICT', 409));
    await assert.rejects(p.signal('SIGTERM'), (e) => assertTyped(e, ConflictError, 'EXEC_CONFLICT', 409));
  });

  test('resize reaches a terminal process; without a terminal it is EXEC_CONFLICT', async () => {
    const b = await fresh();
    const tty = await b.processes.start('hold', { pty: { cols: 80, rows: 24 } });
    await tty.resize(120, 40);
    assert.deepEqual(stub.processes.get(tty.execId)?.resizes.at(-1), { cols: 120, rows: 40 });
    const plain = await b.processes.start('hold');
    await assert.rejects(plain.resize(10, 10), (e) => assertTyped(e, ConflictError, 'EXEC_CONFLICT', 409));
    await plain.signal('SIGUSR1');
    assert.deepEqual(stub.processes.get(plain.execId)?.signals, ['SIGUSR1']);
    assert.equal((await plain.refresh()).state, 'running', 'SIGUSR1 does not end it');
    await plain.kill();
    await tty.kill();
  });

  test('a streaming exec hands over its exec id from the start event, before any output', async () => {
    const b = await fresh();
    const order: string[] = [];
    const result = await b.exec('echo hi', {
      onStart: (execId) => void order.push(`start:${execId}`),
      onStdout: (s) => void order.push(`out:${s}`),
    });
    assert.deepEqual(order, [`start:${result.exec_id}`, 'out:hi\n']);
  });

  test('attach: output replayed from `from` and live, input echoed, control frames, and the exit', async () => {
    const b = await fresh();
    const p = await b.processes.start('echo a; echo b; cat');
    const terminal = track(await p.attach({ from: 2 }));
    assert.equal(terminal.execId, p.execId);
    const upgrade = stub.lastRequest('UPGRADE', `/execs/${p.execId}/attach`);
    assert.equal(upgrade?.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(upgrade?.query.get('ticket'), null);
    assert.equal(upgrade?.query.get('from'), '2');
    assert.equal(await readUntil(terminal, 'b\n'), 'b\n', 'the replay starts at seq 2');
    terminal.write('typed\n');
    assert.match(await readUntil(terminal, 'typed'), /typed/);
    terminal.resize(132, 43);
    terminal.signal('SIGTERM');
    assert.deepEqual(await terminal.exited, { exit_code: null, signal: 'SIGTERM', state: 'killed' });
    const stubProcess = stub.processes.get(p.execId);
    assert.deepEqual(stubProcess?.resizes.at(-1), { cols: 132, rows: 43 }, 'control frames arrive in order, before the signal');
    assert.equal(stubProcess?.stdin.map((d) => d.toString()).join(''), 'typed\n');
    assert.deepEqual(await collect(terminal), [], 'iteration ends after the exit, without an error');
  });

  test('output sent before anyone subscribes is held for the first consumer (onData)', async () => {
    const b = await fresh();
    const p = await b.processes.start('echo early; cat');
    const terminal = track(await p.attach());
    terminal.write('x');
    const seen: string[] = [];
    const done = new Promise<void>((resolve) => {
      terminal.onData((chunk) => {
        seen.push(chunk.toString());
        if (seen.join('').includes('x')) resolve();
      });
    });
    await done;
    assert.equal(seen.join(''), 'early\nx');
    terminal.closeStdin();
    assert.equal((await terminal.exited).exit_code, 0);
  });

  test('an error frame that does not end the terminal goes to onError; the exit still arrives', async () => {
    const b = await fresh();
    const p = await b.processes.start('hold');
    const terminal = track(await p.attach());
    const failed = new Promise<ScaiBunkerError>((resolve) => terminal.onError(resolve));
    terminal.closeStdin();
    const err = await failed;
    assert.ok(err instanceof InternalError, String(err));
    assert.equal(err.code, 'INTERNAL', 'a frame without a code');
    assert.match(err.message, /no open stdin/);
    stub.processes.end(p.execId, { exit_code: 4 });
    assert.deepEqual(await terminal.exited, { exit_code: 4, signal: null, state: 'exited' });
  });

  test('shell: ready names the exec, typed input comes back, and it exits with its code', async () => {
    const b = await fresh();
    const shell = track(await b.shell({ cols: 100, rows: 20, command: 'sh' }));
    assert.match(shell.execId ?? '', /^ex_/);
    assert.equal(typeof shell.pid, 'number');
    const upgrade = stub.lastRequest('UPGRADE', '/shell');
    assert.deepEqual([upgrade?.query.get('cols'), upgrade?.query.get('rows'), upgrade?.query.get('command')], ['100', '20', 'sh']);
    shell.write('echo hi\r');
    await readUntil(shell, 'echo hi');
    shell.write('exit 3\r');
    assert.deepEqual(await shell.exited, { exit_code: 3, signal: null, state: 'exited' });
    assert.equal((await b.processes.get(shell.execId!)).info.pty, true);
  });

  test('shell reattaches by exec id; an unknown one is EXEC_NOT_FOUND from the error frame', async () => {
    const b = await fresh();
    const first = track(await b.shell());
    first.write('one\r');
    await readUntil(first, 'one');
    first.close();
    await assert.rejects(first.exited, (e) => assertTyped(e, UnavailableError, 'CONNECTION_FAILED', 503));
    const again = track(await b.shell({ execId: first.execId! }));
    assert.equal(again.execId, first.execId);
    assert.match(await readUntil(again, 'one'), /one/, 'the reattached terminal replays the output');
    again.write('exit 0\r');
    assert.equal((await again.exited).exit_code, 0);
    await assert.rejects(b.shell({ execId: 'ex_00000000000000000000' }), (e) => assertTyped(e, NotFoundError, 'EXEC_NOT_FOUND', 404));
  });

  test('ticket auth mints a single-use ticket and sends no Authorization header; browsers always use it', async () => {
    const b = await fresh();
    const p = await b.processes.start('cat');
    const before = stub.processes.ticketsUsed;
    const byTicket = track(await p.attach({ auth: 'ticket' }));
    let upgrade = stub.lastRequest('UPGRADE', '/attach');
    assert.equal(upgrade?.headers.authorization, undefined);
    assert.ok(upgrade?.query.get('ticket'));
    assert.equal(stub.processes.ticketsUsed, before + 1);
    byTicket.close();
    const g = globalThis as { window?: unknown };
    g.window = {};
    try {
      track(await p.attach()).close();
    } finally {
      delete g.window;
    }
    upgrade = stub.lastRequest('UPGRADE', '/attach');
    assert.equal(upgrade?.headers.authorization, undefined);
    assert.equal(stub.processes.ticketsUsed, before + 2);
    await p.kill();
  });

  test('a refused upgrade is diagnosed into the typed error the API gives', async () => {
    const b = await fresh();
    const p = await b.processes.start('hold');
    const badKey = new ScaiBunkerClient({ baseUrl: stub.url, apiKey: 'sbk_wrong' });
    const stranger = new Bunker(b.info, badKey);
    await assert.rejects(stranger.processes.attach(p.execId), (e) => assertTyped(e, AuthError, 'UNAUTHENTICATED', 401));
    await assert.rejects(stranger.shell(), (e) => assertTyped(e, AuthError, 'UNAUTHENTICATED', 401));
    // With a ticket the refusal comes from minting it, over plain HTTP.
    await assert.rejects(stranger.processes.attach(p.execId, { auth: 'ticket' }), (e) => assertTyped(e, AuthError, 'UNAUTHENTICATED', 401));
    await p.kill();
  });

  test('a terminal whose connection drops rejects exited and its iteration with CONNECTION_FAILED', async () => {
    const b = await fresh();
    const p = await b.processes.start('cat');
    const terminal = track(await p.attach());
    const reading = readUntil(terminal, 'never');
    stub.processes.dropTerminals();
    await assert.rejects(terminal.exited, (e) => assertTyped(e, UnavailableError, 'CONNECTION_FAILED', 503));
    await assert.rejects(reading, (e) => assertTyped(e, UnavailableError, 'CONNECTION_FAILED', 503));
    assert.throws(
      () => terminal.write('x'),
      (e) => assertTyped(e, UnavailableError, 'CONNECTION_FAILED', 503),
    );
    await p.kill();
  });

  test('files.watch yields changes under the directory until the loop stops', async () => {
    const b = await fresh();
    await b.files.mkdir('/tmp/w');
    const watch = b.files.watch('/tmp/w');
    const first = watch.next();
    await stub.watches.waitForWatches(b.id, 1);
    await b.files.write('/tmp/w/a.txt', 'x');
    await b.files.write('/tmp/w/a.txt', 'y');
    await b.files.mkdir('/tmp/w/sub');
    await b.files.write('/tmp/w/sub/nested.txt', 'not seen: not recursive');
    await b.files.remove('/tmp/w/a.txt');
    const seen = [(await first).value];
    for await (const change of watch) {
      seen.push(change);
      if (change.type === 'remove') break;
    }
    assert.deepEqual(seen, [
      { type: 'create', path: '/tmp/w/a.txt', is_dir: false },
      { type: 'write', path: '/tmp/w/a.txt', is_dir: false },
      { type: 'create', path: '/tmp/w/sub', is_dir: true },
      { type: 'remove', path: '/tmp/w/a.txt', is_dir: false },
    ]);
    assert.equal(stub.lastRequest('GET', '/files/watch')?.query.get('recursive'), null);

    const recursive = b.files.watch('/tmp/w', { recursive: true });
    const next = recursive.next();
    await stub.watches.waitForWatches(b.id, 1);
    await b.files.write('/tmp/w/sub/deep.txt', 'z');
    assert.deepEqual((await next).value, { type: 'create', path: '/tmp/w/sub/deep.txt', is_dir: false });
    assert.equal(stub.lastRequest('GET', '/files/watch')?.query.get('recursive'), 'true');
    await recursive.return(undefined);
  });

  test('files.watch: a missing path, a file, and an error event are typed errors', async () => {
    const b = await fresh();
    await assert.rejects(b.files.watch('/nope').next(), (e) => assertTyped(e, NotFoundError, 'FILE_NOT_FOUND', 404));
    await b.files.write('/tmp/f', 'x');
    await assert.rejects(b.files.watch('/tmp/f').next(), (e) => assertTyped(e, ConflictError, 'FILE_CONFLICT', 409));
    const watch = b.files.watch('/tmp');
    const next = watch.next();
    await stub.watches.waitForWatches(b.id, 1);
    stub.watches.endAll({ code: 'WORKER_UNAVAILABLE', message: 'the worker went away' });
    await assert.rejects(next, (e) => assertTyped(e, UnavailableError, 'WORKER_UNAVAILABLE', 503));
  });

  test('files.watch stops when its signal aborts', async () => {
    const b = await fresh();
    const abort = new AbortController();
    const watch = b.files.watch('/tmp', { signal: abort.signal });
    const next = watch.next();
    await stub.watches.waitForWatches(b.id, 1);
    abort.abort(new Error('enough'));
    await assert.rejects(next, /enough/);
  });
});
