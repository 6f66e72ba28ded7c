/**
 * `scaibunker admin quota …`: quota profiles, their assignments and usage, over the SDK.
 * Profiles need scaibunker:admin:tenant (the caller's tenant) or scaibunker:admin (any tenant);
 * `usage` needs only scaibunker:read.
 */
import { LIFECYCLES, NETWORK_PROFILE_NAMES } from '@scaibunker/core';
import type { CreateQuotaProfileBody, QuotaAssignmentKind, QuotaProfile, QuotaUsageItem, UpdateQuotaProfileBody } from '@scaibunker/sdk';
import { type Command, InvalidArgumentError } from 'commander';
import { renderFields, renderTable } from '../ui/table.js';
import {
  type ClientFlags,
  capOf,
  clientAction,
  clientFrom,
  collect,
  cpuMillicores,
  nonNegativeInt,
  printJson,
  sizeMb,
  withClientOptions,
} from './clientCommand.js';

/** A usage error found after parsing: reported like commander's own, exit 2. */
const USAGE = { exitCode: 2, code: 'scaibunker.usage' };

const cap = (v: number | null, unit = '') => (v === null ? '-' : `${v}${unit}`);
const list = (v: string[] | null) => (v === null ? 'any' : v.join(',') || 'none');

function profileRows(profiles: QuotaProfile[]): string {
  return renderTable(
    ['ID', 'TENANT', 'NAME', 'BUNKERS', 'CPU', 'MEMORY', 'DISK', 'GPUS', 'ASSIGNED TO'],
    profiles.map((p) => [
      p.id,
      p.tenant_id,
      p.name,
      cap(p.max_bunkers),
      cap(p.max_cpu_millicores, 'm'),
      cap(p.max_memory_mb, 'Mi'),
      cap(p.max_disk_mb, 'Mi'),
      cap(p.max_gpu_count),
      p.assignments.map((a) => `${a.kind}:${a.subject}`).join(',') || '-',
    ]),
  );
}

function profileFields(p: QuotaProfile): string {
  const fields: Array<[string, string]> = [
    ['id', p.id],
    ['tenant_id', p.tenant_id],
    ['name', p.name],
    ['max_bunkers', cap(p.max_bunkers)],
    ['max_cpu_millicores', cap(p.max_cpu_millicores)],
    ['max_memory_mb', cap(p.max_memory_mb)],
    ['max_disk_mb', cap(p.max_disk_mb)],
    ['max_gpu_count', cap(p.max_gpu_count)],
    ['max_snapshot_bytes', cap(p.max_snapshot_bytes)],
    ['allowed_lifecycles', list(p.allowed_lifecycles)],
    ['allowed_images', list(p.allowed_images)],
    ['allowed_network_profiles', list(p.allowed_network_profiles)],
    ['created_at', p.created_at],
    ['updated_at', p.updated_at],
  ];
  for (const a of p.assignments) fields.push(['assignment', `${a.id}  ${a.kind}  ${a.subject}`]);
  return renderFields(fields);
}

function usageRows(items: QuotaUsageItem[]): string {
  const cell = (r: { current: number; cap: number | null }) => `${r.current}/${r.cap ?? '-'}`;
  return renderTable(
    ['KIND', 'BUCKET', 'BUNKERS', 'CPU', 'MEMORY', 'DISK', 'GPUS', 'PROFILES'],
    items.map((i) => [
      i.bucket.kind,
      i.bucket.id,
      cell(i.resources.bunkers),
      cell(i.resources.cpu_millicores),
      cell(i.resources.memory_mb),
      cell(i.resources.disk_mb),
      cell(i.resources.gpu_count),
      i.profile_ids.join(','),
    ]),
  );
}

/** An allow-list option: repeatable values from `choices`, or `any` (no restriction; wins over values). */
function allowList(choices: readonly string[] | null) {
  return (value: string, previous: string[] | 'any' = []): string[] | 'any' => {
    if (value === 'any' || previous === 'any') return 'any';
    if (choices && !choices.includes(value)) throw new InvalidArgumentError(`expected one of ${choices.join(', ')} (or any)`);
    return collect(value, previous);
  };
}

