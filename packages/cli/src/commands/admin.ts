/**
 * `scaibunker admin …`: admin verbs over the SDK — tenants, API keys, workers (platform admins),
 * quota profiles (tenant admins).
 */
import { PERMISSIONS } from '@scaibunker/core';
import type { Permission, WorkerInfo } from '@scaibunker/sdk';
import { type Command, Option } from 'commander';
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
      .addHelpText('after', `\nPermissions: ${PERMISSIONS.join(', ')}`),
  ).action(
    clientAction(async (tenantId: string, o: ClientFlags & { name: string; permission: Permission[]; user?: string; group?: string[] }) => {
      const permissions = [...new Set(o.permission)];
      const identity = { ...(o.user ? { user_id: o.user } : {}), ...(o.group ? { groups: [...new Set(o.group)] } : {}) };
      const created = await (await clientFrom(o)).admin.createApiKey(tenantId, o.name, permissions, identity);
      if (o.json) {
        printJson(created);
      } else {
        process.stdout.write(`${created.key}\n`);
        process.stderr.write(`key ${created.id} for ${tenantId} (${permissions.join(', ')}); store it now, it is not shown again\n`);
      }
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
