/**
 * `scaibunker bunker …`: the client verbs over the SDK — create, ls, get, exec, cp, rm, pause, resume, fork, logs; ps, attach, kill, shell and watch are in bunkerProcesses.ts.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as delayFor } from 'node:timers/promises';
import {
  allowlistEntryError,
  BANDWIDTH_MBIT_MAX,
  BANDWIDTH_MBIT_MIN,
  ISOLATIONS,
  idPattern,
  macAddressError,
  NETWORK_PROFILES,
} from '@scaibunker/core';
import {
  Bunker,
  type BunkerInfo,
  type BunkerState,
  type CreateBunkerOptions,
  type ExecLog,
  type ExecResult,
  type ScaiBunkerClient,
} from '@scaibunker/sdk';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { Progress } from '../ui/progress.js';
import { Spinner } from '../ui/spinner.js';
import { age, renderFields, renderTable } from '../ui/table.js';
import { registerPortCommands } from './bunkerPorts.js';
import { registerProcessCommands } from './bunkerProcesses.js';
import {
  type ClientFlags,
  clientAction,
  clientFrom,
  cpuMillicores,
  exitCodeOf,
  exitTwoOnUsageErrors,
  keyValue,
  nonNegativeInt,
  positiveInt,
  positiveNumber,
  printJson,
  sizeMb,
  withClientOptions,
  writeStdout,
} from './clientCommand.js';

const BUNKER_STATES: BunkerState[] = ['pending', 'provisioning', 'running', 'paused', 'snapshotting', 'terminated', 'failed'];
const LIFECYCLES = ['ephemeral', 'session', 'persistent'] as const;
const REMOTE_PATH = /^(bk_[0-9a-z]+):(.*)$/;

function bunkerRows(bunkers: BunkerInfo[]): string {
  return renderTable(
    ['ID', 'IMAGE', 'STATE', 'LIFECYCLE', 'ISOLATION', 'CPU', 'MEMORY', 'DISK', 'AGE', 'LABELS'],
    bunkers.map((b) => [
      b.id,
      b.image,
      b.state,
      b.lifecycle,
      b.isolation,
      `${b.cpu_millicores}m`,
      `${b.memory_mb}Mi`,
      `${b.disk_mb}Mi`,
      age(b.created_at),
      Object.entries(b.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ]),
  );
}

/** `--allow <host>`, repeatable: checked here with the API's own rule, so a typo fails before any request. */
function allowHost(value: string, previous: string[] = []): string[] {
  const reason = allowlistEntryError(value);
  if (reason) throw new InvalidArgumentError(`${JSON.stringify(value)} ${reason}`);
  return [...previous, value];
}

type TransitInterfaceOption = NonNullable<CreateBunkerOptions['interfaces']>[number];

/** `--interface br_…[,mac=aa:bb:…][,spoof-guard=off]` → one transit interface. */
function transitInterface(value: string, previous: TransitInterfaceOption[] = []): TransitInterfaceOption[] {
  const [bridgeId, ...opts] = value.split(',');
  if (!bridgeId || !new RegExp(idPattern('br')).test(bridgeId))
    throw new InvalidArgumentError(`expected a bridge id (br_…), got ${JSON.stringify(bridgeId)}`);
  const entry: TransitInterfaceOption = { bridge_id: bridgeId };
  for (const opt of opts) {
    const [k, v = ''] = opt.split('=');
    if (k === 'mac') {
      const reason = macAddressError(v);
      if (reason) throw new InvalidArgumentError(`mac ${JSON.stringify(v)} ${reason}`);
      entry.mac = v;
    } else if (k === 'spoof-guard' && ['on', 'off'].includes(v)) entry.spoof_guard = v === 'on';
    else throw new InvalidArgumentError(`unknown interface option ${JSON.stringify(opt)} (mac=…, spoof-guard=on|off)`);
  }
  return [...previous, entry];
}

function bandwidthMbit(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < BANDWIDTH_MBIT_MIN || n > BANDWIDTH_MBIT_MAX)
    throw new InvalidArgumentError(`expected a whole number of Mbit/s in ${BANDWIDTH_MBIT_MIN}..${BANDWIDTH_MBIT_MAX}`);
  return n;
}

function bunkerFields(b: BunkerInfo): string {
  const fields: Array<[string, string]> = Object.entries(b).map(([k, v]) => [
    k,
    v === null
      ? '-'
      : Array.isArray(v)
        ? v.join(',') || '-'
        : typeof v === 'object'
          ? Object.entries(v as Record<string, string>)
              .map(([mk, mv]) => `${mk}=${mv}`)
              .join(',') || '-'
          : String(v),
  ]);
  return renderFields(fields);
}

