import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { ControllerConfig } from '@scaibunker/controller';
import { IdleHeapRelease } from '@scaibunker/core';
import { type Command, Option } from 'commander';

// The server stack loads only when a server command runs, so client verbs start quickly.
const controllerModule = () => import('@scaibunker/controller');
const workerModule = () => import('@scaibunker/worker');

const DEFAULT_DATA_DIR = '/var/lib/scaibunker';
/** Where set-up bakes the built-in images (scripts/build-images.sh). */
const SETUP_IMAGE_DIR = process.env.SCAIBUNKER_IMAGE_DIR ?? join(DEFAULT_DATA_DIR, 'images');

/**
 * The built-in images' catalog when no --image-dir is given: `<data-dir>/images` if it has one,
 * else where set-up put them — so `serve --data-dir /tmp/x` still has `minimal`, `python`, ….
 */
function defaultImageDir(dataDir: string): string {
  const own = join(dataDir, 'images');
  if (existsSync(join(own, 'catalog.json'))) return own;
  return existsSync(join(SETUP_IMAGE_DIR, 'catalog.json')) ? resolve(SETUP_IMAGE_DIR) : own;
}

/** An overcommit factor: a number from 1 to 100. */
function overcommitFactor(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 1 || n > 100) throw new Error(`not an overcommit factor (1 to 100): ${v}`);
  return n;
}

/** What `--isolations` may list (the worker's own list; the worker package is loaded lazily). */
const ISOLATIONS: readonly string[] = ['container', 'microvm', 'proot'];

/** `--isolations`: checked as the command line is read, before anything starts. */
function isolationsList(v: string): string {
  const names = v.split(',').map((s) => s.trim());
  if (v.trim() === 'auto' || (names.length > 0 && names.every((n) => ISOLATIONS.includes(n)))) return v;
  throw new Error(`--isolations: expected 'auto' or a list of ${ISOLATIONS.join(', ')} (got ${JSON.stringify(v)})`);
}

/**
 * What a starting server has made so far, undone in reverse if a later step fails: a start-up
 * that fails leaves nothing running (no flow logger, no mounts, no open database).
 */
class Startup {
  private readonly undo: Array<() => Promise<unknown>> = [];
  made<T>(thing: T, close: (t: T) => Promise<unknown>): T {
    this.undo.push(() => close(thing));
    return thing;
  }
  async run<T>(steps: () => Promise<T>): Promise<T> {
    try {
      return await steps();
    } catch (err) {
      for (const close of this.undo.reverse()) await close().catch(() => undefined);
      throw err;
    }
  }
}

