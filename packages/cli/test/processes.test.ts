/**
 * The process verbs (`bunker exec --background`, `ps`, `kill`, `attach`, `shell`, `watch`), run
 * as the real binary against the stub API: output shapes, exit codes (the process's own, 1 for
 * API errors, 2 for usage errors), and stdin piped through a terminal when it is not a TTY.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Bunker, ScaiBunkerClient } from '@scaibunker/sdk';
import { StubApiServer } from '../../sdk/test/support/StubApiServer.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(REPO, 'packages/cli/bin/scaibunker.js');
const API_KEY = 'sbk_cli_processes';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI asynchronously (the stub lives in this process's event loop); `input` is its whole stdin. */
function cli(args: string[], input = ''): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SCAIBUNKER_URL;
  delete env.SCAIBUNKER_API_KEY;
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.stdin.end(input);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const shellQuote = (args: string[]) => args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), so its stdin is a TTY: returns a
 * way to type into it, to await what it has printed, and its exit.
 */
function cliOnTty(args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'dumb' };
  delete env.SCAIBUNKER_URL;
  delete env.SCAIBUNKER_API_KEY;
  const child = spawn('script', ['-qefc', shellQuote([process.execPath, BIN, ...args]), '/dev/null'], {
    cwd: REPO,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  child.stdout.on('data', (d) => {
    output += d;
    for (const w of waiters.splice(0)) {
      if (output.includes(w.text)) w.resolve();
      else waiters.push(w);
    }
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  return {
    type: (text: string) => child.stdin.write(text),
    printed: (text: string) =>
      output.includes(text) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ text, resolve })),
    output: () => output,
    exited,
    kill: () => child.kill('SIGKILL'),
  };
}