/** The cap and allow-list options `create` and `update` share. */
function withLimitOptions(cmd: Command): Command {
  return cmd
    .option('--max-bunkers <n>', 'concurrent bunkers (none: no cap)', capOf(nonNegativeInt))
    .option('--max-cpu <cpu>', 'CPU: cores (4) or millicores (4000m); none: no cap', capOf(cpuMillicores))
    .option('--max-memory <size>', 'memory in MiB or with a unit (16g); none: no cap', capOf(sizeMb))
    .option('--max-disk <size>', 'disk in MiB or with a unit (100g); none: no cap', capOf(sizeMb))
    .option('--max-gpus <n>', 'GPUs (none: no cap)', capOf(nonNegativeInt))
    .option(
      '--max-snapshot-size <size>',
      "the tenant's stored snapshots in MiB or with a unit (50g); none: no cap",
      capOf((v) => sizeMb(v) * 1048576),
    )
    .option('--lifecycle <mode>', `allowed lifecycle, repeatable: ${LIFECYCLES.join(', ')} (any: no restriction)`, allowList(LIFECYCLES))
    .option('--image <name>', 'allowed image name, repeatable (any: no restriction)', allowList(null))
    .option(
      '--network-profile <profile>',
      `allowed network profile, repeatable: ${NETWORK_PROFILE_NAMES.join(', ')} (any: no restriction)`,
      allowList(NETWORK_PROFILE_NAMES),
    );
}

type Cap = number | 'none';
type AllowList = string[] | 'any';
type LimitFlags = {
  maxBunkers?: Cap;
  maxCpu?: Cap;
  maxMemory?: Cap;
  maxDisk?: Cap;
  maxGpus?: Cap;
  maxSnapshotSize?: Cap;
  lifecycle?: AllowList;
  image?: AllowList;
  networkProfile?: AllowList;
};

/** The API fields for the options given: `none` and `any` become null (no cap, no restriction). */
function limits(o: LimitFlags): UpdateQuotaProfileBody {
  const fields: Array<[string, Cap | AllowList | undefined]> = [
    ['max_bunkers', o.maxBunkers],
    ['max_cpu_millicores', o.maxCpu],
    ['max_memory_mb', o.maxMemory],
    ['max_disk_mb', o.maxDisk],
    ['max_gpu_count', o.maxGpus],
    ['max_snapshot_bytes', o.maxSnapshotSize],
    ['allowed_lifecycles', o.lifecycle],
    ['allowed_images', o.image],
    ['allowed_network_profiles', o.networkProfile],
  ];
  const body: Record<string, unknown> = {};
  for (const [field, v] of fields) if (v !== undefined) body[field] = v === 'none' || v === 'any' ? null : v;
  return body as UpdateQuotaProfileBody;
}