function logRows(logs: ExecLog[]): string {
  return renderTable(
    ['EXEC ID', 'STARTED', 'EXIT', 'DURATION', 'CALLER', 'COMMAND'],
    logs.map((l) => [
      l.id,
      l.started_at,
      l.timed_out ? 'timeout' : l.exit_code !== null ? String(l.exit_code) : (l.signal ?? (l.finished_at ? '-' : 'running')),
      l.duration_ms === null ? '-' : `${l.duration_ms}ms`,
      l.caller,
      l.command.length > 80 ? `${l.command.slice(0, 77)}...` : l.command.replace(/\n/g, '\\n'),
    ]),
  );
}

/** Counts bytes flowing through, for progress. */
function byteCounter(onBytes: (total: number) => void): Transform {
  let total = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      total += chunk.length;
      onBytes(total);
      done(null, chunk);
    },
  });
}

function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

interface CopyEndpoint {
  bunkerId?: string;
  path: string;
}

function parseEndpoint(spec: string): CopyEndpoint {
  const m = REMOTE_PATH.exec(spec);
  return m ? { bunkerId: m[1]!, path: m[2]! } : { path: spec };
}

function describeEndpoint(e: CopyEndpoint): string {
  return e.bunkerId ? `${e.bunkerId}:${e.path}` : e.path;
}

interface CopyOptions extends ClientFlags {
  parents?: boolean;
  mode?: string;
}

async function copy(
  cmd: Command,
  client: ScaiBunkerClient,
  src: CopyEndpoint,
  dst: CopyEndpoint,
  opts: CopyOptions,
): Promise<{ bytes: number; destination: string }> {
  if (!src.bunkerId && !dst.bunkerId)
    cmd.error('error: one side of cp must be a bunker path (ID:/path)', { exitCode: 2, code: 'scaibunker.usage' });
  for (const e of [src, dst]) {
    if (e.bunkerId && !e.path.startsWith('/'))
      cmd.error(`error: the bunker path in ${describeEndpoint(e)} must be absolute`, { exitCode: 2, code: 'scaibunker.usage' });
  }
  const verb = dst.bunkerId ? 'uploading' : 'downloading';
  const spinner = new Spinner(process.stderr, process.stderr.isTTY === true && dst.path !== '-');
  let bytes = 0;
  const counter = byteCounter((total) => {
    bytes = total;
    spinner.update(`${verb} ${describeEndpoint(src)} → ${describeEndpoint(dst)}  ${humanBytes(total)}`);
  });
  spinner.start(`${verb} ${describeEndpoint(src)} → ${describeEndpoint(dst)}`);
  try {
    if (dst.bunkerId) {
      // Upload (from a local file, stdin, or another bunker): streamed, never buffered whole.
      let destination = dst.path;
      let mode = opts.mode;
      let source: NodeJS.ReadableStream;
      if (src.bunkerId) {
        if (destination.endsWith('/')) destination += basename(src.path);
        source = (await Bunker.connect(src.bunkerId, client)).files.readStream(src.path);
      } else if (src.path === '-') {
        if (destination.endsWith('/'))
          cmd.error('error: copying from stdin needs a destination file name', { exitCode: 2, code: 'scaibunker.usage' });
        source = process.stdin;
      } else {
        const st = await stat(src.path);
        if (st.isDirectory()) throw Object.assign(new Error(`${src.path} is a directory; cp copies single files`), { code: 'EISDIR' });
        if (destination.endsWith('/')) destination += basename(src.path);
        mode ??= (st.mode & 0o777).toString(8).padStart(3, '0');
        source = createReadStream(src.path);
      }
      const target = await Bunker.connect(dst.bunkerId, client);
      const counted = source.pipe(counter);
      source.on('error', (err) => counted.destroy(err));
      const written = await target.files.write(destination, counted, {
        ...(mode ? { mode } : {}),
        ...(opts.parents ? { parents: true } : {}),
      });
      bytes = written.bytes;
      spinner.succeed(`copied ${humanBytes(bytes)} to ${dst.bunkerId}:${destination}`);
      return { bytes, destination: `${dst.bunkerId}:${destination}` };
    }
    // Download to a local file, a directory, or stdout.
    const from = await Bunker.connect(src.bunkerId!, client);
    let destination = dst.path;
    if (destination !== '-') {
      const st = await stat(destination).catch(() => undefined);
      if (st?.isDirectory() || destination.endsWith('/')) destination = join(destination, basename(src.path));
    }
    const sink = destination === '-' ? process.stdout : createWriteStream(destination);
    await pipeline(from.files.readStream(src.path), counter, sink, { end: destination !== '-' });
    spinner.succeed(`copied ${humanBytes(bytes)} to ${destination}`);
    return { bytes, destination };
  } catch (err) {
    spinner.fail();
    throw err;
  }
}