describe('scaibunker bunker process verbs', { timeout: 60_000 }, () => {
  let stub: StubApiServer;
  let conn: string[];
  let client: ScaiBunkerClient;

  before(async () => {
    stub = await StubApiServer.start({ apiKey: API_KEY });
    conn = ['--url', stub.url, '--api-key', API_KEY];
    client = new ScaiBunkerClient({ baseUrl: stub.url, apiKey: API_KEY });
  });
  after(async () => {
    await stub.close();
  });

  test('bunker --help lists the process verbs', async () => {
    const run = await cli(['bunker', '--help']);
    assert.equal(run.code, 0);
    for (const verb of ['ps', 'attach', 'kill', 'shell', 'watch']) assert.match(run.stdout, new RegExp(`\\n\\s+${verb}\\b`), verb);
    const exec = await cli(['bunker', 'exec', '--help']);
    for (const opt of ['--background', '--tag']) assert.ok(exec.stdout.includes(opt), opt);
  });

  test('exec --background prints the exec id (or the process with --json); --tag needs --background', async () => {
    const b = stub.addBunker();
    const run = await cli(['bunker', 'exec', ...conn, b.id, '--background', '--tag', 'web', '--env', 'A=1', '--', 'hold']);
    assert.equal(run.code, 0, run.stderr);
    const execId = run.stdout.trim();
    assert.match(execId, /^ex_[0-9a-z]+$/);
    assert.deepEqual(stub.lastRequest('POST', '/exec')?.json, { command: 'hold', background: true, tag: 'web', env: { A: '1' } });
    assert.equal(stub.processes.get(execId)?.info.state, 'running');
    const json = await cli(['bunker', 'exec', ...conn, b.id, '--background', '--json', '--', 'echo', 'hi']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(JSON.parse(json.stdout).background, true);
    const misuse = await cli(['bunker', 'exec', ...conn, b.id, '--tag', 'web', '--', 'hold']);
    assert.equal(misuse.code, 2);
    assert.match(misuse.stderr, /--tag needs --background/);
  });

  test('ps shows a table, filters by state and tag, and --json prints the page', async () => {
    const b = stub.addBunker();
    const web = stub.processes.add(b.id, 'hold', { tag: 'web' });
    const done = stub.processes.add(b.id, 'echo x; exit 2');
    const table = await cli(['bunker', 'ps', ...conn, b.id]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^EXEC ID\s+STATE\s+PID\s+TAG\s+STARTED\s+COMMAND$/);
    assert.equal(lines.length, 3);
    assert.match(lines[1]!, new RegExp(`^${done.exec_id}\\s+exited\\(2\\)\\s+\\d+\\s+-\\s+`));
    assert.match(lines[2]!, new RegExp(`^${web.exec_id}\\s+running\\s+\\d+\\s+web\\s+.*hold$`));
    const running = await cli(['bunker', 'ps', ...conn, b.id, '--state', 'running', '--tag', 'web', '--json']);
    assert.equal(running.code, 0, running.stderr);
    const page = JSON.parse(running.stdout);
    assert.deepEqual(
      page.items.map((p: { exec_id: string }) => p.exec_id),
      [web.exec_id],
    );
    assert.equal(page.next_cursor, null);
    assert.equal(stub.lastRequest('GET', '/execs')?.query.get('tag'), 'web');
    const bad = await cli(['bunker', 'ps', ...conn, b.id, '--state', 'sleeping']);
    assert.equal(bad.code, 2);
  });

  test('kill sends SIGTERM by default or --signal; an unknown exec exits 1 with its code', async () => {
    const b = stub.addBunker();
    const p = stub.processes.add(b.id, 'hold');
    const usr = await cli(['bunker', 'kill', ...conn, b.id, p.exec_id, '--signal', 'SIGUSR1']);
    assert.equal(usr.code, 0, usr.stderr);
    const term = await cli(['bunker', 'kill', ...conn, b.id, p.exec_id]);
    assert.equal(term.code, 0, term.stderr);
    assert.deepEqual(stub.processes.get(p.exec_id)?.signals, ['SIGUSR1', 'SIGTERM']);
    assert.equal(stub.processes.get(p.exec_id)?.info.state, 'killed');
    const missing = await cli(['bunker', 'kill', ...conn, b.id, 'ex_00000000000000000000']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /EXEC_NOT_FOUND/);
    const bad = await cli(['bunker', 'kill', ...conn, b.id, p.exec_id, '--signal', 'SIGSEGV']);
    assert.equal(bad.code, 2);
  });

  test('attach pipes stdin through (its end closes the process stdin) and prints the output', async () => {
    const b = stub.addBunker();
    const p = stub.processes.add(b.id, 'echo before; cat');
    const run = await cli(['bunker', 'attach', ...conn, b.id, p.exec_id], 'typed line\n');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'before\ntyped line\n');
    assert.equal(Buffer.concat(stub.processes.get(p.exec_id)?.stdin ?? []).toString(), 'typed line\n');
  });

  test('attach exits with the process exit code, 128+N for a signal; a process without stdin gets no input', async () => {
    const b = stub.addBunker();
    const p = stub.processes.add(b.id, 'hold');
    const attached = cli(['bunker', 'attach', ...conn, b.id, p.exec_id, '--from', '1'], 'ignored\n');
    await stub.processes.waitForTerminals(p.exec_id, 1);
    stub.processes.end(p.exec_id, { exit_code: 5 });
    const run = await attached;
    assert.equal(run.code, 5, run.stderr);
    assert.deepEqual(stub.processes.get(p.exec_id)?.stdin, [], 'nothing was written to a process without stdin');
    assert.doesNotMatch(run.stderr, /INTERNAL|EXEC_CONFLICT/, 'its end of input was not sent as stdin_close either');

    const q = stub.processes.add(b.id, 'hold');
    const killed = cli(['bunker', 'attach', ...conn, b.id, q.exec_id]);
    await stub.processes.waitForTerminals(q.exec_id, 1);
    stub.processes.end(q.exec_id, { state: 'killed', exit_code: null, signal: 'SIGTERM' });
    assert.equal((await killed).code, 143);
    const missing = await cli(['bunker', 'attach', ...conn, b.id, 'ex_00000000000000000000']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /EXEC_NOT_FOUND/);
  });

  test('attach on a terminal: raw mode sends every key (Ctrl-C too), Ctrl-] detaches and the process runs on', async (t) => {
    const b = stub.addBunker();
    const p = stub.processes.add(b.id, 'cat');
    const tty = cliOnTty(['bunker', 'attach', ...conn, b.id, p.exec_id]);
    t.after(() => tty.kill());
    await tty.printed('(Ctrl-] detaches)');
    tty.type('ab\x03');
    // cat sends its input back: the keys went through at once, without a newline (raw mode).
    await tty.printed('ab');
    tty.type('\x1d');
    assert.equal(await tty.exited, 0, tty.output());
    assert.match(tty.output(), /detached; it runs on/);
    assert.equal(Buffer.concat(stub.processes.get(p.exec_id)?.stdin ?? []).toString(), 'ab\x03', 'Ctrl-C went to the process as a byte');
    assert.equal(stub.processes.get(p.exec_id)?.info.state, 'running');
  });

  test("shell runs the piped input and exits with the shell's exit code", async () => {
    const b = stub.addBunker();
    const run = await cli(['bunker', 'shell', ...conn, b.id, '--command', 'sh'], 'echo hi\nexit 3\n');
    assert.equal(run.code, 3, run.stderr);
    assert.equal(run.stdout, 'echo hi\nexit 3\n', 'the stub shell echoes what is typed');
    const execId = /shell (ex_[0-9a-z]+)/.exec(run.stderr)?.[1];
    assert.ok(execId, run.stderr);
    assert.equal(stub.lastRequest('UPGRADE', '/shell')?.query.get('command'), 'sh');
    const again = await cli(['bunker', 'shell', ...conn, b.id, '--exec-id', execId]);
    assert.equal(again.code, 3, 'reattaching to the ended shell replays it and exits with its code');
    assert.equal(again.stdout, 'echo hi\nexit 3\n');
    assert.equal(stub.lastRequest('UPGRADE', '/shell')?.query.get('exec_id'), execId);
    const refused = await cli(['bunker', 'shell', '--url', stub.url, '--api-key', 'sbk_wrong', b.id]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /UNAUTHENTICATED/);
  });

  test('watch prints one line per change (or JSON lines) until the stream ends; an error event exits 1', async () => {
    const b = stub.addBunker();
    const bunker = await Bunker.connect(b.id, client);
    const watching = cli(['bunker', 'watch', ...conn, b.id, '/tmp']);
    await stub.watches.waitForWatches(b.id, 1);
    await bunker.files.write('/tmp/a.txt', 'x');
    await bunker.files.mkdir('/tmp/d');
    stub.watches.endAll();
    const run = await watching;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'create\t/tmp/a.txt\ncreate\t/tmp/d/\n');

    const json = cli(['bunker', 'watch', ...conn, b.id, '/tmp', '--recursive', '--json']);
    await stub.watches.waitForWatches(b.id, 1);
    await bunker.files.write('/tmp/d/b.txt', 'y');
    stub.watches.endAll({ code: 'WORKER_UNAVAILABLE', message: 'the worker went away' });
    const failed = await json;
    assert.equal(failed.code, 1);
    assert.deepEqual(JSON.parse(failed.stdout), { type: 'create', path: '/tmp/d/b.txt', is_dir: false });
    assert.match(failed.stderr, /WORKER_UNAVAILABLE: the worker went away/);
    assert.equal(stub.lastRequest('GET', '/files/watch')?.query.get('recursive'), 'true');

    const missing = await cli(['bunker', 'watch', ...conn, b.id, '/nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /FILE_NOT_FOUND/);
  });
});
