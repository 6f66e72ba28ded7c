/**
 * `scaibunker admin quota …` and `bunker create --gpus`, run as real processes against a real
 * controller (SQLite, in-process quota counters, a fake worker).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(REPO, 'packages/cli/bin/scaibunker.js');
const ADMIN_COMMANDS = join(REPO, 'packages/cli/src/commands/admin.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runNode(args: string[]): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, SCAIBUNKER_URL: undefined, SCAIBUNKER_API_KEY: undefined };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, args, { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Admin verbs through a program built as main.ts builds its own. */
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

describe('scaibunker admin quota', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let platform: string[];
  let tenantId: string;
  let admin: string[];
  let alice: string[];

  before(async () => {
    served = await servedController();
    platform = ['--url', served.url, '--api-key', served.adminKey];
    const t = await adminCli(['admin', 'tenant', 'create', 'acme', ...platform]);
    tenantId = t.stdout.trim();
    const adminKey = await adminCli([
      'admin',
      'key',
      'create',
      tenantId,
      '--name',
      'a',
      '--permission',
      'scaibunker:admin:tenant',
      ...platform,
    ]);
    admin = ['--url', served.url, '--api-key', adminKey.stdout.trim()];
    const aliceKey = json(
      await adminCli([
        'admin',
        'key',
        'create',
        tenantId,
        '--name',
        'alice',
        '--permission',
        'scaibunker:create',
        'scaibunker:read',
        '--user',
        'alice',
        '--group',
        'ml',
        '--group',
        'ops',
        ...platform,
        '--json',
      ]),
    );
    assert.equal(aliceKey.user_id, 'alice');
    assert.deepEqual(aliceKey.groups, ['ml', 'ops']);
    alice = ['--url', served.url, '--api-key', aliceKey.key];
  });
  after(async () => served?.close());

  test('--help lists every quota verb', async () => {
    const help = await adminCli(['admin', 'quota', '--help']);
    assert.equal(help.code, 0);
    for (const verb of ['create', 'ls', 'get', 'update', 'rm', 'assign', 'unassign', 'usage'])
      assert.match(help.stdout, new RegExp(`\\n\\s+${verb}\\b`), `quota ${verb}`);
  });

  test('create, ls, get, update, assign, usage, a refused create, unassign, rm', async () => {
    const created = await adminCli([
      'admin',
      'quota',
      'create',
      'ml-team',
      ...admin,
      '--max-bunkers',
      '1',
      '--max-cpu',
      '2',
      '--max-memory',
      '4g',
      '--max-gpus',
      '0',
      '--lifecycle',
      'ephemeral',
      '--lifecycle',
      'session',
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^qp_[0-9a-z]{20}\n$/);
    const id = created.stdout.trim();
    const got = json(await adminCli(['admin', 'quota', 'get', id, ...admin, '--json']));
    assert.equal(got.max_cpu_millicores, 2000);
    assert.equal(got.max_memory_mb, 4096);
    assert.equal(got.max_gpu_count, 0);
    assert.equal(got.max_disk_mb, null);
    assert.deepEqual(got.allowed_lifecycles, ['ephemeral', 'session']);

    const ls = await adminCli(['admin', 'quota', 'ls', ...admin]);
    assert.match(ls.stdout, /^ID\s+TENANT\s+NAME\s+BUNKERS\s+CPU\s+MEMORY/);
    assert.match(ls.stdout, new RegExp(`${id}\\s+${tenantId}\\s+ml-team\\s+1\\s+2000m\\s+4096Mi\\s+-\\s+0\\s+-`));

    const updated = json(
      await adminCli(['admin', 'quota', 'update', id, ...admin, '--max-cpu', 'none', '--lifecycle', 'any', '--name', 'ml', '--json']),
    );
    assert.equal(updated.max_cpu_millicores, null);
    assert.equal(updated.allowed_lifecycles, null);
    assert.equal(updated.name, 'ml');

    const assigned = await adminCli(['admin', 'quota', 'assign', id, '--group', 'ml', ...admin]);
    assert.equal(assigned.code, 0, assigned.stderr);
    assert.match(assigned.stdout, /^qa_[0-9a-z]{20}\n$/);
    const assignmentId = assigned.stdout.trim();
    const shown = await adminCli(['admin', 'quota', 'get', id, ...admin]);
    assert.match(shown.stdout, new RegExp(`^assignment\\s+${assignmentId}\\s+group\\s+ml$`, 'm'));

    const bunker = await runNode([BIN, 'bunker', 'create', ...alice, '--memory', '1g']);
    assert.equal(bunker.code, 0, bunker.stderr);
    const refused = await runNode([BIN, 'bunker', 'create', ...alice]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^scaibunker: QUOTA_EXCEEDED: .*group bucket ml/m);
    const gpus = await runNode([BIN, 'bunker', 'create', ...alice, '--gpus', '1', '--json']);
    assert.equal(gpus.code, 1);
    assert.match(gpus.stderr, /QUOTA_EXCEEDED/);

    const usage = await adminCli(['admin', 'quota', 'usage', ...alice]);
    assert.match(usage.stdout, /^KIND\s+BUCKET\s+BUNKERS\s+CPU\s+MEMORY\s+DISK\s+GPUS\s+PROFILES/);
    assert.match(usage.stdout, new RegExp(`^group\\s+ml\\s+1/1\\s+1000/-\\s+1024/4096\\s+1024/-\\s+0/0\\s+${id}$`, 'm'));
    const usageJson = json(await adminCli(['admin', 'quota', 'usage', ...admin, '--json']));
    assert.equal(usageJson[0].resources.memory_mb.remaining, 3072);

    const unassigned = await adminCli(['admin', 'quota', 'unassign', id, assignmentId, ...admin]);
    assert.equal(unassigned.stdout, `${assignmentId}\tdeleted\n`);
    const removed = await adminCli(['admin', 'quota', 'rm', id, ...admin]);
    assert.equal(removed.stdout, `${id}\tdeleted\n`);
    const gone = await adminCli(['admin', 'quota', 'get', id, ...admin]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^scaibunker: QUOTA_PROFILE_NOT_FOUND: /);
  });

  test('usage errors exit 2; API errors exit 1', async () => {
    const [noKind, twoKinds, nothing, badCap, badLifecycle, denied] = await Promise.all([
      adminCli(['admin', 'quota', 'assign', 'qp_x', ...admin]),
      adminCli(['admin', 'quota', 'assign', 'qp_x', '--user', 'a', '--group', 'b', ...admin]),
      adminCli(['admin', 'quota', 'update', 'qp_x', ...admin]),
      adminCli(['admin', 'quota', 'create', 'x', '--max-bunkers', 'lots', ...admin]),
      adminCli(['admin', 'quota', 'create', 'x', '--lifecycle', 'forever', ...admin]),
      adminCli(['admin', 'quota', 'ls', ...alice]),
    ]);
    for (const run of [noKind, twoKinds, nothing, badCap, badLifecycle]) {
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /error: /);
      assert.equal(run.stdout, '');
    }
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /^scaibunker: PERMISSION_DENIED: /);
  });
});
