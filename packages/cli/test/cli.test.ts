/**
 * The CLI client verbs, run as the real binary (`node packages/cli/bin/scaibunker.js …`)
 * against a stub API server: --json prints one parseable document, API errors exit 1 with the
 * code on stderr, usage errors exit 2, exec exits with the command's code, cp streams.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { StubApiServer } from '../../sdk/test/support/StubApiServer.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(REPO, 'packages/cli/bin/scaibunker.js');
const ADMIN_COMMANDS = join(REPO, 'packages/cli/src/commands/admin.ts');
const API_KEY = 'sbk_cli_test';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a node process asynchronously (the stub server lives in this process's event loop). */
function runNode(args: string[], opts: { env?: Record<string, string | undefined>; input?: string | Buffer } = {}): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, SCAIBUNKER_URL: undefined, SCAIBUNKER_API_KEY: undefined, ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, args, { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('scaibunker CLI client verbs', () => {
  let stub: StubApiServer;
  let dir: string;
  let conn: string[];

  const cli = (args: string[], opts: { env?: Record<string, string | undefined>; input?: string | Buffer } = {}) =>
    runNode([BIN, ...args], opts);
  /** Admin verbs through a program built like main.ts builds its own (registerAdminCommands). */
  const adminCli = (args: string[]) =>
    runNode([
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `import { Command } from 'commander';
       import { registerAdminCommands } from ${JSON.stringify(ADMIN_COMMANDS)};
       const program = new Command('scaibunker').showHelpAfterError();
       registerAdminCommands(program);
       await program.parseAsync(process.argv.slice(1), { from: 'user' });`,
      ...args,
    ]);
  const json = (run: Run): any => {
    assert.equal(run.code, 0, `exit 0 expected; stderr: ${run.stderr}`);
    return JSON.parse(run.stdout);
  };

  before(async () => {
    stub = await StubApiServer.start({ apiKey: API_KEY, uploadCapBytes: 2 * 1024 * 1024 });
    dir = mkdtempSync(join(tmpdir(), 'scaibunker-cli-test-'));
    conn = ['--url', stub.url, '--api-key', API_KEY];
  });
  after(async () => {
    await stub.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('--help lists every verb', async () => {
    const [top, bunker, admin] = await Promise.all([cli(['--help']), cli(['bunker', '--help']), adminCli(['admin', '--help'])]);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /\bbunker\b/);
    if (readFileSync(join(REPO, 'packages/cli/src/main.ts'), 'utf8').includes('registerAdminCommands'))
      assert.match(top.stdout, /\badmin\b/);
    assert.equal(bunker.code, 0);
    for (const verb of ['create', 'ls', 'get', 'exec', 'cp', 'rm', 'pause', 'resume', 'logs'])
      assert.match(bunker.stdout, new RegExp(`\\n\\s+${verb}\\b`), `bunker ${verb}`);
    assert.equal(admin.code, 0);
    for (const verb of ['tenant', 'key', 'worker']) assert.match(admin.stdout, new RegExp(`\\n\\s+${verb}\\b`), `admin ${verb}`);
    const exec = await cli(['bunker', 'exec', '--help']);
    for (const opt of ['--timeout', '--env', '--cwd', '--user', '--url', '--api-key', '--api-key-file', '--json'])
      assert.ok(exec.stdout.includes(opt), opt);
  });

  test('bunker create --json prints one document and sends every option', async () => {
    const run = await cli([
      'bunker',
      'create',
      ...conn,
      '--json',
      '--image',
      'minimal',
      '--lifecycle',
      'session',
      '--isolation',
      'microvm',
      '--cpu',
      '0.5',
      '--memory',
      '1g',
      '--disk',
      '2048',
      '--idle-timeout',
      '60',
      '--max-lifetime',
      '600',
      '--label',
      'team=a',
      '--label',
      'env=ci',
      '--env',
      'A=1',
      '--env',
      'B=x=y',
    ]);
    const doc = json(run);
    assert.match(doc.id, /^bk_/);
    assert.equal(doc.state, 'running');
    assert.equal(doc.isolation, 'microvm');
    assert.deepEqual(stub.lastRequest('POST', '/bunkers')?.json, {
      image: 'minimal',
      lifecycle: 'session',
      isolation: 'microvm',
      cpu_millicores: 500,
      memory_mb: 1024,
      disk_mb: 2048,
      idle_timeout_s: 60,
      max_lifetime_s: 600,
      metadata: { team: 'a', env: 'ci' },
      env: { A: '1', B: 'x=y' },
    });
    assert.equal(run.stderr, '', 'no spinner when stderr is not a terminal');
  });

  test('bunker create sends the network profile, its allowlist and the bandwidth cap', async () => {
    const allowlisted = json(
      await cli(['bunker', 'create', ...conn, '--json', '--allow', 'pypi.org', '--allow', '*.example.com', '--bandwidth', '100']),
    );
    assert.deepEqual(stub.lastRequest('POST', '/bunkers')?.json, {
      image: 'minimal',
      network_profile: 'allowlisted',
      network_allowlist: ['pypi.org', '*.example.com'],
      bandwidth_mbit: 100,
    });
    assert.deepEqual(allowlisted.network_allowlist, ['pypi.org', '*.example.com']);
    const registry = await cli(['bunker', 'create', ...conn, '--network', 'registry']);
    assert.equal(registry.code, 0, registry.stderr);
    assert.deepEqual(stub.lastRequest('POST', '/bunkers')?.json, { image: 'minimal', network_profile: 'registry' });
    const shown = await cli(['bunker', 'get', allowlisted.id, ...conn]);
    assert.match(shown.stdout, /network_allowlist\s+pypi\.org,\*\.example\.com/);
  });

  test('bunker create prints just the id; get shows it; ls lists it', async () => {
    const created = await cli(['bunker', 'create', ...conn, '--label', 'pick=me']);
    assert.equal(created.code, 0);
    assert.match(created.stdout, /^bk_[0-9a-z]{20}\n$/);
    const id = created.stdout.trim();
    const [get, getJson, ls, lsJson] = await Promise.all([
      cli(['bunker', 'get', id, ...conn]),
      cli(['bunker', 'get', id, ...conn, '--json']),
      cli(['bunker', 'ls', ...conn, '--label', 'pick=me', '--state', 'running']),
      cli(['bunker', 'ls', ...conn, '--label', 'pick=me', '--json']),
    ]);
    assert.match(get.stdout, new RegExp(`^id\\s+${id}$`, 'm'));
    assert.match(get.stdout, /^isolation\s+container$/m);
    assert.equal(json(getJson).id, id);
    assert.match(ls.stdout, /^ID\s+IMAGE\s+STATE\s+LIFECYCLE\s+ISOLATION\s+CPU/);
    assert.match(ls.stdout, new RegExp(`${id}\\s+minimal\\s+running\\s+ephemeral\\s+container\\s+1000m`));
    assert.deepEqual(
      json(lsJson).items.map((b: { id: string }) => b.id),
      [id],
    );
  });

  test('bunker ls --all follows the cursor through every page', async () => {
    for (let i = 0; i < 3; i++) stub.addBunker({ metadata: { page: 'all' } });
    const onePage = json(await cli(['bunker', 'ls', ...conn, '--label', 'page=all', '--limit', '2', '--json']));
    assert.equal(onePage.items.length, 2);
    assert.equal(typeof onePage.next_cursor, 'string');
    const all = json(await cli(['bunker', 'ls', ...conn, '--label', 'page=all', '--limit', '2', '--all', '--json']));
    assert.equal(all.items.length, 3);
    assert.equal(all.next_cursor, null);
  });

  test('bunker exec streams stdout and stderr and exits with the command exit code', async () => {
    const id = stub.addBunker().id;
    const run = await cli([
      'bunker',
      'exec',
      id,
      ...conn,
      '--env',
      'WHO=you',
      '--cwd',
      '/tmp',
      '--timeout',
      '5',
      '--',
      'echo hi $WHO; err oops; exit 3',
    ]);
    assert.equal(run.code, 3);
    assert.equal(run.stdout, 'hi you\n');
    assert.equal(run.stderr, 'oops\n');
    const req = stub.lastRequest('POST', '/exec')!;
    assert.deepEqual(req.json, { command: 'echo hi $WHO; err oops; exit 3', timeout_s: 5, env: { WHO: 'you' }, cwd: '/tmp', stream: true });

    const argv = await cli(['bunker', 'exec', id, ...conn, '--', 'echo', '-n', 'two words']);
    assert.equal(argv.code, 0);
    assert.deepEqual((stub.lastRequest('POST', '/exec')!.json as { command: unknown }).command, ['echo', '-n', 'two words']);

    const asJson = await cli(['bunker', 'exec', id, ...conn, '--json', '--', 'echo json; exit 2']);
    assert.equal(asJson.code, 2);
    const result = JSON.parse(asJson.stdout);
    assert.equal(result.stdout, 'json\n');
    assert.equal(result.exit_code, 2);

    writeFileSync(join(dir, 'stdin.txt'), 'fed from a file');
    const fed = await cli(['bunker', 'exec', id, ...conn, '--stdin', join(dir, 'stdin.txt'), '--', 'cat']);
    assert.equal(fed.stdout, 'fed from a file');
    const piped = await cli(['bunker', 'exec', id, ...conn, '--stdin', '-', '--', 'cat'], { input: 'from the pipe' });
    assert.equal(piped.stdout, 'from the pipe');
  });

  test('bunker cp uploads (streamed, chunked) and downloads files, to a file, a directory or stdout', async () => {
    const id = stub.addBunker().id;
    const local = join(dir, 'payload.bin');
    const payload = Buffer.from(Array.from({ length: 1_500_000 }, (_, i) => (i * 7) % 256));
    writeFileSync(local, payload, { mode: 0o640 });

    const up = await cli(['bunker', 'cp', local, `${id}:/tmp/`, ...conn, '--json']);
    assert.deepEqual(json(up), { source: local, destination: `${id}:/tmp/payload.bin`, bytes: payload.length });
    assert.ok(stub.fileContent(id, '/tmp/payload.bin')?.equals(payload));
    assert.equal(stub.fileMode(id, '/tmp/payload.bin'), '640', 'the local mode is kept');
    const upload = stub.uploads.at(-1)!;
    assert.equal(upload.transferEncoding, 'chunked', 'the upload is streamed');
    assert.ok(upload.chunks > 1);

    const deep = await cli(['bunker', 'cp', local, `${id}:/new/dir/p.bin`, ...conn, '--parents', '--mode', '0600']);
    assert.equal(deep.code, 0, deep.stderr);
    assert.equal(deep.stdout, '');
    assert.equal(stub.fileMode(id, '/new/dir/p.bin'), '0600');

    const fromStdin = await cli(['bunker', 'cp', '-', `${id}:/tmp/stdin.txt`, ...conn], { input: 'piped in' });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal(stub.fileContent(id, '/tmp/stdin.txt')?.toString(), 'piped in');

    const downloaded = join(dir, 'back.bin');
    assert.equal((await cli(['bunker', 'cp', `${id}:/tmp/payload.bin`, downloaded, ...conn])).code, 0);
    assert.ok(readFileSync(downloaded).equals(payload));
    const intoDir = await cli(['bunker', 'cp', `${id}:/tmp/stdin.txt`, dir, ...conn, '--json']);
    assert.equal(json(intoDir).destination, join(dir, 'stdin.txt'));
    assert.equal(readFileSync(join(dir, 'stdin.txt'), 'utf8'), 'piped in');
    const toStdout = await cli(['bunker', 'cp', `${id}:/tmp/stdin.txt`, '-', ...conn]);
    assert.equal(toStdout.stdout, 'piped in');
    assert.ok(statSync(downloaded).size === payload.length);

    const missing = await cli(['bunker', 'cp', `${id}:/tmp/nope`, join(dir, 'nope'), ...conn]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^scaibunker: FILE_NOT_FOUND: /m);
    const tooBig = join(dir, 'big.bin');
    writeFileSync(tooBig, Buffer.alloc(3 * 1024 * 1024));
    const refused = await cli(['bunker', 'cp', tooBig, `${id}:/tmp/big.bin`, ...conn]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^scaibunker: PAYLOAD_TOO_LARGE: /m);
  });

  test('bunker logs, pause, resume and rm', async () => {
    const a = stub.addBunker().id;
    const b = stub.addBunker().id;
    await cli(['bunker', 'exec', a, ...conn, '--', 'echo logged']);
    const logs = json(await cli(['bunker', 'logs', a, ...conn, '--json']));
    assert.equal(logs[0].command, 'echo logged');
    const table = await cli(['bunker', 'logs', a, ...conn]);
    assert.match(table.stdout, /^EXEC ID\s+STARTED\s+EXIT/);
    assert.match(table.stdout, /echo logged/);

    const paused = json(await cli(['bunker', 'pause', a, ...conn, '--json']));
    assert.equal(paused[0].state, 'paused');
    const resumed = await cli(['bunker', 'resume', a, ...conn]);
    assert.equal(resumed.stdout, `${a}\trunning\n`);
    const notPaused = await cli(['bunker', 'resume', a, ...conn]);
    assert.equal(notPaused.code, 1);
    assert.match(notPaused.stderr, /^scaibunker: BUNKER_INVALID_TRANSITION: /);

    const removed = json(await cli(['bunker', 'rm', a, b, ...conn, '--json']));
    assert.deepEqual(
      removed.map((x: { id: string; state: string }) => [x.id, x.state]),
      [
        [a, 'terminated'],
        [b, 'terminated'],
      ],
    );
    const again = await cli(['bunker', 'rm', a, ...conn]);
    assert.equal(again.code, 0, 'terminate is idempotent');
    assert.equal(again.stdout, `${a}\tterminated\n`);
  });

  test('API errors: exit 1, `scaibunker: CODE: message` on stderr, nothing on stdout even with --json', async () => {
    const [notFound, badKey, down, ended] = await Promise.all([
      cli(['bunker', 'get', 'bk_00000000000000000000', ...conn, '--json']),
      cli(['bunker', 'ls', '--url', stub.url, '--api-key', 'sbk_wrong']),
      cli(['bunker', 'ls', '--url', 'http://127.0.0.1:1', '--api-key', API_KEY, '--json']),
      (async () => {
        const id = stub.addBunker().id;
        await cli(['bunker', 'rm', id, ...conn]);
        return cli(['bunker', 'exec', id, ...conn, '--', 'echo x']);
      })(),
    ]);
    for (const [run, code] of [
      [notFound, 'BUNKER_NOT_FOUND'],
      [badKey, 'UNAUTHENTICATED'],
      [down, 'CONNECTION_FAILED'],
      [ended, 'BUNKER_NOT_RUNNING'],
    ] as const) {
      assert.equal(run.code, 1, `${code}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(`^scaibunker: ${code}: \\S`), run.stderr);
      assert.equal(run.stdout, '');
    }
  });

  test('usage errors exit 2', async () => {
    const runs = await Promise.all([
      cli(['bunker', 'get']),
      cli(['bunker', 'create', '--cpu', 'lots']),
      cli(['bunker', 'create', '--lifecycle', 'forever']),
      cli(['bunker', 'create', '--isolation', 'vm']),
      cli(['bunker', 'create', '--interface', 'not-a-bridge']),
      cli(['bunker', 'create', '--interface', 'br_00000000000000000000,mac=ff:ff:ff:ff:ff:ff']),
      cli(['bunker', 'create', '--interface', 'br_00000000000000000000,spoof-guard=maybe']),
      cli(['bunker', 'create', '--allow', 'https://pypi.org']),
      cli(['bunker', 'create', '--allow', 'a.*.com']),
      cli(['bunker', 'create', '--bandwidth', '0']),
      cli(['bunker', 'create', '--bandwidth', '10001']),
      cli(['bunker', 'ls', '--limit', '0']),
      cli(['bunker', 'ls', '--url', 'ftp://x']),
      cli(['bunker', 'cp', 'a', 'b', ...conn]),
      cli(['bunker', 'bogus']),
      adminCli(['admin', 'key', 'create', 'tn_x', '--name', 'n', '--permission', 'scaibunker:everything']),
    ]);
    for (const run of runs) {
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /error:/);
      assert.equal(run.stdout, '');
    }
  });

  test('the API key comes from --api-key-file or SCAIBUNKER_API_KEY, the URL from SCAIBUNKER_URL', async () => {
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, `${API_KEY}\n`);
    const fromFile = await cli(['bunker', 'ls', '--url', stub.url, '--api-key-file', keyFile, '--json']);
    assert.ok(Array.isArray(json(fromFile).items));
    const fromEnv = await cli(['bunker', 'ls', '--json'], { env: { SCAIBUNKER_URL: stub.url, SCAIBUNKER_API_KEY: API_KEY } });
    assert.ok(Array.isArray(json(fromEnv).items));
    const missingFile = await cli(['bunker', 'ls', '--url', stub.url, '--api-key-file', join(dir, 'absent')]);
    assert.equal(missingFile.code, 1);
    assert.match(missingFile.stderr, /^scaibunker: ENOENT: /);
  });

  test('admin tenant create, key create and worker verbs', async () => {
    const tenant = await adminCli(['admin', 'tenant', 'create', 'acme', ...conn]);
    assert.equal(tenant.code, 0, tenant.stderr);
    const tenantId = tenant.stdout.trim();
    assert.match(tenantId, /^tn_/);
    const key = await adminCli([
      'admin',
      'key',
      'create',
      tenantId,
      '--name',
      'ci',
      '--permission',
      'scaibunker:read',
      '--permission',
      'scaibunker:execute',
      ...conn,
    ]);
    assert.equal(key.code, 0, key.stderr);
    assert.match(key.stdout, /^sbk_\w+\n$/);
    assert.deepEqual(stub.lastRequest('POST', '/api-keys')?.json, { name: 'ci', permissions: ['scaibunker:read', 'scaibunker:execute'] });
    const keyJson = json(
      await adminCli(['admin', 'key', 'create', tenantId, '--name', 'j', '--permission', 'scaibunker:read', ...conn, '--json']),
    );
    assert.match(keyJson.key, /^sbk_/);
    const noTenant = await adminCli([
      'admin',
      'key',
      'create',
      'tn_00000000000000000000',
      '--name',
      'x',
      '--permission',
      'scaibunker:read',
      ...conn,
    ]);
    assert.equal(noTenant.code, 1);
    assert.match(noTenant.stderr, /^scaibunker: TENANT_NOT_FOUND: /);

    const workers = json(await adminCli(['admin', 'worker', 'ls', ...conn, '--json']));
    assert.equal(workers[0].id, 'wk_stub0000000000000000');
    const drained = json(await adminCli(['admin', 'worker', 'drain', workers[0].id, ...conn, '--json']));
    assert.equal(drained.state, 'draining');
    const table = await adminCli(['admin', 'worker', 'ls', ...conn]);
    assert.match(table.stdout, /^ID\s+NAME\s+STATE/);
  });
});
