/**
 * `scaibunker admin …`: admin verbs over the SDK — tenants, creating API keys, workers (platform
 * admins), listing and revoking API keys and quota profiles (tenant admins: their own tenant).
 */
import { PERMISSIONS } from '@scaibunker/core';
import type { ApiKeyInfo, Permission, WorkerInfo } from '@scaibunker/sdk';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { renderTable } from '../ui/table.js';
import {
  type ClientFlags,
  clientAction,
  clientFrom,
  collect,
  exitTwoOnUsageErrors,
  printJson,
  withClientOptions,
} from './clientCommand.js';
import { registerQuotaCommands } from './quota.js';

function workerRows(workers: WorkerInfo[]): string {
  return renderTable(
    ['ID', 'NAME', 'STATE', 'BUNKERS', 'CPU', 'MEMORY', 'DISK', 'ISOLATIONS', 'LAST HEARTBEAT'],
    workers.map((w) => [
      w.id,
      w.name,
      w.state,
      String(w.bunker_count),
      `${w.allocated.cpu_millicores}/${w.capacity.cpu_millicores}m`,
      `${w.allocated.memory_mb}/${w.capacity.memory_mb}Mi`,
      `${w.allocated.disk_mb}/${w.capacity.disk_mb}Mi`,
      w.isolations.join(','),
      w.last_heartbeat_at ?? '-',
    ]),
  );
}

function keyRows(keys: ApiKeyInfo[]): string {
  return renderTable(
    ['ID', 'NAME', 'PERMISSIONS', 'USER', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
    keys.map((k) => [
      k.id,
      k.name,
      k.permissions.join(','),
      k.user_id,
      k.created_at,
      k.last_used_at ?? '-',
      k.expires_at ?? '-',
      k.revoked_at ?? '-',
    ]),
  );
}

const DURATION_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--expires-in 30d`: a duration (s, m, h, d) in milliseconds. */
function expiresIn(v: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(v.trim());
  if (!m?.[1] || !m[2] || Number(m[1]) === 0) throw new InvalidArgumentError(`not a duration (e.g. 90s, 30m, 12h, 30d): ${v}`);
  return Number(m[1]) * (DURATION_UNITS[m[2]] as number);
}

export function registerAdminCommands(program: Command): void {
  const admin = exitTwoOnUsageErrors(
    program
      .command('admin')
      .description('Administration: tenants, API keys, workers (need scaibunker:admin); quota profiles (scaibunker:admin:tenant)'),
  );

  const tenant = admin.command('tenant').description('Tenants');
  withClientOptions(tenant.command('create').description('Create a tenant; prints its id').argument('<name>', 'tenant name')).action(
    clientAction(async (name: string, o: ClientFlags) => {
      const created = await (await clientFrom(o)).admin.createTenant(name);
      if (o.json) printJson(created);
      else process.stdout.write(`${created.id}\n`);
      return 0;
    }),
  );

  const key = admin.command('key').description('API keys');
  withClientOptions(
    key
      .command('create')
      .description('Create an API key for a tenant; prints the key, which is shown only once')
      .argument('<tenant-id>', 'tenant id (tn_…)')
      .requiredOption('--name <name>', 'a name for the key')
      .addOption(new Option('--permission <permission...>', 'permission to grant, repeatable').choices(PERMISSIONS).makeOptionMandatory())
      .option('--user <user-id>', 'the user the key acts as, for quotas (default: key:<key id>)')
      .option('--group <group>', "a group of the key's user, for quotas; repeatable", collect)
      .option('--expires-in <duration>', 'the key stops working after this long (e.g. 12h, 30d; default never)', expiresIn)
      .addHelpText('after', `\nPermissions: ${PERMISSIONS.join(', ')}`),
  ).action(
    clientAction(
      async (
        tenantId: string,
        o: ClientFlags & { name: string; permission: Permission[]; user?: string; group?: string[]; expiresIn?: number },
      ) => {
        const permissions = [...new Set(o.permission)];
        const identity = {
          ...(o.user ? { user_id: o.user } : {}),
          ...(o.group ? { groups: [...new Set(o.group)] } : {}),
          ...(o.expiresIn ? { expires_at: new Date(Date.now() + o.expiresIn).toISOString() } : {}),
        };
        const created = await (await clientFrom(o)).admin.createApiKey(tenantId, o.name, permissions, identity);
        if (o.json) {
          printJson(created);
        } else {
          process.stdout.write(`${created.key}\n`);
          const expiry = created.expires_at ? `, expires ${created.expires_at}` : '';
          process.stderr.write(
            `key ${created.id} for ${tenantId} (${permissions.join(', ')}${expiry}); store it now, it is not shown again\n`,
          );
        }
        return 0;
      },
    ),
  );
  withClientOptions(
    key
      .command('ls')
      .alias('list')
      .description("List a tenant's API keys, revoked and expired ones too (never their secrets)")
      .argument('<tenant-id>', 'tenant id (tn_…)'),
  ).action(
    clientAction(async (tenantId: string, o: ClientFlags) => {
      const keys = await (await clientFrom(o)).admin.listApiKeys(tenantId);
      if (o.json) printJson(keys);
      else if (keys.length) process.stdout.write(keyRows(keys));
      else process.stderr.write('no keys\n');
      return 0;
    }),
  );
  withClientOptions(
    key
      .command('rm')
      .alias('revoke')
      .description('Revoke an API key: every controller refuses it within a second')
      .argument('<tenant-id>', 'tenant id (tn_…)')
      .argument('<key-id>', 'key id (ak_…)'),
  ).action(
    clientAction(async (tenantId: string, keyId: string, o: ClientFlags) => {
      const revoked = await (await clientFrom(o)).admin.revokeApiKey(tenantId, keyId);
      if (o.json) printJson(revoked);
      else process.stdout.write(`${revoked.id}\trevoked ${revoked.revoked_at}\n`);
      return 0;
    }),
  );

  registerQuotaCommands(admin);

  const worker = admin.command('worker').description('Worker hosts');
  withClientOptions(worker.command('ls').alias('list').description('List workers with capacity and allocation')).action(
    clientAction(async (o: ClientFlags) => {
      const workers = await (await clientFrom(o)).workers.list();
      if (o.json) printJson(workers);
      else if (workers.length) process.stdout.write(workerRows(workers));
      else process.stderr.write('no workers\n');
      return 0;
    }),
  );
  for (const [verb, description] of [
    ['drain', 'Stop placing new bunkers on a worker (running ones stay)'],
    ['resume', 'Place bunkers on a drained worker again'],
  ] as const) {
    withClientOptions(worker.command(verb).description(description).argument('<worker-id>', 'worker id (wk_…)')).action(
      clientAction(async (id: string, o: ClientFlags) => {
        const workers = (await clientFrom(o)).workers;
        const w = verb === 'drain' ? await workers.drain(id) : await workers.resume(id);
        if (o.json) printJson(w);
        else process.stdout.write(`${w.id}\t${w.state}\n`);
        return 0;
      }),
    );
  }
}
