/**
 * `scaibunker bridge create|ls|get|rm`: the tenant's transit bridges, over the SDK. Create and rm
 * need scaibunker:admin:tenant; ls and get scaibunker:read.
 */
import type { Bridge } from '@scaibunker/sdk';
import type { Command } from 'commander';
import { age, renderFields, renderTable } from '../ui/table.js';
import { type ClientFlags, clientAction, clientFrom, printJson, withClientOptions } from './clientCommand.js';

function bridgeRows(bridges: Bridge[]): string {
  return renderTable(
    ['ID', 'NAME', 'STATE', 'WORKER', 'AGE'],
    bridges.map((b) => [b.id, b.name, b.state, b.worker_id, age(b.created_at)]),
  );
}

function bridgeFields(b: Bridge): string {
  return renderFields([
    ['id', b.id],
    ['name', b.name],
    ['state', b.state],
    ['tenant_id', b.tenant_id],
    ['worker_id', b.worker_id],
    ['created_at', b.created_at],
  ]);
}

export function registerBridgeCommands(program: Command): void {
  const bridge = program
    .command('bridge')
    .description('Transit bridges: layer-2 segments for transit bunkers (create/rm: scaibunker:admin:tenant)');

  withClientOptions(
    bridge
      .command('create')
      .description('Make a transit bridge in your tenant; prints its id')
      .argument('<name>', 'bridge name, unique in the tenant')
      .option('--worker <worker-id>', 'the worker to make it on (default: the first online worker that can)'),
  ).action(
    clientAction(async (name: string, o: ClientFlags & { worker?: string }) => {
      const created = await (await clientFrom(o)).bridges.create(name, o.worker ? { workerId: o.worker } : {});
      if (o.json) printJson(created);
      else process.stdout.write(`${created.id}\n`);
      return 0;
    }),
  );

  withClientOptions(bridge.command('ls').alias('list').description("List your tenant's bridges")).action(
    clientAction(async (o: ClientFlags) => {
      const bridges = await (await clientFrom(o)).bridges.list();
      if (o.json) printJson(bridges);
      else if (bridges.length) process.stdout.write(bridgeRows(bridges));
      else process.stderr.write('no bridges\n');
      return 0;
    }),
  );

  withClientOptions(bridge.command('get').description('Show one bridge').argument('<bridge-id>', 'br_…')).action(
    clientAction(async (id: string, o: ClientFlags) => {
      const b = await (await clientFrom(o)).bridges.get(id);
      if (o.json) printJson(b);
      else process.stdout.write(bridgeFields(b));
      return 0;
    }),
  );

  withClientOptions(
    bridge
      .command('rm')
      .alias('delete')
      .description('Remove a bridge (refused while a bunker is attached)')
      .argument('<bridge-id>', 'br_…'),
  ).action(
    clientAction(async (id: string, o: ClientFlags) => {
      await (await clientFrom(o)).bridges.delete(id);
      if (o.json) printJson({ id, deleted: true });
      else process.stderr.write(`removed ${id}\n`);
      return 0;
    }),
  );
}