export function registerQuotaCommands(admin: Command): void {
  const quota = admin
    .command('quota')
    .description('Quota profiles, their assignments and usage (needs scaibunker:admin:tenant; usage: scaibunker:read)');

  withLimitOptions(
    withClientOptions(
      quota
        .command('create')
        .description('Create a quota profile; prints its id')
        .argument('<name>', 'profile name, unique in the tenant')
        .option('--tenant <tenant-id>', 'platform admins: the tenant it belongs to (default: yours)'),
    ),
  ).action(
    clientAction(async (name: string, o: ClientFlags & LimitFlags & { tenant?: string }) => {
      const body: CreateQuotaProfileBody = { name, ...limits(o), ...(o.tenant ? { tenant_id: o.tenant } : {}) };
      const created = await (await clientFrom(o)).quotas.create(body);
      if (o.json) printJson(created);
      else process.stdout.write(`${created.id}\n`);
      return 0;
    }),
  );

  withClientOptions(
    quota
      .command('ls')
      .alias('list')
      .description("List quota profiles: your tenant's (platform admins: every tenant's)")
      .option('--tenant <tenant-id>', "platform admins: only this tenant's"),
  ).action(
    clientAction(async (o: ClientFlags & { tenant?: string }) => {
      const profiles = await (await clientFrom(o)).quotas.list(o.tenant ? { tenantId: o.tenant } : {});
      if (o.json) printJson(profiles);
      else if (profiles.length) process.stdout.write(profileRows(profiles));
      else process.stderr.write('no quota profiles\n');
      return 0;
    }),
  );

  withClientOptions(quota.command('get').description('Show one quota profile and its assignments').argument('<profile-id>', 'qp_…')).action(
    clientAction(async (id: string, o: ClientFlags) => {
      const p = await (await clientFrom(o)).quotas.get(id);
      if (o.json) printJson(p);
      else process.stdout.write(profileFields(p));
      return 0;
    }),
  );

  withLimitOptions(
    withClientOptions(
      quota
        .command('update')
        .description('Change a quota profile (only the options given); later creates only')
        .argument('<profile-id>', 'qp_…')
        .option('--name <name>', 'new name'),
    ),
  ).action(async (id: string, o: ClientFlags & LimitFlags & { name?: string }, cmd: Command) => {
    const patch = { ...limits(o), ...(o.name ? { name: o.name } : {}) };
    if (Object.keys(patch).length === 0) cmd.error('error: nothing to change: give at least one option', USAGE);
    await clientAction(async () => {
      const p = await (await clientFrom(o)).quotas.update(id, patch);
      if (o.json) printJson(p);
      else process.stdout.write(profileFields(p));
      return 0;
    })();
  });

  withClientOptions(
    quota.command('rm').alias('delete').description('Delete quota profiles and their assignments').argument('<profile-ids...>', 'qp_…'),
  ).action(
    clientAction(async (ids: string[], o: ClientFlags) => {
      const client = await clientFrom(o);
      for (const id of ids) {
        await client.quotas.delete(id);
        if (!o.json) process.stdout.write(`${id}\tdeleted\n`);
      }
      if (o.json) printJson(ids.map((id) => ({ id, deleted: true })));
      return 0;
    }),
  );

  withClientOptions(
    quota
      .command('assign')
      .description('Assign a profile to a user, a group (one shared bucket) or each member of a group; prints the assignment id')
      .argument('<profile-id>', 'qp_…')
      .option('--user <user-id>', 'a user: its own bucket')
      .option('--group <group>', 'a group: one bucket all its members share')
      .option('--group-per-user <group>', 'a group: a bucket for each of its members'),
  ).action(async (id: string, o: ClientFlags & { user?: string; group?: string; groupPerUser?: string }, cmd: Command) => {
    const given: Array<[QuotaAssignmentKind, string | undefined]> = [
      ['user', o.user],
      ['group', o.group],
      ['group_per_user', o.groupPerUser],
    ];
    const chosen = given.filter(([, v]) => v !== undefined) as Array<[QuotaAssignmentKind, string]>;
    if (chosen.length !== 1) cmd.error('error: give exactly one of --user, --group, --group-per-user', USAGE);
    const [kind, subject] = chosen[0] as [QuotaAssignmentKind, string];
    await clientAction(async () => {
      const a = await (await clientFrom(o)).quotas.assign(id, kind, subject);
      if (o.json) printJson(a);
      else process.stdout.write(`${a.id}\n`);
      return 0;
    })();
  });

  withClientOptions(
    quota
      .command('unassign')
      .description('Remove an assignment (running bunkers keep their charge until they end)')
      .argument('<profile-id>', 'qp_…')
      .argument('<assignment-id>', 'qa_…'),
  ).action(
    clientAction(async (id: string, assignmentId: string, o: ClientFlags) => {
      await (await clientFrom(o)).quotas.unassign(id, assignmentId);
      if (o.json) printJson({ id: assignmentId, deleted: true });
      else process.stdout.write(`${assignmentId}\tdeleted\n`);
      return 0;
    }),
  );

  withClientOptions(
    quota
      .command('usage')
      .description('Current/cap per bucket: your own buckets, or every bucket of the tenant for its admins')
      .option('--tenant <tenant-id>', "platform admins: another tenant's buckets"),
  ).action(
    clientAction(async (o: ClientFlags & { tenant?: string }) => {
      const items = await (await clientFrom(o)).quotas.usage(o.tenant ? { tenantId: o.tenant } : {});
      if (o.json) printJson(items);
      else if (items.length) process.stdout.write(usageRows(items));
      else process.stderr.write('no quota buckets apply\n');
      return 0;
    }),
  );
}
