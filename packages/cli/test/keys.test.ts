/**
 * `scaibunker admin key ls|rm|create --expires-in`, run as real processes against a real
 * controller (SQLite, a fake worker), and the SDK's listApiKeys / revokeApiKey.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ScaiBunkerClient } from '@scaibunker/sdk';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const ADMIN_COMMANDS = join(REPO, 'packages/cli/src/commands/admin.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function adminCli(args: string[]): Promise<Run> {
  const env: Record<string, string | undefined> = { ...process.env, SCAIBUNKER_URL: undefined, SCAIBUNKER_API_KEY: undefined };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(
    process.execPath,
    [
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
    ],
    { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] },
  );
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

const json = (run: Run): any => {
  assert.equal(run.code, 0, `exit 0 expected; stderr: ${run.stderr}`);
  return JSON.parse(run.stdout);
};

describe('scaibunker admin key', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let platform: string[];
  let tenantId: string;

  before(async () => {
    served = await servedController();
    platform = ['--url', served.url, '--api-key', served.adminKey];
    tenantId = (await adminCli(['admin', 'tenant', 'create', 'acme', ...platform])).stdout.trim();
  });
  after(async () => served?.close());

  test('create --expires-in, ls (table and --json, no secret), rm; the revoked key is refused', async () => {
    const created = json(
      await adminCli([
        'admin',
        'key',
        'create',
        tenantId,
        '--name',
        'ci',
        '--permission',
        'scaibunker:read',
        '--expires-in',
        '30d',
        '--json',
        ...platform,
      ]),
    );
    const days = (Date.parse(created.expires_at) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, `expires in ${days} days`);
    const bad = await adminCli([
      'admin',
      'key',
      'create',
      tenantId,
      '--name',
      'x',
      '--permission',
      'scaibunker:read',
      '--expires-in',
      'soon',
      ...platform,
    ]);
    assert.equal(bad.code, 2, bad.stderr);

    const table = await adminCli(['admin', 'key', 'ls', tenantId, ...platform]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /ID\s+NAME\s+PERMISSIONS/);
    assert.match(table.stdout, new RegExp(created.id));
    assert.ok(!table.stdout.includes(created.key));
    const listed = json(await adminCli(['admin', 'key', 'ls', tenantId, '--json', ...platform]));
    assert.equal(listed.length, 1);
    assert.equal(listed[0].expires_at, created.expires_at);
    assert.ok(!JSON.stringify(listed).includes(created.key));

    const client = new ScaiBunkerClient({ baseUrl: served.url, apiKey: created.key });
    assert.deepEqual(await client.transport.json('get', '/v1/modules/scaibunker/bunkers', {}).then(() => 'ok'), 'ok');
    const rm = await adminCli(['admin', 'key', 'rm', tenantId, created.id, ...platform]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, new RegExp(`^${created.id}\\trevoked `));
    await assert.rejects(
      client.transport.json('get', '/v1/modules/scaibunker/bunkers', {}),
      (err: { code?: string }) => err.code === 'UNAUTHENTICATED',
    );
    const missing = await adminCli(['admin', 'key', 'rm', tenantId, 'ak_00000000000000000000', ...platform]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /API_KEY_NOT_FOUND/);
  });

  test('SDK: listApiKeys and revokeApiKey', async () => {
    const admin = new ScaiBunkerClient({ baseUrl: served.url, apiKey: served.adminKey });
    const k = await admin.admin.createApiKey(tenantId, 'sdk', ['scaibunker:read'], {
      expires_at: new Date(Date.now() + 3_600_000).toISOString(),
    });
    const keys = await admin.admin.listApiKeys(tenantId);
    const listed = keys.find((x) => x.id === k.id);
    assert.equal(listed?.name, 'sdk');
    assert.equal(listed?.expires_at, k.expires_at);
    assert.equal(listed?.revoked_at, null);
    const revoked = await admin.admin.revokeApiKey(tenantId, k.id);
    assert.ok(revoked.revoked_at);
    await assert.rejects(
      admin.admin.revokeApiKey(tenantId, 'ak_00000000000000000000'),
      (err: { code?: string }) => err.code === 'API_KEY_NOT_FOUND',
    );
  });
});