function int(v: string): number {
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a non-negative integer: ${v}`);
  return n;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `512m`, `1g`, `1.5G`, `1048576` (binary units; an optional `i`/`b`: `512MiB`). */
export function size(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(v.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase()];
  if (!m?.[1] || unit === undefined) throw new Error(`not a size (e.g. 1048576, 512m, 1g): ${v}`);
  return Math.floor(Number(m[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `12h`, `7d` (as milliseconds). */
export function duration(v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v.trim());
  if (!m?.[1] || !m[2]) throw new Error(`not a duration (e.g. 90s, 30m, 12h, 7d): ${v}`);
  return Number(m[1]) * (DURATION_UNITS[m[2]] as number);
}

/** Quota counters in Redis when REDIS_URL is set; otherwise in the controller process. */
function redisFromEnv(): { redisUrl?: string } {
  return process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {};
}

function controllerConfig(
  o: Record<string, number | undefined> & { traceJobs?: boolean; previewDomain?: string; previewScheme?: string },
): Partial<ControllerConfig> {
  const c: Partial<ControllerConfig> = {};
  if (o.previewDomain) c.previewDomain = o.previewDomain.toLowerCase().replace(/^\.|\.$/g, '');
  if (o.previewScheme === 'http' || o.previewScheme === 'https') c.previewScheme = o.previewScheme;
  if (o.maxTunnelsPerBunker !== undefined) c.maxTunnelsPerBunker = o.maxTunnelsPerBunker;
  if (o.tunnelIdle !== undefined) c.tunnelIdleMs = o.tunnelIdle;
  if (o.heartbeatIntervalMs !== undefined) c.heartbeatIntervalMs = o.heartbeatIntervalMs;
  if (o.workerLostAfter !== undefined) c.workerLostAfterMs = o.workerLostAfter;
  if (o.sweepIntervalMs !== undefined) c.sweepIntervalMs = o.sweepIntervalMs;
  if (o.monitorIntervalMs !== undefined) c.monitorIntervalMs = o.monitorIntervalMs;
  if (o.outputCapBytes !== undefined) c.outputInlineCapBytes = o.outputCapBytes;
  if (o.uploadCapBytes !== undefined) c.uploadCapBytes = o.uploadCapBytes;
  if (o.stuckCreateMs !== undefined) c.stuckCreateMs = o.stuckCreateMs;
  if (o.usageIntervalMs !== undefined) c.usageIntervalMs = o.usageIntervalMs;
  if (o.outputStoreCapBytes !== undefined) c.outputStoreCapBytes = o.outputStoreCapBytes;
  if (o.outputStoreTenantCapBytes !== undefined) c.outputStoreTenantCapBytes = o.outputStoreTenantCapBytes;
  if (o.outputRetention !== undefined) c.outputRetentionMs = o.outputRetention;
  if (o.outputRetentionIntervalMs !== undefined) c.outputRetentionIntervalMs = o.outputRetentionIntervalMs;
  if (o.diskReserve !== undefined) c.diskReserveBytes = o.diskReserve;
  if (o.shellGrace !== undefined) c.shellGraceMs = o.shellGrace;
  if (o.execReconcileIntervalMs !== undefined) c.execReconcileIntervalMs = o.execReconcileIntervalMs;
  if (o.snapshotCleanupIntervalMs !== undefined) c.snapshotCleanupIntervalMs = o.snapshotCleanupIntervalMs;
  if (o.traceJobs) c.traceJobs = true;
  return c;
}

/** One journal per controller process, named by its port so a restart finds what it left. */
function execLogJournal(dataDir: string, port: number): string {
  return join(dataDir, 'journal', `exec-logs-${port}.ndjson`);
}

function jwtFromEnv() {
  const env = process.env;
  return {
    ...(env.SCAIBUNKER_JWT_SECRET ? { hs256Secret: env.SCAIBUNKER_JWT_SECRET } : {}),
    ...(env.SCAIBUNKER_JWKS_URL ? { jwksUrl: env.SCAIBUNKER_JWKS_URL } : {}),
    ...(env.SCAIBUNKER_JWT_ISSUER ? { issuer: env.SCAIBUNKER_JWT_ISSUER } : {}),
    ...(env.SCAIBUNKER_JWT_AUDIENCE ? { audience: env.SCAIBUNKER_JWT_AUDIENCE } : {}),
  };
}

function onShutdown(fn: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`scaibunker: ${signal}, shutting down (bunkers keep running)\n`);
    fn().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`scaibunker: shutdown failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * A long-running server gives back the heap a burst grew (e.g. thousands of bunkers created)
 * once it is quiet: see IdleHeapRelease. `SCAIBUNKER_IDLE_HEAP_RELEASE=off` turns it off (e.g.
 * to compare); anything but on/off is refused before the server starts. Started once serving;
 * its timer does not keep the process alive.
 */
function idleHeapRelease(who: string): IdleHeapRelease | undefined {
  const setting = process.env.SCAIBUNKER_IDLE_HEAP_RELEASE ?? 'on';
  if (setting === 'off') return undefined;
  if (setting !== 'on') throw new Error(`SCAIBUNKER_IDLE_HEAP_RELEASE must be on or off, not '${setting}'`);
  return new IdleHeapRelease({}, (line) => process.stderr.write(`[${who}] ${line}\n`));
}

/** Writes the bootstrap admin key once (mode 0600); later starts leave it alone. */
async function writeAdminKey(dataDir: string, key: string | undefined): Promise<string> {
  const path = join(dataDir, 'admin.key');
  if (key) await writeFile(path, `${key}\n`, { mode: 0o600 });
  return path;
}

const ISOLATIONS_OPTION = [
  '--isolations <list>',
  "'auto' (containers, plus microVMs when QEMU and the guest kernel work here) or a list of container, microvm, proot (proot: NO kernel isolation, dev and trusted use only; never part of auto)",
  isolationsList,
  'auto',
] as const;
const NO_SNAPSHOTS_OPTION = ['--no-snapshots', 'microVMs: always cold-boot (no memory snapshots)'] as const;

/** `--container-runtime`: checked as the command line is read. */
function containerRuntime(v: string): string {
  if (['auto', 'crun', 'runc', 'docker'].includes(v)) return v;
  throw new Error(`--container-runtime: expected auto, crun, runc or docker (got ${JSON.stringify(v)})`);
}

/** `--vmm`: checked as the command line is read. */
function vmmName(v: string): string {
  if (v === 'qemu' || v === 'firecracker') return v;
  throw new Error(`--vmm: expected qemu or firecracker (got ${JSON.stringify(v)})`);
}

/** Who runs the bunkers: the container runtime, the Docker daemon, plugin providers (`serve` and `worker`). */
function withRuntimeOptions(cmd: Command): Command {
  return cmd
    .option(
      '--container-runtime <name>',
      'container bunkers on auto (crun, runc fallback), crun, runc, or docker (a Docker daemon over its Engine API)',
      containerRuntime,
      'auto',
    )
    .option(
      '--docker-host <url>',
      "the Docker daemon's socket for --container-runtime docker (default $DOCKER_HOST, else unix:///var/run/docker.sock)",
    )
    .option('--vmm <name>', 'microVM bunkers on qemu (default) or firecracker (KVM only; --firecracker-bin)', vmmName, 'qemu')
    .option('--firecracker-bin <path>', "the Firecracker binary for --vmm firecracker (default 'firecracker' on PATH)")
    .option(
      '--provider-module <path>',
      'a module whose default export is a provider class; it replaces the built-in provider of its isolation (repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    );
}

/**
 * The createProviders settings of the runtime options. Checked before anything starts: a
 * `--docker-host` nothing would use, or networking on a Docker worker (whose containers can only
 * be `isolated`: it would offer profiles it cannot give), is refused.
 */
function runtimeSettings(o: {
  containerRuntime?: string;
  dockerHost?: string;
  providerModule?: string[];
  network?: string;
  vmm?: string;
  firecrackerBin?: string;
  isolations?: string;
}) {
  if (o.dockerHost && o.containerRuntime !== 'docker') throw new Error('--docker-host is used only with --container-runtime docker');
  if (o.firecrackerBin && o.vmm !== 'firecracker') throw new Error('--firecracker-bin is used only with --vmm firecracker');
  if (o.vmm === 'firecracker' && o.isolations !== undefined && o.isolations.trim() !== 'auto' && !o.isolations.includes('microvm'))
    throw new Error('--vmm firecracker runs microvm bunkers: add microvm to --isolations');
  if (o.containerRuntime === 'docker' && o.network !== 'off') {
    throw new Error('--container-runtime docker gives container bunkers no network beyond isolated: add --network off');
  }
  return {
    containerRuntime: (o.containerRuntime ?? 'auto') as 'auto' | 'crun' | 'runc' | 'docker',
    ...(o.dockerHost ? { dockerHost: o.dockerHost } : {}),
    ...(o.vmm === 'firecracker' ? { vmm: 'firecracker' as const, firecrackerBin: o.firecrackerBin ?? 'firecracker' } : {}),
    ...(o.providerModule?.length ? { providerModules: o.providerModule } : {}),
  };
}

/**
 * `--vmm firecracker` on a host where it cannot run (no runnable binary, no usable /dev/kvm) is
 * refused before anything starts, like the runtime flags above (needs the worker module: async).
 */
async function checkVmm(runtime: { vmm?: 'firecracker'; firecrackerBin?: string }): Promise<void> {
  if (runtime.vmm !== 'firecracker') return;
  const { FirecrackerVmm } = await workerModule();
  const reason = await FirecrackerVmm.unavailableReason(runtime.firecrackerBin ?? 'firecracker');
  if (reason) throw new Error(`--vmm firecracker: ${reason}`);
}

/** Network profile options of `serve` and `worker`. */
function withNetworkOptions(cmd: Command): Command {
  return cmd
    .option(
      '--network <mode>',
      "'auto' (registry/allowlisted/unrestricted profiles when this host can plumb them) or 'off' (isolated only)",
      'auto',
    )
    .option('--bunker-subnet <cidr>', 'IPv4 pool for networked bunkers (a /30 each); distinct per worker on one host', '10.200.0.0/16')
    .option('--dns-upstream <ip[:port]>', "resolver the bunkers' DNS responder asks (default: the host's first IPv4 nameserver)")
    .option('--default-bandwidth <mbit>', 'egress/ingress cap of a networked bunker that sets none', int, 100)
    .option('--no-flow-audit', 'do not record the flows of unrestricted bunkers (their audit batches)')
    .option(
      '--network-name-prefix <letters>',
      'prefix (2-4 lowercase letters) of the kernel objects this worker owns; distinct per worker on one host',
      'sb',
    );
}

/** The worker's network plumbing per --network, or undefined (isolated only) with the reason logged. */
async function openNetworking(
  o: {
    network: string;
    bunkerSubnet: string;
    dnsUpstream?: string;
    defaultBandwidth: number;
    networkNamePrefix: string;
    flowAudit: boolean;
  },
  dataDir: string,
  protectedAddresses: string[],
  link: { putAuditBatch(bunkerId: string, name: string, ndjson: Buffer): Promise<void> },
) {
  if (o.network !== 'auto' && o.network !== 'off')
    throw new Error(`--network: expected 'auto' or 'off' (got ${JSON.stringify(o.network)})`);
  if (o.network === 'off') return undefined;
  const { FLOWLOG_BINARY, WorkerNetwork } = await workerModule();
  const reason = await WorkerNetwork.unavailableReason();
  if (reason) {
    process.stderr.write(`[worker] network profiles beyond isolated not offered: ${reason}\n`);
    return undefined;
  }
  let dnsUpstream: { host: string; port: number } | undefined;
  if (o.dnsUpstream) {
    const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(o.dnsUpstream);
    if (!m?.[1]) throw new Error(`--dns-upstream: expected an IPv4 address with an optional :port (got ${JSON.stringify(o.dnsUpstream)})`);
    dnsUpstream = { host: m[1], port: m[2] ? int(m[2]) : 53 };
  }
  return WorkerNetwork.open({
    dataDir,
    subnet: o.bunkerSubnet,
    defaultBandwidthMbit: o.defaultBandwidth,
    namePrefix: o.networkNamePrefix,
    protectedAddresses,
    ...(o.flowAudit
      ? { flowAudit: { binary: FLOWLOG_BINARY, sink: (id: string, name: string, ndjson: Buffer) => link.putAuditBatch(id, name, ndjson) } }
      : {}),
    ...(dnsUpstream ? { dnsUpstream } : {}),
  });
}

/** The controller's address when it is an IP literal: bunkers must never reach it. */
function controllerAddresses(url: string): string[] {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) ? [host] : [];
}

/** Options for baking and scanning registered images (`serve` and `controller`). */
function withImageOptions(cmd: Command): Command {
  return cmd
    .option(
      '--image-import-dir <dir>',
      'local image sources (OCI layouts, docker archives, rootfs tarballs) must be under it; default <data-dir>/image-imports',
    )
    .option('--insecure-registry <host:port>', 'a registry reached over plain http (repeatable)', collect, [] as string[])
    .option('--advisories <path>', 'OSV advisories (JSON array, NDJSON or a directory of *.json) for the built-in image scanner')
    .option(
      '--catalog-from-registries',
      'also register python-3.12, nodejs-22, ubuntu-24.04 and rust-latest baked from Docker Hub (needs the controller to reach it)',
    );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function imageOptions(o: { imageImportDir?: string; insecureRegistry?: string[]; advisories?: string }, dataDir: string) {
  return {
    workDir: join(dataDir, 'image-work'),
    importDir: resolve(o.imageImportDir ?? join(dataDir, 'image-imports')),
    insecureRegistries: o.insecureRegistry ?? [],
    ...(o.advisories ? { advisoryPath: resolve(o.advisories) } : {}),
    ...(process.env.SCAIBUNKER_AGENT_BIN ? { agentBinary: resolve(process.env.SCAIBUNKER_AGENT_BIN) } : {}),
  };
}

function withIntervalOptions(cmd: Command): Command {
  return cmd
    .option('--heartbeat-interval-ms <ms>', 'worker heartbeat interval', int)
    .option('--sweep-interval-ms <ms>', 'idle/lifetime sweeper interval', int)
    .option('--monitor-interval-ms <ms>', 'heartbeat monitor interval', int)
    .option(
      '--worker-lost-after <duration>',
      'a worker silent this long is lost and its bunkers fail worker_lost (default 10m; until then it is only unreachable and resumes when it heartbeats); must exceed 3 heartbeat intervals',
      duration,
    )
    .option('--usage-interval-ms <ms>', 'usage metering interval (default 60000; at most one usage row per bunker per minute)', int)
    .option('--output-cap-bytes <n>', 'inline exec output cap per stream', int)
    .option('--upload-cap-bytes <n>', 'largest file upload', int)
    .option('--stuck-create-ms <ms>', 'fail creates still pending/provisioning after this long (their controller died)', int)
    .option(
      '--output-store-cap-bytes <n>',
      'stored exec output per exec, both streams (default 256 MiB); past it the stored output is capped',
      int,
    )
    .option('--output-store-tenant-cap-bytes <n>', 'stored exec output per tenant within retention (default 10 GiB)', int)
    .option('--output-retention <duration>', 'stored exec output is deleted after this (default 7d; e.g. 12h, 30m)', duration)
    .option('--output-retention-interval-ms <ms>', 'how often the output-retention sweep runs (default 3600000)', int)
    .option(
      '--disk-reserve <size>',
      'free space kept on the data disk (default 256m): under it no exec output spills, serve refuses new bunkers, /readyz is not ready',
      size,
    )
    .option('--shell-grace <duration>', 'a shell with no client attached is killed after this (default 60s; reattach before it)', duration)
    .option(
      '--snapshot-cleanup-interval-ms <ms>',
      'how often expired snapshots are deleted and half-made ones closed (default 300000; also at start)',
      int,
    )
    .option(
      '--exec-reconcile-interval-ms <ms>',
      'how often background execs whose row is open are adopted or closed as lost (default 30000; also at start)',
      int,
    )
    .option('--trace-jobs', 'log every background tick this process runs (job, lease holder, start, end, result) on stderr')
    .option(
      '--preview-domain <domain>',
      'serve previews on {port}-{bunker id, _ as -}.<domain> (needs wildcard DNS and a certificate for *.<domain>)',
    )
    .option('--preview-scheme <scheme>', 'scheme of preview URLs: https (default, behind a TLS front) or http')
    .option('--max-tunnels-per-bunker <n>', 'open port connections per bunker on this controller (default 64)', int)
    .option('--tunnel-idle <duration>', 'a proxied port connection idle this long is closed (default 5m)', duration);
}

const LOG_FORMAT_OPTION = () =>
  new Option('--log-format <format>', 'one line per API request on stderr: json (one object a line) or text; default none').choices([
    'json',
    'text',
  ]);

/** `--metrics-port`, `--metrics-host`, `--log-format` (serve and controller). */
function withObservabilityOptions(cmd: Command): Command {
  return cmd
    .option(
      '--metrics-port <port>',
      'also serve GET /metrics without auth on this port (for Prometheus; the API port has it for platform admins)',
      int,
    )
    .option('--metrics-host <host>', 'address of the metrics port', '127.0.0.1')
    .addOption(LOG_FORMAT_OPTION());
}

/** Starts the metrics port when asked; prints its address after the API's own line. */
async function startMetrics(
  controller: { listenMetrics(port: number, host: string): Promise<string> },
  o: { metricsPort?: number; metricsHost: string },
) {
  if (o.metricsPort === undefined) return;
  const address = await controller.listenMetrics(o.metricsPort, o.metricsHost);
  process.stdout.write(`metrics at ${address}/metrics\n`);
}

export function registerServerCommands(program: Command): void {
  withImageOptions(
    withNetworkOptions(
      withIntervalOptions(
        withRuntimeOptions(
          withObservabilityOptions(program.command('serve'))
            .description(
              'Embedded mode: controller + one local worker in one process (SQLite, local blob store unless SCAIBUNKER_BLOB_STORE is set; Redis if REDIS_URL is set)',
            )
            .option('--port <port>', 'HTTP port', int, 8080)
            .option('--host <host>', 'address to listen on', '127.0.0.1')
            .option('--data-dir <dir>', 'state directory', DEFAULT_DATA_DIR)
            .option('--image-dir <dir>', 'baked images (<sha256>.ext4 + catalog.json); default <data-dir>/images')
            .option('--cpu-overcommit <factor>', 'CPU millicores offered per core ÷ 1000 (limits are quotas, not reservations)', Number, 8)
            .option(
              '--memory-overcommit <factor>',
              'memory MB offered per MB of RAM (default 1; >1 packs idle bunkers, the OOM killer decides past RAM)',
              overcommitFactor,
              1,
            )
            .option(...ISOLATIONS_OPTION)
            .option(...NO_SNAPSHOTS_OPTION),
        ),
      ),
    ),
  ).action(async (o) => {
    const heap = idleHeapRelease('server');
    const [{ Controller, openBlobStore }, { createProviders, Worker }] = await Promise.all([controllerModule(), workerModule()]);
    const runtime = runtimeSettings(o);
    await checkVmm(runtime);
    const dataDir = resolve(o.dataDir);
    const imageDir = resolve(o.imageDir ?? defaultImageDir(dataDir));
    const blobStore = await openBlobStore(process.env.SCAIBUNKER_BLOB_STORE, join(dataDir, 'blobs'));
    await mkdir(dataDir, { recursive: true });
    const startup = new Startup();
    await startup.run(async () => {
      const controller = startup.made(
        await Controller.open({
          databaseUrl: process.env.DATABASE_URL ?? `sqlite:${join(dataDir, 'scaibunker.db')}`,
          blobDir: join(dataDir, 'blobs'),
          blobStore,
          jwt: jwtFromEnv(),
          config: controllerConfig(o),
          images: imageOptions(o, dataDir),
          execLogJournal: execLogJournal(dataDir, o.port),
          requestLog: o.logFormat,
          ...redisFromEnv(),
        }),
        (c) => c.close(),
      );
      const images = await controller.registerCatalog(imageDir);
      if (o.catalogFromRegistries) images.push(...(await controller.registerRegistryCatalog()));
      const adminKey = await controller.services.tenants.bootstrap();
      const keyPath = await writeAdminKey(dataDir, adminKey);
      const networking = startup.made(
        await openNetworking(o, join(dataDir, 'worker'), [], controller.localLink()),
        (n) => n?.close() ?? Promise.resolve(),
      );
      const worker = new Worker({
        dataDir: join(dataDir, 'worker'),
        imageDir,
        providers: await createProviders({
          dataDir: join(dataDir, 'worker'),
          isolations: o.isolations,
          snapshots: o.snapshots,
          ...runtime,
          ...(networking ? { networking } : {}),
        }),
        ...(networking ? { networking } : {}),
        controller: controller.localLink(),
        name: `${hostname()}-local`,
        url: '',
        heartbeatIntervalMs: controller.config.heartbeatIntervalMs,
        cpuOvercommit: o.cpuOvercommit,
        memoryOvercommit: o.memoryOvercommit,
        diskReserveBytes: controller.config.diskReserveBytes,
      });
      await worker.init();
      controller.registerLocalWorker(worker.id, worker);
      startup.made(worker, (w) => w.stop());
      await worker.start();
      const address = await controller.listen(o.port, o.host);
      process.stdout.write(
        `ScaiBunker serving at ${address}/v1/modules/scaibunker (OpenAPI: ${address}/openapi.json)\n` +
          `admin key: ${keyPath}${adminKey ? ' (new)' : ''}\nimages: ${images.join(', ') || 'none (run scripts/setup.sh)'}\n`,
      );
      await startMetrics(controller, o);
      heap?.start();
      onShutdown(async () => {
        await worker.stop();
        await networking?.close();
        await controller.close();
      });
    });
  });

  withImageOptions(
    withIntervalOptions(
      withObservabilityOptions(program.command('controller'))
        .description(
          'Controller only: HTTP API, scheduler, background jobs (workers connect with SCAIBUNKER_WORKER_TOKEN; quota counters in REDIS_URL)',
        )
        .option('--port <port>', 'HTTP port', int, 8080)
        .option('--host <host>', 'address to listen on', '127.0.0.1')
        .option('--data-dir <dir>', 'state directory (SQLite file and blobs unless DATABASE_URL is set)', DEFAULT_DATA_DIR)
        .option('--image-dir <dir>', 'catalog of built-in images to register; default <data-dir>/images')
        .option(
          '--publish-catalog',
          'also upload the built-in images to the blob store (when absent), so workers on other hosts can fetch them',
        ),
    ),
  ).action(async (o) => {
    const token = process.env.SCAIBUNKER_WORKER_TOKEN;
    if (!token) throw new Error('SCAIBUNKER_WORKER_TOKEN must be set for a controller that workers connect to');
    const heap = idleHeapRelease('controller');
    const { Controller, openBlobStore } = await controllerModule();
    const dataDir = resolve(o.dataDir);
    const blobStore = await openBlobStore(process.env.SCAIBUNKER_BLOB_STORE, join(dataDir, 'blobs'));
    await mkdir(dataDir, { recursive: true });
    const controller = await Controller.open({
      databaseUrl: process.env.DATABASE_URL ?? `sqlite:${join(dataDir, 'scaibunker.db')}`,
      blobDir: join(dataDir, 'blobs'),
      blobStore,
      workerToken: token,
      jwt: jwtFromEnv(),
      config: controllerConfig(o),
      images: imageOptions(o, dataDir),
      execLogJournal: execLogJournal(dataDir, o.port),
      requestLog: o.logFormat,
      ...redisFromEnv(),
    });
    await controller.registerCatalog(resolve(o.imageDir ?? defaultImageDir(dataDir)), { publish: o.publishCatalog === true });
    if (o.catalogFromRegistries) await controller.registerRegistryCatalog();
    const keyPath = await writeAdminKey(dataDir, await controller.services.tenants.bootstrap());
    const address = await controller.listen(o.port, o.host);
    const quotas = process.env.REDIS_URL ? 'quota counters in Redis' : 'quota counters in-process (set REDIS_URL to share them)';
    process.stdout.write(`ScaiBunker controller at ${address} (admin key: ${keyPath}; ${quotas})\n`);
    await startMetrics(controller, o);
    heap?.start();
    onShutdown(() => controller.close());
  });

  program
    .command('proxy')
    .description(
      'Storage proxy only: the /v1/modules/scaibunker/storage/* routes over the blob store (SCAIBUNKER_BLOB_STORE), no database or Redis; takes the worker token (SCAIBUNKER_WORKER_TOKEN) or capability tokens',
    )
    .option('--port <port>', 'HTTP port', int, 8082)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--data-dir <dir>', 'holds the local blob directory when SCAIBUNKER_BLOB_STORE is unset', DEFAULT_DATA_DIR)
    .option('--access-log', 'print one line per request: storage <METHOD> <key> <status> bytes=<n>')
    .action(async (o) => {
      const token = process.env.SCAIBUNKER_WORKER_TOKEN;
      if (!token) throw new Error('SCAIBUNKER_WORKER_TOKEN must be set: the proxy authenticates workers and capability tokens with it');
      const { StorageProxy, openBlobStore } = await controllerModule();
      const blobStore = await openBlobStore(process.env.SCAIBUNKER_BLOB_STORE, join(resolve(o.dataDir), 'blobs'));
      const proxy = new StorageProxy({
        workerToken: token,
        blobStore,
        ...(o.accessLog ? { accessLog: (line: string) => process.stdout.write(`${line}\n`) } : {}),
      });
      const address = await proxy.listen(o.port, o.host);
      process.stdout.write(`ScaiBunker storage proxy at ${address}\n`);
      onShutdown(() => proxy.close());
    });

  withNetworkOptions(
    withRuntimeOptions(
      program
        .command('worker')
        .description('Worker daemon: runs bunkers for a controller (SCAIBUNKER_WORKER_TOKEN)')
        .requiredOption('--controller <url>', 'controller base URL')
        .option('--port <port>', 'port the controller reaches this worker on', int, 8081)
        .option('--host <host>', 'address to listen on', '127.0.0.1')
        .option('--advertise-url <url>', 'URL the controller uses to reach this worker; default http://<host>:<port>')
        .option('--data-dir <dir>', 'worker state directory', join(DEFAULT_DATA_DIR, 'worker'))
        .option('--image-dir <dir>', 'image cache (<sha256>.ext4)', join(DEFAULT_DATA_DIR, 'images'))
        .option('--storage-url <url>', 'storage proxy base URL (`scaibunker proxy`) for images and audit batches; default: the controller')
        .option('--name <name>', 'worker name', hostname())
        .option('--heartbeat-interval-ms <ms>', 'heartbeat interval', int, 10_000)
        .option('--cpu-overcommit <factor>', 'CPU millicores offered per core ÷ 1000 (limits are quotas, not reservations)', Number, 8)
        .option(
          '--memory-overcommit <factor>',
          'memory MB offered per MB of RAM (default 1; >1 packs idle bunkers, the OOM killer decides past RAM)',
          overcommitFactor,
          1,
        )
        .option('--disk-reserve <size>', 'free space kept on the data disk (default 256m): under it new bunkers are refused', size)
        .option(...ISOLATIONS_OPTION)
        .option(...NO_SNAPSHOTS_OPTION)
        .addOption(LOG_FORMAT_OPTION()),
    ),
  ).action(async (o) => {
    const token = process.env.SCAIBUNKER_WORKER_TOKEN;
    if (!token) throw new Error('SCAIBUNKER_WORKER_TOKEN must be set');
    const heap = idleHeapRelease('worker');
    const { createProviders, HttpControllerLink, Worker, WorkerHttpServer } = await workerModule();
    const runtime = runtimeSettings(o);
    await checkVmm(runtime);
    const dataDir = resolve(o.dataDir);
    const url = o.advertiseUrl ?? `http://${o.host}:${o.port}`;
    const link = new HttpControllerLink(o.controller, token, o.storageUrl ? { storageUrl: o.storageUrl } : {});
    const startup = new Startup();
    await startup.run(async () => {
      const networking = startup.made(
        await openNetworking(
          o,
          dataDir,
          [...new Set([...controllerAddresses(o.controller), ...(o.storageUrl ? controllerAddresses(o.storageUrl) : [])])],
          link,
        ),
        (n) => n?.close() ?? Promise.resolve(),
      );
      const worker = new Worker({
        dataDir,
        imageDir: resolve(o.imageDir),
        providers: await createProviders({
          dataDir,
          isolations: o.isolations,
          snapshots: o.snapshots,
          ...runtime,
          ...(networking ? { networking } : {}),
        }),
        ...(networking ? { networking } : {}),
        controller: link,
        // Sent to peers when fetching an image from them.
        token,
        name: o.name,
        url,
        heartbeatIntervalMs: o.heartbeatIntervalMs,
        cpuOvercommit: o.cpuOvercommit,
        memoryOvercommit: o.memoryOvercommit,
        ...(o.diskReserve !== undefined ? { diskReserveBytes: o.diskReserve } : {}),
      });
      await worker.init();
      const server = startup.made(new WorkerHttpServer(worker, token, o.logFormat ? { requestLog: o.logFormat } : {}), (srv) =>
        srv.close(),
      );
      await server.listen(o.port, o.host);
      startup.made(worker, (w) => w.stop());
      await worker.start();
      process.stdout.write(`ScaiBunker worker ${worker.id} at ${url}, controller ${o.controller}\n`);
      heap?.start();
      onShutdown(async () => {
        await worker.stop();
        await server.close();
        await networking?.close();
      });
    });
  });
}