/**
 * Follows a fork while its request is in flight (the API answers only once the copies run):
 * the fork's snapshot is the bunker's newest `fork` snapshot that was not there before. While
 * it is written the line says so, then that the copies are starting. `before` is read before
 * the fork is sent. Reading snapshots needs scaibunker:read; without it (or on any error) the
 * line stays as it was.
 */
async function newestSnapshot(client: ScaiBunkerClient, bunkerId: string) {
  return (await client.snapshots.list({ bunkerId, limit: 1 }).page()).items[0];
}

async function followFork(
  client: ScaiBunkerClient,
  bunkerId: string,
  before: string | undefined,
  count: number,
  progress: Progress,
  done: AbortSignal,
) {
  try {
    const newest = () => newestSnapshot(client, bunkerId);
    for (let delay = 100; !done.aborted; delay = Math.min(1000, delay * 2)) {
      const s = await newest();
      if (s && s.id !== before && s.source === 'fork') {
        progress.step(
          s.state === 'ready'
            ? `forking ${bunkerId} ×${count}: starting the bunkers from ${s.id} (${(s.size_bytes / 1048576).toFixed(1)} MB)`
            : `forking ${bunkerId} ×${count}: snapshot ${s.id} ${s.state}`,
          s.state,
        );
      }
      await delayFor(delay, undefined, { signal: done });
    }
  } catch {
    // Aborted (the fork answered), or no permission to read snapshots: the spinner alone.
  }
}

