import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newId, type schemas } from '@scaibunker/core';
import type { ControllerLink, WorkerApi } from '@scaibunker/worker';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from './auth/Authenticator.js';
import { type JwtConfig, JwtVerifier } from './auth/JwtVerifier.js';
import type { BlobStore } from './blobs/BlobStore.js';
import { LocalDirBlobStore } from './blobs/LocalDirBlobStore.js';
import { BridgeService } from './bridges/BridgeService.js';
import { BunkerService } from './bunkers/BunkerService.js';
import { ExecService } from './bunkers/ExecService.js';
import { FileService } from './bunkers/FileService.js';
import { FlowAuditService } from './bunkers/FlowAuditService.js';
import { type ControllerConfig, DEFAULT_CONFIG } from './config.js';
import { buildHttpServer } from './http/HttpServer.js';
import { buildOpenApi } from './http/openapi.js';
import type { RouteDef } from './http/Route.js';
import { adminRoutes } from './http/routes/adminRoutes.js';
import { bridgeRoutes } from './http/routes/bridgeRoutes.js';
import { bunkerRoutes } from './http/routes/bunkerRoutes.js';
import { fileRoutes } from './http/routes/fileRoutes.js';
import { flowAuditRoutes } from './http/routes/flowAuditRoutes.js';
import { metaRoutes } from './http/routes/metaRoutes.js';
import { quotaRoutes } from './http/routes/quotaRoutes.js';
import type { Services } from './http/routes/Services.js';
import { usageRoutes } from './http/routes/usageRoutes.js';
import { Sweeper } from './jobs/Sweeper.js';
import { Ticker, type TickerLease, type TickRecord } from './jobs/Ticker.js';
import { UsageTicker } from './jobs/UsageTicker.js';
import type { ChangeFeed } from './live/ChangeFeed.js';
import { InProcessChangeFeed } from './live/InProcessChangeFeed.js';
import { RedisChangeFeed } from './live/RedisChangeFeed.js';
import { InProcessQuotaCounters } from './quotas/InProcessQuotaCounters.js';
import type { QuotaCounters } from './quotas/QuotaCounters.js';
import { QuotaProfileService } from './quotas/QuotaProfileService.js';
import { QuotaService } from './quotas/QuotaService.js';
import { RedisQuotaCounters } from './quotas/RedisQuotaCounters.js';
import { Store } from './store/Store.js';
import { TenantService } from './tenants/TenantService.js';
import { UsageService } from './usage/UsageService.js';
import type { Heartbeats } from './workers/Heartbeats.js';
import { InProcessHeartbeats } from './workers/InProcessHeartbeats.js';
import { RedisHeartbeats } from './workers/RedisHeartbeats.js';
import { Scheduler } from './workers/Scheduler.js';
import { WorkerDirectory } from './workers/WorkerDirectory.js';
import { WorkerService } from './workers/WorkerService.js';

export const VERSION = '0.1.0';

export interface ControllerOptions {
  databaseUrl: string;
  /** Where the local-directory blob store lives (unused when `blobStore` is given). */
  blobDir: string;
  /** The blob store to use instead of the local directory (S3 from `openBlobStore`, tests). */
  blobStore?: BlobStore;
  workerToken?: string;
  jwt?: JwtConfig;
  config?: Partial<ControllerConfig>;
  logger?: boolean;
  /** Quota counters in Redis (several controllers); without it they are in-process (one controller). */
  redisUrl?: string | undefined;
  /** Counters to use instead (tests); the controller closes them. */
  quotaCounters?: QuotaCounters;
}

/** What several controllers share besides the database, all in Redis (in-process when embedded). */
interface SharedState {
  counters: QuotaCounters;
  changes: ChangeFeed;
  heartbeats: Heartbeats;
}

/** The composition root of the controller: store, services, HTTP API and background jobs. */
export class Controller {
  readonly http: FastifyInstance;
  readonly services: Services;
  readonly sweeper: Sweeper;
  /** Meters running and paused bunkers into the usage table (tests call `tick()` directly). */
  readonly usageTicker: UsageTicker;
  readonly config: ControllerConfig;
  readonly routes: RouteDef[];
  /** Generated once from the same route list (and schemas) that the server validates with. */
  readonly openapi: unknown;
  private readonly directory: WorkerDirectory;
  private readonly tickers: Ticker[];

