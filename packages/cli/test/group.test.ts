/**
 * `scaibunker group …` for tenant admins and platform admins, as the real binary against a real
 * controller (SQLite, a fake worker): a tenant admin's group is its tenant's, a platform admin
 * makes one for a tenant with --tenant and filters with `ls --tenant`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { servedController } from '../../controller/test/helpers/fakeWorker.js';
import { tenantWithKey } from '../../controller/test/helpers/testController.js';
import { type CliRun, runCli } from './support/runCli.js';

const json = (run: CliRun): any => {
  assert.equal(run.code, 0, `exit 0 expected; stderr: ${run.stderr}`);
  return JSON.parse(run.stdout);
};

describe('scaibunker group', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let tenant: { tenantId: string; key: string };

  before(async () => {
    served = await servedController();
    tenant = await tenantWithKey(served.controller, 'group-cli', ['scaibunker:admin:tenant']);
  });
  after(async () => served?.close());

  test("a tenant admin's group is its tenant's; a platform admin names the tenant and filters by it", async () => {
    const asTenant = ['--url', served.url, '--api-key', tenant.key];
    const asPlatform = ['--url', served.url, '--api-key', served.adminKey];
    const mine = json(await runCli(['group', 'create', 'warm', ...asTenant, '--json']));
    assert.equal(mine.tenant_id, tenant.tenantId);
    const made = json(await runCli(['group', 'create', 'more', '--tenant', tenant.tenantId, ...asPlatform, '--json']));
    assert.equal(made.tenant_id, tenant.tenantId);
    const platform = json(await runCli(['group', 'create', 'edge', ...asPlatform, '--json']));
    assert.equal(platform.tenant_id, null);

    const listed = json(await runCli(['group', 'ls', ...asTenant, '--json']));
    assert.deepEqual(listed.map((g: { name: string }) => g.name).sort(), ['more', 'warm']);
    const filtered = json(await runCli(['group', 'ls', '--tenant', tenant.tenantId, ...asPlatform, '--json']));
    assert.deepEqual(filtered.map((g: { id: string }) => g.id).sort(), [made.id, mine.id].sort());
    const table = await runCli(['group', 'ls', ...asPlatform]);
    assert.match(table.stdout, /TENANT/);
    assert.match(table.stdout, new RegExp(`${platform.id}\\s+edge\\s+-`));

    const hidden = await runCli(['group', 'get', platform.id, ...asTenant]);
    assert.equal(hidden.code, 1);
    assert.match(hidden.stderr, /AVAILABILITY_GROUP_NOT_FOUND/);
    assert.match((await runCli(['group', 'get', mine.id, ...asTenant])).stdout, new RegExp(`tenant\\s+${tenant.tenantId}`));
  });
});
