/**
 * `scaibunker snapshot create|ls|get|rm`: snapshots of bunkers' files, over the SDK. Restoring
 * one is `bunker create --from-snapshot`; forking a bunker is `bunker fork`.
 */
import { Bunker, type Snapshot } from '@scaibunker/sdk';
import type { Command } from 'commander';
import { Progress } from '../ui/progress.js';
import { age, renderFields, renderTable } from '../ui/table.js';
import { type ClientFlags, clientAction, clientFrom, positiveInt, printJson, withClientOptions } from './clientCommand.js';

const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;

function snapshotRows(items: Snapshot[]): string {
  return renderTable(
    ['ID', 'BUNKER', 'NAME', 'SOURCE', 'STATE', 'SIZE', 'AGE'],
    items.map((s) => [s.id, s.bunker_id, s.name ?? '', s.source, s.state, s.state === 'ready' ? mb(s.size_bytes) : '', age(s.created_at)]),
  );
}

function snapshotFields(s: Snapshot): string {
  const fields: Array<[string, string | number | null]> = [
    ['id', s.id],
    ['bunker_id', s.bunker_id],
    ['name', s.name],
    ['source', s.source],
    ['state', s.state],
    ['image', s.image],
    ['isolation', s.isolation],
    ['disk_mb', s.disk_mb],
    ['size_bytes', s.size_bytes],
    ['sha256', s.sha256],
    ['error', s.error],
    ['created_by', s.created_by],
    ['created_at', s.created_at],
    ['ready_at', s.ready_at],
    ['expires_at', s.expires_at],
  ];
  return renderFields(fields.map(([k, v]) => [k, v === null ? '-' : String(v)]));
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program
    .command('snapshot')
    .description("Snapshots of bunkers' files: take, list, inspect, remove (restore: bunker create --from-snapshot)");

  withClientOptions(
    snapshot
      .command('create')
      .description("Snapshot a running bunker's files and wait until the snapshot is ready; prints its id")
      .argument('<bunker-id>', 'bk_…')
      .option('--name <name>', 'a name to find it by')
      .option('--expires-in <seconds>', 'delete it this long after it was taken (60 s to 365 days)', positiveInt)
      .option('--no-wait', 'answer as soon as it is being written'),
  ).action(
    clientAction(async (id: string, o: ClientFlags & { name?: string; expiresIn?: number; wait: boolean }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      const progress = new Progress(process.stderr, o.json).start(`snapshotting ${id}`);
      let s: Snapshot;
      try {
        s = await b.snapshot({
          ...(o.name ? { name: o.name } : {}),
          ...(o.expiresIn !== undefined ? { expiresInS: o.expiresIn } : {}),
          wait: o.wait,
          onProgress: (snap) => progress.step(`snapshotting ${id}: ${snap.id} ${snap.state}`, snap.state),
        });
      } catch (err) {
        progress.fail();
        throw err;
      }
      progress.succeed(`snapshot ${s.id} ${s.state}${s.state === 'ready' ? ` (${mb(s.size_bytes)})` : ''}`);
      if (o.json) printJson(s);
      else process.stdout.write(`${s.id}\n`);
      return 0;
    }),
  );

  withClientOptions(
    snapshot
      .command('ls')
      .alias('list')
      .description("List your tenant's snapshots, newest first")
      .option('--bunker <bunker-id>', "only this bunker's")
      .option('--limit <n>', 'page size (1-200)', positiveInt)
      .option('--all', 'follow the cursor through every page'),
  ).action(
    clientAction(async (o: ClientFlags & { bunker?: string; limit?: number; all?: boolean }) => {
      const pages = (await clientFrom(o)).snapshots.list({
        ...(o.bunker ? { bunkerId: o.bunker } : {}),
        ...(o.limit ? { limit: o.limit } : {}),
      });
      const items = o.all ? await pages.toArray() : (await pages.page()).items;
      if (o.json) printJson(items);
      else if (items.length) process.stdout.write(snapshotRows(items));
      else process.stderr.write('no snapshots\n');
      return 0;
    }),
  );

  withClientOptions(snapshot.command('get').alias('inspect').description('Show one snapshot').argument('<snapshot-id>', 'sn_…')).action(
    clientAction(async (id: string, o: ClientFlags) => {
      const s = await (await clientFrom(o)).snapshots.get(id);
      if (o.json) printJson(s);
      else process.stdout.write(snapshotFields(s));
      return 0;
    }),
  );

  withClientOptions(
    snapshot
      .command('rm')
      .alias('delete')
      .description('Delete snapshots and their archives (refused while one is written or a bunker needs it)')
      .argument('<snapshot-ids...>', 'sn_…'),
  ).action(
    clientAction(async (ids: string[], o: ClientFlags) => {
      const client = await clientFrom(o);
      for (const id of ids) {
        await client.snapshots.delete(id);
        if (!o.json) process.stderr.write(`removed ${id}\n`);
      }
      if (o.json) printJson(ids.map((id) => ({ id, deleted: true })));
      return 0;
    }),
  );
}