export function registerBunkerCommands(program: Command): void {
  const bunker = exitTwoOnUsageErrors(program.command('bunker').description('Create, use and remove bunkers (client of the API)'));

  withClientOptions(
    bunker
      .command('create')
      .description('Create a bunker and wait until it runs; prints its id')
      .option('--image <name>', "image to start from (default minimal; with --from-snapshot, the snapshot's)")
      .option('--from-snapshot <snapshot-id>', "start from a snapshot: its image with the snapshot's files restored")
      .option('--auto-resume', 'persistent bunkers: a call while it is passivated resumes it first')
      .addOption(new Option('--lifecycle <mode>', 'lifecycle mode').choices(LIFECYCLES))
      .addOption(
        new Option(
          '--isolation <kind>',
          'isolation: a container (default), its own microVM, or proot (no kernel isolation: trusted code only)',
        ).choices(ISOLATIONS),
      )
      .option('--cpu <cpu>', 'CPU: cores (0.5) or millicores (500m)', cpuMillicores)
      .option('--memory <size>', 'memory in MiB (512) or with a unit (2g)', sizeMb)
      .option('--disk <size>', 'disk in MiB (1024) or with a unit (10g)', sizeMb)
      .option('--gpus <n>', 'GPUs (counted against quotas; no worker offers GPUs yet)', nonNegativeInt)
      .addOption(
        new Option(
          '--network <profile>',
          'network profile (default isolated: loopback only); others need their scaibunker:network:<profile> permission',
        ).choices(NETWORK_PROFILES),
      )
      .option(
        '--allow <host>',
        'host an allowlisted bunker may reach (pypi.org, *.example.com), repeatable; implies --network allowlisted',
        allowHost,
      )
      .option(
        '--interface <bridge>',
        'transit interface on a bridge of yours: br_…[,mac=02:…][,spoof-guard=off], repeatable (eth0, eth1, …); implies --network transit',
        transitInterface,
      )
      .option(
        '--bandwidth <mbit>',
        `egress cap in Mbit/s (${BANDWIDTH_MBIT_MIN}-${BANDWIDTH_MBIT_MAX}; default: the worker's)`,
        bandwidthMbit,
      )
      .option('--idle-timeout <seconds>', 'end (or passivate) the bunker after this long idle', positiveInt)
      .option('--max-lifetime <seconds>', 'end the bunker after this long', positiveInt)
      .option('--label <key=value>', 'metadata label, repeatable', keyValue)
      .option('--env <KEY=VALUE>', 'environment for every exec, repeatable', keyValue),
  ).action(
    clientAction(async (o: ClientFlags & Record<string, unknown>) => {
      const client = await clientFrom(o);
      const body: CreateBunkerOptions = o.fromSnapshot
        ? { snapshot_id: o.fromSnapshot as string, ...(o.image ? { image: o.image as string } : {}) }
        : { image: (o.image as string | undefined) ?? 'minimal' };
      if (o.autoResume) body.auto_resume = true;
      if (o.lifecycle) body.lifecycle = o.lifecycle as NonNullable<CreateBunkerOptions['lifecycle']>;
      if (o.isolation) body.isolation = o.isolation as NonNullable<CreateBunkerOptions['isolation']>;
      if (o.cpu !== undefined) body.cpu_millicores = o.cpu as number;
      if (o.memory !== undefined) body.memory_mb = o.memory as number;
      if (o.disk !== undefined) body.disk_mb = o.disk as number;
      if (o.gpus !== undefined) body.gpu_count = o.gpus as number;
      const allow = o.allow as string[] | undefined;
      const interfaces = o.interface as TransitInterfaceOption[] | undefined;
      if (o.network) body.network_profile = o.network as NonNullable<CreateBunkerOptions['network_profile']>;
      else if (allow) body.network_profile = 'allowlisted';
      else if (interfaces) body.network_profile = 'transit';
      if (allow) body.network_allowlist = allow;
      if (interfaces) body.interfaces = interfaces;
      if (o.bandwidth !== undefined) body.bandwidth_mbit = o.bandwidth as number;
      if (o.idleTimeout !== undefined) body.idle_timeout_s = o.idleTimeout as number;
      if (o.maxLifetime !== undefined) body.max_lifetime_s = o.maxLifetime as number;
      if (o.label) body.metadata = o.label as Record<string, string>;
      if (o.env) body.env = o.env as Record<string, string>;
      const spinner = new Spinner().start(body.snapshot_id ? `restoring ${body.snapshot_id}` : `creating a ${body.image} bunker`);
      let created: Bunker;
      try {
        created = await Bunker.create(body, client);
      } catch (err) {
        spinner.fail();
        throw err;
      }
      spinner.succeed(`bunker ${created.id} ${created.state}${created.info.worker_id ? ` on ${created.info.worker_id}` : ''}`);
      if (o.json) printJson(created.info);
      else process.stdout.write(`${created.id}\n`);
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('ls')
      .alias('list')
      .description("List the tenant's bunkers, newest first")
      .addOption(new Option('--state <state>', 'only bunkers in this state').choices(BUNKER_STATES))
      .option('--label <key=value>', 'only bunkers with this label, repeatable (all must match)', keyValue)
      .option('--limit <n>', 'page size (1-200)', positiveInt)
      .option('--cursor <cursor>', 'start at this page cursor (from a previous --json page)')
      .option('--all', 'follow the cursor through every page'),
  ).action(
    clientAction(
      async (o: ClientFlags & { state?: BunkerState; label?: Record<string, string>; limit?: number; cursor?: string; all?: boolean }) => {
        const client = await clientFrom(o);
        const listing = Bunker.list(
          {
            ...(o.state ? { state: o.state } : {}),
            ...(o.label ? { labels: o.label } : {}),
            ...(o.limit ? { limit: o.limit } : {}),
            ...(o.cursor ? { cursor: o.cursor } : {}),
          },
          client,
        );
        let items: BunkerInfo[];
        let nextCursor: string | null;
        if (o.all) {
          items = (await listing.toArray()).map((b) => b.info);
          nextCursor = null;
        } else {
          const page = await listing.page();
          items = page.items.map((b) => b.info);
          nextCursor = page.nextCursor;
        }
        if (o.json) {
          printJson({ items, next_cursor: nextCursor });
          return 0;
        }
        process.stdout.write(items.length ? bunkerRows(items) : '');
        if (!items.length) process.stderr.write('no bunkers\n');
        if (nextCursor) process.stderr.write(`more bunkers: --cursor ${nextCursor}, or --all\n`);
        return 0;
      },
    ),
  );

  withClientOptions(bunker.command('get').alias('inspect').description('Show one bunker').argument('<id>', 'bunker id')).action(
    clientAction(async (id: string, o: ClientFlags) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      if (o.json) printJson(b.info);
      else process.stdout.write(bunkerFields(b.info));
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('exec')
      .description(
        'Run a command in a bunker, streaming its output; exits with its exit code. One argument runs under /bin/sh -c, several are argv',
      )
      .argument('<id>', 'bunker id')
      .argument('<command...>', 'the command (put it after --)')
      .option('--timeout <seconds>', 'kill the command after this long (exit code 124)', positiveNumber)
      .option('--env <KEY=VALUE>', 'environment variable, repeatable', keyValue)
      .option('--cwd <dir>', 'working directory inside the bunker')
      .option('--user <user>', 'user to run as')
      .option('--stdin <file>', "feed this local file to the command's stdin ('-' for this terminal's stdin)")
      .option('--background', 'start it in the background and print its exec id (follow it with attach, ps, kill)')
      .option('--tag <tag>', 'with --background: a label to find it by (ps --tag)')
      .addHelpText(
        'after',
        "\nExamples:\n  scaibunker bunker exec bk_… -- ls -la /tmp\n  scaibunker bunker exec bk_… -- 'echo $HOME | wc -c'\n  scaibunker bunker exec bk_… --background --tag web -- python3 -m http.server",
      ),
  ).action(
    clientAction(
      async (
        id: string,
        command: string[],
        o: ClientFlags & {
          timeout?: number;
          env?: Record<string, string>;
          cwd?: string;
          user?: string;
          stdin?: string;
          background?: boolean;
          tag?: string;
        },
        cmd: Command,
      ) => {
        if (o.tag !== undefined && !o.background) cmd.error('error: --tag needs --background', { exitCode: 2, code: 'scaibunker.usage' });
        if (o.stdin !== undefined && o.background)
          cmd.error('error: --stdin cannot be used with --background (write to it later through the API)', {
            exitCode: 2,
            code: 'scaibunker.usage',
          });
        const b = await Bunker.connect(id, await clientFrom(o));
        let stdin: string | undefined;
        if (o.stdin !== undefined) {
          const parts: Buffer[] = [];
          for await (const chunk of o.stdin === '-' ? process.stdin : createReadStream(o.stdin)) parts.push(chunk as Buffer);
          stdin = Buffer.concat(parts).toString('utf8');
        }
        const common = {
          ...(o.timeout !== undefined ? { timeoutS: o.timeout } : {}),
          ...(o.env ? { env: o.env } : {}),
          ...(o.cwd ? { cwd: o.cwd } : {}),
          ...(o.user ? { user: o.user } : {}),
        };
        const options = { ...common, ...(stdin !== undefined ? { stdin } : {}) };
        const argv = command.length === 1 ? command[0]! : command;
        if (o.background) {
          const started = await b.processes.start(argv, { ...common, ...(o.tag !== undefined ? { tag: o.tag } : {}) });
          if (o.json) printJson(started.info);
          else process.stdout.write(`${started.execId}\n`);
          return 0;
        }
        if (o.json) {
          const result = await b.exec(argv, options);
          printJson(result);
          return exitCodeOf(result);
        }
        const result = await b.exec(argv, {
          ...options,
          collectOutput: false,
          onStdout: (text) => writeStdout(text),
          onStderr: (text) =>
            new Promise<void>((resolve) => {
              process.stderr.write(text, () => resolve());
            }),
        });
        if (result.timed_out) process.stderr.write(`scaibunker: EXEC_TIMEOUT: the command ran past its timeout and was killed\n`);
        return exitCodeOf(result);
      },
    ),
  );

  withClientOptions(
    bunker
      .command('cp')
      .description(
        "Copy a file between this machine and a bunker (ID:/path on either side; '-' is stdin/stdout). Streams, never buffers whole",
      )
      .argument('<src>', 'local path, - or ID:/path')
      .argument('<dst>', 'local path, - or ID:/path (a trailing / keeps the source name)')
      .option('-p, --parents', 'create missing parent directories in the bunker')
      .option('--mode <octal>', 'permission bits of the uploaded file (default: the local file’s)', (v: string) => {
        if (!/^[0-7]{3,4}$/.test(v)) throw new InvalidArgumentError('expected octal permission bits, e.g. 0644');
        return v;
      })
      .addHelpText(
        'after',
        '\nExamples:\n  scaibunker bunker cp ./data.csv bk_…:/tmp/\n  scaibunker bunker cp bk_…:/tmp/out.json ./out.json\n  tar c dir | scaibunker bunker cp - bk_…:/tmp/dir.tar',
      ),
  ).action(
    clientAction(async (srcSpec: string, dstSpec: string, o: CopyOptions, cmd: Command) => {
      if (o.json && dstSpec === '-')
        cmd.error('error: --json cannot be used when copying to stdout (-)', { exitCode: 2, code: 'scaibunker.usage' });
      const client = await clientFrom(o);
      const result = await copy(cmd, client, parseEndpoint(srcSpec), parseEndpoint(dstSpec), o);
      if (o.json) printJson({ source: srcSpec, destination: result.destination, bytes: result.bytes });
      return 0;
    }),
  );

  withClientOptions(
    bunker.command('rm').alias('terminate').description('Terminate bunkers (idempotent)').argument('<ids...>', 'bunker ids'),
  ).action(
    clientAction(async (ids: string[], o: ClientFlags) => {
      const client = await clientFrom(o);
      const ended: BunkerInfo[] = [];
      let failed: unknown;
      for (const id of ids) {
        try {
          const info = await (await Bunker.connect(id, client)).terminate();
          ended.push(info);
          if (!o.json) process.stdout.write(`${info.id}\t${info.state}\n`);
        } catch (err) {
          if (ids.length === 1) throw err;
          failed ??= err;
          process.stderr.write(`scaibunker: ${id}: ${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error).message}\n`);
        }
      }
      if (o.json) printJson(ended);
      return failed ? 1 : 0;
    }),
  );

  for (const [verb, description] of [
    ['pause', 'Freeze every process of running bunkers (files and memory are kept)'],
    ['resume', 'Thaw paused bunkers, or restore passivated ones from their snapshot'],
  ] as const) {
    const command = bunker.command(verb).description(description).argument('<ids...>', 'bunker ids');
    if (verb === 'pause') command.option('--passivate', 'persistent bunkers: snapshot them and release their worker instead of freezing');
    withClientOptions(command).action(
      clientAction(async (ids: string[], o: ClientFlags & { passivate?: boolean }) => {
        const client = await clientFrom(o);
        const changed: BunkerInfo[] = [];
        for (const id of ids) {
          const b = await Bunker.connect(id, client);
          const info = verb === 'pause' ? await b.pause(o.passivate ? { passivate: true } : {}) : await b.resume();
          changed.push(info);
          if (!o.json) process.stdout.write(`${info.id}\t${info.state}\n`);
        }
        if (o.json) printJson(changed);
        return 0;
      }),
    );
  }

  withClientOptions(
    bunker
      .command('fork')
      .description('Start independent copies of a running bunker from one fresh snapshot; prints their ids')
      .argument('<id>', 'bunker id')
      .option('--count <n>', 'how many (1-20)', positiveInt, 1),
  ).action(
    clientAction(async (id: string, o: ClientFlags & { count: number }) => {
      const client = await clientFrom(o);
      const b = await Bunker.connect(id, client);
      const progress = new Progress(process.stderr, o.json).start(`forking ${id} ×${o.count}: taking a snapshot`);
      const done = new AbortController();
      // null: snapshots cannot be read (no scaibunker:read), so there is nothing to follow.
      const before = await newestSnapshot(client, id).then(
        (s) => s?.id,
        () => null,
      );
      const following = before === null ? Promise.resolve() : followFork(client, id, before, o.count, progress, done.signal);
      let forks: Bunker[];
      try {
        forks = await b.fork(o.count);
      } catch (err) {
        progress.fail();
        throw err;
      } finally {
        done.abort();
        await following;
      }
      progress.succeed(`${forks.length} bunker(s) from ${forks[0]?.info.snapshot_id}`);
      if (o.json) printJson(forks.map((f) => f.info));
      else process.stdout.write(forks.map((f) => `${f.id}\n`).join(''));
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('logs')
      .description("Show a bunker's exec log, newest first")
      .argument('<id>', 'bunker id')
      .option('--limit <n>', 'entries per page (1-200)', positiveInt)
      .option('--all', 'every entry, not just the latest page'),
  ).action(
    clientAction(async (id: string, o: ClientFlags & { limit?: number; all?: boolean }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      const opts = o.limit ? { limit: o.limit } : {};
      const logs = o.all ? await b.execLogPages(opts).toArray() : await b.execLogs(opts);
      if (o.json) printJson(logs);
      else if (logs.length) process.stdout.write(logRows(logs));
      else process.stderr.write('no execs yet\n');
      return 0;
    }),
  );

  registerProcessCommands(bunker);
  registerPortCommands(bunker);
}