  private constructor(
    readonly store: Store,
    readonly blobs: BlobStore,
    private readonly shared: SharedState,
    opts: ControllerOptions,
  ) {
    this.config = { ...DEFAULT_CONFIG, ...opts.config };
    this.directory = new WorkerDirectory(store, opts.workerToken);
    const scheduler = new Scheduler(store);
    const quotas = new QuotaService(store, shared.counters);
    this.usageTicker = new UsageTicker(store, this.directory, this.config.usageIntervalMs);
    const bunkers = new BunkerService(store, scheduler, this.directory, quotas, this.usageTicker);
    // Every committed bunker-row change drops that row from every controller's running-bunker cache.
    store.bunkers.onChange((id) => shared.changes.publish('bunker', id));
    shared.changes.subscribe((_topic, id) => bunkers.running.invalidate(id));
    const workers = new WorkerService(store, bunkers, this.config, shared.heartbeats);
    this.services = {
      store,
      bunkers,
      exec: new ExecService(store, bunkers, blobs, this.config),
      files: new FileService(bunkers, this.config),
      flowAudit: new FlowAuditService(store, bunkers, blobs),
      tenants: new TenantService(store),
      workers,
      quotas,
      quotaProfiles: new QuotaProfileService(store),
      usage: new UsageService(store),
      bridges: new BridgeService(store, this.directory),
    };
    this.sweeper = new Sweeper(store, bunkers, this.config.stuckCreateMs);
    this.routes = [
      ...bunkerRoutes(this.services),
      ...fileRoutes(this.services),
      ...flowAuditRoutes(this.services),
      ...adminRoutes(this.services),
      ...quotaRoutes(this.services),
      ...bridgeRoutes(this.services),
      ...usageRoutes(this.services),
      ...metaRoutes(this.services, () => this.openapi),
    ];
    this.openapi = buildOpenApi(this.routes, VERSION);
    const jwt = opts.jwt && (opts.jwt.hs256Secret || opts.jwt.jwksUrl) ? new JwtVerifier(opts.jwt) : undefined;
    this.http = buildHttpServer({
      authenticator: new Authenticator(store, jwt, opts.workerToken),
      routes: this.routes,
      logger: opts.logger ?? false,
    });
    // Each background job runs on one controller at a time, whichever holds its lease.
    const lease: TickerLease = { store: store.leases, holder: newId('ctl') };
    if (this.config.traceJobs) lease.onTick = traceTick;
    this.tickers = [
      new Ticker(
        'sweeper',
        this.config.sweepIntervalMs,
        // What it ended, for --trace-jobs: bunkers past their timeouts, bridge reservations left by a dead controller.
        async () => ({
          bunkers: await this.sweeper.sweep(),
          stale_bridge_reservations: await this.services.bridges.sweepReserved(
            new Date(Date.now() - this.config.stuckCreateMs).toISOString(),
          ),
        }),
        lease,
      ),
      new Ticker('heartbeat-monitor', this.config.monitorIntervalMs, () => workers.monitor(), lease),
      new Ticker('usage', this.config.usageIntervalMs, () => this.usageTicker.tick(), lease),
    ];
  }

  static async open(opts: ControllerOptions): Promise<Controller> {
    const shared = await openSharedState(opts);
    let store: Store;
    try {
      store = await Store.open(opts.databaseUrl);
    } catch (err) {
      await closeSharedState(shared);
      throw err;
    }
    return new Controller(store, opts.blobStore ?? new LocalDirBlobStore(opts.blobDir), shared, opts);
  }

  /** Registers the built-in images listed in an image directory's catalog.json. */
  async registerCatalog(imageDir: string): Promise<string[]> {
    let entries: Array<{ name: string; sha256: string; size_bytes: number }>;
    try {
      entries = JSON.parse(await readFile(join(imageDir, 'catalog.json'), 'utf8'));
    } catch {
      return [];
    }
    // Controllers starting together would each insert the same platform image.
    await this.store.locks.with(
      'catalog',
      async () => {
        for (const e of entries) {
          await this.store.images.upsertPlatform({
            id: newId('im'),
            tenant_id: null,
            name: e.name,
            scope: 'platform',
            state: 'ready',
            sha256: e.sha256,
            size_bytes: e.size_bytes,
            created_at: new Date().toISOString(),
          });
        }
      },
      60_000,
    );
    return entries.map((e) => e.name);
  }

  /** Embedded mode: the in-process worker, reached without HTTP. */
  registerLocalWorker(workerId: string, api: WorkerApi): void {
    this.directory.registerLocal(workerId, api);
  }

  /** Embedded mode: heartbeats delivered by a direct call (validated like the HTTP route). */
  localLink(): ControllerLink {
    return {
      heartbeat: (hb) => this.services.workers.heartbeat(hb as schemas.HeartbeatBody),
      putAuditBatch: async (bunkerId, name, ndjson) => {
        await this.services.flowAudit.storeBatch(bunkerId, name, ndjson);
      },
    };
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    const address = await this.http.listen({ port, host });
    for (const t of this.tickers) t.start();
    return address;
  }

  async close(): Promise<void> {
    await Promise.all(this.tickers.map((t) => t.stop()));
    await this.http.close();
    await closeSharedState(this.shared);
    await this.store.close();
  }
}

async function openSharedState(opts: ControllerOptions): Promise<SharedState> {
  const url = opts.redisUrl;
  if (!url) {
    return {
      counters: opts.quotaCounters ?? new InProcessQuotaCounters(),
      changes: new InProcessChangeFeed(),
      heartbeats: new InProcessHeartbeats(),
    };
  }
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const counters = opts.quotaCounters ?? (await RedisQuotaCounters.connect(url));
    opened.push(counters);
    const changes = await RedisChangeFeed.connect(url);
    opened.push(changes);
    const heartbeats = await RedisHeartbeats.connect(url);
    return { counters, changes, heartbeats };
  } catch (err) {
    await Promise.all(opened.map((o) => o.close()));
    throw err;
  }
}

async function closeSharedState(s: SharedState): Promise<void> {
  await Promise.all([s.counters.close(), s.changes.close(), s.heartbeats.close()]);
}

/** `--trace-jobs`: one line per tick this controller ran, for checking who ran what and when. */
function traceTick(t: TickRecord): void {
  const result = JSON.stringify(t.result ?? null) ?? 'null';
  process.stderr.write(
    `[jobs] tick ${t.job} holder=${t.holder} start=${t.startedAt} end=${t.endedAt} result=${result.length > 2000 ? `${result.slice(0, 2000)}…` : result}\n`,
  );
}
