/**
 * `scaibunker image create|ls|get|rm` and `scaibunker group …`: registered images (create/rm:
 * scaibunker:admin:tenant; platform and partner scope: scaibunker:admin) and availability groups
 * (platform groups and members: scaibunker:admin; a tenant's own groups: scaibunker:admin:tenant),
 * over the SDK.
 */
import type { AvailabilityGroup, CreateImageBody, ImageInfo } from '@scaibunker/sdk';
import type { Command } from 'commander';
import { Progress } from '../ui/progress.js';
import { age, renderFields, renderTable } from '../ui/table.js';
import { type ClientFlags, clientAction, clientFrom, printJson, withClientOptions } from './clientCommand.js';

function mib(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? '-' : `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** `pulling 12.0/40.3 MiB` — what a bake is doing right now. */
export function describeProgress(image: ImageInfo): string {
  const p = image.progress;
  if (!p) return image.state;
  const amount = p.total ? ` ${mib(p.done ?? 0)}/${mib(p.total)}` : p.done ? ` ${mib(p.done)}` : '';
  return `${p.phase}${amount}${p.detail ? ` (${p.detail})` : ''}`;
}

function scanSummary(image: ImageInfo): string {
  const s = image.scan;
  if (!s) return '-';
  if (s.state !== 'done' || !s.counts) return s.state;
  const c = s.counts;
  return `${c.critical} critical, ${c.high} high, ${c.medium} medium, ${c.low} low, ${c.unknown} unknown (${s.packages ?? 0} packages)`;
}

function imageRows(images: ImageInfo[]): string {
  return renderTable(
    ['ID', 'NAME', 'SCOPE', 'STATE', 'SIZE', 'SCAN', 'AGE'],
    images.map((i) => [i.id, i.name, i.scope, i.state, mib(i.size_bytes), i.scan?.state ?? '-', age(i.created_at)]),
  );
}

function imageFields(i: ImageInfo): string {
  return renderFields([
    ['id', i.id],
    ['name', i.name],
    ['scope', i.scope],
    ['state', i.state === 'baking' ? `baking: ${describeProgress(i)}` : i.state],
    ['sha256', i.sha256 ?? '-'],
    ['size', mib(i.size_bytes)],
    ['source', i.source ? (i.source.type === 'oci' ? i.source.ref : `tar ${i.source.path}`) : 'built-in'],
    ['lazy_pull', String(i.lazy_pull)],
    ...(i.failure ? ([['failure', i.failure]] as Array<[string, string]>) : []),
    ['scan', scanSummary(i)],
    ['created_at', i.created_at],
  ]);
}

function groupFields(g: AvailabilityGroup): string {
  const lines = renderFields([
    ['id', g.id],
    ['name', g.name],
    ['tenant', g.tenant_id ?? '- (platform group)'],
    ['workers', g.workers.join(', ') || '-'],
    ['created_at', g.created_at],
  ]);
  const images = g.images.length
    ? renderTable(
        ['IMAGE', 'NAME', 'WORKERS'],
        g.images.map((i) => [i.id, i.name, i.workers.map((w) => `${w.worker_id}:${w.state}`).join(' ') || '-']),
      )
    : '';
  return lines + images;
}

type CreateFlags = ClientFlags & { oci?: string; tar?: string; scope?: string; sharedWith?: string[]; lazyPull?: boolean; wait?: boolean };

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('Images bunkers start from: register (bake from OCI or tar), list, inspect, remove');

  withClientOptions(
    image
      .command('create')
      .description('Register an image and (with --wait, the default) follow its bake; prints its id')
      .argument('<name>', 'image name (lowercase letters, digits, . _ -)')
      .option(
        '--oci <ref>',
        'registry reference host[:port]/repo[:tag|@sha256:…], or oci:/dir[:tag] / docker-archive:/file.tar (platform admins)',
      )
      .option('--tar <path>', 'a rootfs tarball on the controller host, under its import directory (platform admins)')
      .option('--scope <scope>', 'tenant (default), partner or platform')
      .option('--shared-with <tenant-id...>', 'partner scope: the tenants that may use it')
      .option('--lazy-pull', 'let bunkers start on workers that must fetch the image first')
      .option('--no-wait', 'return as soon as the image is registered'),
  ).action(
    clientAction(async (name: string, o: CreateFlags) => {
      if (Boolean(o.oci) === Boolean(o.tar)) throw new Error('give exactly one of --oci <ref> and --tar <path>');
      const body: CreateImageBody = {
        name,
        source: o.oci ? { type: 'oci', ref: o.oci } : { type: 'tar', path: o.tar as string },
        ...(o.scope ? { scope: o.scope as NonNullable<CreateImageBody['scope']> } : {}),
        ...(o.sharedWith ? { shared_with: o.sharedWith } : {}),
        ...(o.lazyPull ? { lazy_pull: true } : {}),
      };
      const client = await clientFrom(o);
      let result = await client.images.create(body);
      if (o.wait !== false) {
        const progress = new Progress(process.stderr, o.json).start(`baking ${name}`);
        result = await client.images.waitUntilBaked(result.id, {
          // A new plain line per phase (not per byte count), so logs show progress without flooding.
          onProgress: (i) => progress.step(`baking ${name}: ${describeProgress(i)}`, i.progress?.phase ?? i.state),
        });
        if (result.state === 'failed') progress.fail(`${name} failed: ${result.failure}`);
        else progress.succeed(`${name} ready (${mib(result.size_bytes)})`);
      }
      if (o.json) printJson(result);
      else process.stdout.write(`${result.id}\n`);
      return result.state === 'failed' ? 1 : 0;
    }),
  );

  withClientOptions(image.command('ls').alias('list').description('List the images your tenant can use')).action(
    clientAction(async (o: ClientFlags) => {
      const images = await (await clientFrom(o)).images.list();
      if (o.json) printJson(images);
      else if (images.length) process.stdout.write(imageRows(images));
      else process.stderr.write('no images\n');
      return 0;
    }),
  );

  withClientOptions(image.command('get').description('Show one image: bake progress, failure, scan').argument('<image-id>', 'im_…')).action(
    clientAction(async (id: string, o: ClientFlags) => {
      const i = await (await clientFrom(o)).images.get(id);
      if (o.json) printJson(i);
      else process.stdout.write(imageFields(i));
      return 0;
    }),
  );

  withClientOptions(
    image.command('rm').alias('delete').description('Delete an image (refused while bunkers use it)').argument('<image-id>', 'im_…'),
  ).action(
    clientAction(async (id: string, o: ClientFlags) => {
      await (await clientFrom(o)).images.delete(id);
      if (o.json) printJson({ id, deleted: true });
      else process.stderr.write(`removed ${id}\n`);
      return 0;
    }),
  );

  const group = program
    .command('group')
    .description(
      "Availability groups: workers that keep images warm and share them (platform groups: scaibunker:admin; a tenant's own: scaibunker:admin:tenant)",
    );
  const show = (o: ClientFlags, g: AvailabilityGroup) => (o.json ? printJson(g) : process.stdout.write(groupFields(g)));

  withClientOptions(
    group
      .command('create')
      .description(
        "Create an availability group; prints its id. A tenant admin's is its tenant's (warmed on the workers its bunkers use); a platform admin's is a platform group unless --tenant",
      )
      .argument('<name>', 'group name')
      .option('--tenant <tenant-id>', "platform admins: make it this tenant's group"),
  ).action(
    clientAction(async (name: string, o: ClientFlags & { tenant?: string }) => {
      const g = await (await clientFrom(o)).availabilityGroups.create(name, o.tenant ? { tenantId: o.tenant } : {});
      if (o.json) printJson(g);
      else process.stdout.write(`${g.id}\n`);
      return 0;
    }),
  );
  withClientOptions(
    group
      .command('ls')
      .alias('list')
      .description("List availability groups (tenant admins: their tenant's)")
      .option('--tenant <tenant-id>', "platform admins: only this tenant's groups"),
  ).action(
    clientAction(async (o: ClientFlags & { tenant?: string }) => {
      const groups = await (await clientFrom(o)).availabilityGroups.list(o.tenant ? { tenantId: o.tenant } : {});
      if (o.json) printJson(groups);
      else if (groups.length)
        process.stdout.write(
          renderTable(
            ['ID', 'NAME', 'TENANT', 'WORKERS', 'IMAGES', 'AGE'],
            groups.map((g) => [g.id, g.name, g.tenant_id ?? '-', String(g.workers.length), String(g.images.length), age(g.created_at)]),
          ),
        );
      else process.stderr.write('no availability groups\n');
      return 0;
    }),
  );
  withClientOptions(
    group.command('get').description("Show a group and each member's copy of each image").argument('<group-id>', 'ag_…'),
  ).action(
    clientAction(async (id: string, o: ClientFlags) => {
      show(o, await (await clientFrom(o)).availabilityGroups.get(id));
      return 0;
    }),
  );
  withClientOptions(
    group.command('rm').alias('delete').description('Delete a group (workers keep their copies)').argument('<group-id>', 'ag_…'),
  ).action(
    clientAction(async (id: string, o: ClientFlags) => {
      await (await clientFrom(o)).availabilityGroups.delete(id);
      if (o.json) printJson({ id, deleted: true });
      else process.stderr.write(`removed ${id}\n`);
      return 0;
    }),
  );
  const member = (verb: 'add-worker' | 'remove-worker' | 'add-image' | 'remove-image', what: string, argName: string) =>
    withClientOptions(
      group
        .command(verb)
        .description(`${verb.replace('-', ' ')} ${what}`)
        .argument('<group-id>', 'ag_…')
        .argument(argName, what),
    ).action(
      clientAction(async (id: string, member: string, o: ClientFlags) => {
        const groups = (await clientFrom(o)).availabilityGroups;
        const g =
          verb === 'add-worker'
            ? await groups.addWorker(id, member)
            : verb === 'remove-worker'
              ? await groups.removeWorker(id, member)
              : verb === 'add-image'
                ? await groups.addImage(id, member)
                : await groups.removeImage(id, member);
        show(o, g);
        return 0;
      }),
    );
  member('add-worker', 'a worker (it starts fetching every image of the group)', '<worker-id>');
  member('remove-worker', 'a worker', '<worker-id>');
  member('add-image', 'an image (every worker of the group starts fetching it)', '<image-id>');
  member('remove-image', 'an image', '<image-id>');
}
