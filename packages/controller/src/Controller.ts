import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { type ControllerLink, newId, type schemas, type WorkerApi, WorkerError } from '@scaibunker/core';
import type { FastifyInstance } from 'fastify';
import { AuditService } from './audit/AuditService.js';
import { AuditTrail } from './audit/AuditTrail.js';
import { AuditWriter } from './audit/AuditWriter.js';
import { Authenticator } from './auth/Authenticator.js';
import { type JwtConfig, JwtVerifier } from './auth/JwtVerifier.js';
import { AvailabilityGroupService } from './availability/AvailabilityGroupService.js';
import { type BlobStore, blobKeys } from './blobs/BlobStore.js';
import { type GuardedBlobStore, guardBlobStore } from './blobs/GuardedBlobStore.js';
import { LocalDirBlobStore } from './blobs/LocalDirBlobStore.js';
import { BridgeService } from './bridges/BridgeService.js';
import { BunkerService } from './bunkers/BunkerService.js';
import { ExecLogJournal } from './bunkers/ExecLogJournal.js';
import { ExecService } from './bunkers/ExecService.js';
import { FileService } from './bunkers/FileService.js';
import { FlowAuditService } from './bunkers/FlowAuditService.js';
import { OutputStorage } from './bunkers/OutputStorage.js';
import { ProcessFollower } from './bunkers/ProcessFollower.js';
import { ProcessService } from './bunkers/ProcessService.js';
import { CodeService } from './code/CodeService.js';
import { type ControllerConfig, DEFAULT_CONFIG, validateConfig } from './config.js';
import { E2b } from './e2b/E2b.js';
import { DependencyState } from './health/DependencyState.js';
import { diskCheck, Readiness } from './health/Readiness.js';
import { buildHttpServer } from './http/HttpServer.js';
import { buildOpenApi } from './http/openapi.js';
import type { RouteDef } from './http/Route.js';
import { type RequestLogFormat, requestObserver } from './http/requestLog.js';
import { adminRoutes } from './http/routes/adminRoutes.js';
import { auditRoutes } from './http/routes/auditRoutes.js';
import { availabilityGroupRoutes } from './http/routes/availabilityGroupRoutes.js';
import { bridgeRoutes } from './http/routes/bridgeRoutes.js';
import { bunkerRoutes } from './http/routes/bunkerRoutes.js';
import { codeRoutes } from './http/routes/codeRoutes.js';
import { consoleRoutes } from './http/routes/consoleRoutes.js';
import { e2bRoutes } from './http/routes/e2bRoutes.js';
import { fileRoutes } from './http/routes/fileRoutes.js';
import { flowAuditRoutes } from './http/routes/flowAuditRoutes.js';
import { imageRoutes } from './http/routes/imageRoutes.js';
import { metaRoutes } from './http/routes/metaRoutes.js';
import { portRoutes } from './http/routes/portRoutes.js';
import { processRoutes } from './http/routes/processRoutes.js';
import { quotaRoutes } from './http/routes/quotaRoutes.js';
import type { Services } from './http/routes/Services.js';
import { snapshotRoutes } from './http/routes/snapshotRoutes.js';
import { capabilityRoutes, storageRoutes } from './http/routes/storageRoutes.js';
import { usageRoutes } from './http/routes/usageRoutes.js';
import { ImageBakery } from './images/ImageBakery.js';
import { ImageScanning } from './images/ImageScanning.js';
import { ImageService } from './images/ImageService.js';
import { ImageWarming } from './images/ImageWarming.js';
import { REGISTRY_CATALOG } from './images/registryCatalog.js';
import { chooseScanner } from './images/scan/chooseScanner.js';
import { Sweeper } from './jobs/Sweeper.js';
import { Ticker, type TickerLease, type TickRecord } from './jobs/Ticker.js';
import { UsageTicker } from './jobs/UsageTicker.js';
import type { ChangeFeed } from './live/ChangeFeed.js';
import { InProcessChangeFeed } from './live/InProcessChangeFeed.js';
import { RedisChangeFeed } from './live/RedisChangeFeed.js';
import { ControllerMetrics, type WorkerLister } from './metrics/ControllerMetrics.js';
import { METRICS_CONTENT_TYPE } from './metrics/Registry.js';
import { PortProxy } from './ports/PortProxy.js';
import { PortTunnels } from './ports/PortTunnels.js';
import { PreviewGateway } from './ports/PreviewGateway.js';
import { PreviewService } from './ports/PreviewService.js';
import { TunnelBandwidth } from './ports/TunnelBandwidth.js';
import { TunnelLimiter } from './ports/TunnelLimiter.js';
import { InProcessQuotaCounters } from './quotas/InProcessQuotaCounters.js';
import type { QuotaCounters } from './quotas/QuotaCounters.js';
import { QuotaProfileService } from './quotas/QuotaProfileService.js';
import { QuotaService } from './quotas/QuotaService.js';
import { RedisQuotaCounters } from './quotas/RedisQuotaCounters.js';
import { InProcessTicketLedger } from './shell/InProcessTicketLedger.js';
import { RedisTicketLedger } from './shell/RedisTicketLedger.js';
import { ShellTickets } from './shell/ShellTickets.js';
import { TerminalBridge } from './shell/TerminalBridge.js';
import type { TicketLedger } from './shell/TicketLedger.js';
import { snapshotServices } from './snapshots/snapshotServices.js';
import { workerGrant } from './storage/StorageGrant.js';
import { StorageService } from './storage/StorageService.js';
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
  images?: ImageOptions;
  /** One line per API request on stderr (method, route, status, duration, tenant, actor, request id); none by default. */
  requestLog?: RequestLogFormat | undefined;
  /**
   * Where exec-log rows wait while the database is down (replayed when it is back). One file
   * per controller process, kept across its restarts (the CLI names it after the port); none:
   * an exec whose row cannot be written fails with STORE_UNAVAILABLE.
   */
  execLogJournal?: string;
}

/** Baking and scanning registered images. */
export interface ImageOptions {
  /** Scratch space for bakes and scans (default: `image-work` beside the blob directory). */
  workDir?: string;
  /** Local sources must be under it (default: `image-imports` beside the blob directory). */
  importDir?: string;
  /** Injected as /.scaibunker/agent (default: the agent built in this checkout). */
  agentBinary?: string;
  /** `host:port` of registries reached over plain http. */
  insecureRegistries?: string[];
  /** OSV advisories for the built-in scanner (Trivy is used instead when installed). */
  advisoryPath?: string;
}

const DEFAULT_AGENT_BINARY = fileURLToPath(new URL('../../agent/build/scaibunker-agent', import.meta.url));

/** What several controllers share besides the database, all in Redis (in-process when embedded). */
interface SharedState {
  counters: QuotaCounters;
  changes: ChangeFeed;
  heartbeats: Heartbeats;
  /** Spent shell tickets. */
  tickets: TicketLedger;
  /** Redis round trip for readiness (absent when the state is in-process). */
  ping?: () => Promise<void>;
}

/** The composition root of the controller: store, services, HTTP API and background jobs. */
export class Controller {
  readonly http: FastifyInstance;
  readonly services: Services;
  /** The E2B SDK's API (docs/E2B.md). */
  readonly e2b: E2b;
  readonly sweeper: Sweeper;
  /** Meters running and paused bunkers into the usage table (tests call `tick()` directly). */
  readonly usageTicker: UsageTicker;
  readonly config: ControllerConfig;
  readonly routes: RouteDef[];
  /** Generated once from the same route list (and schemas) that the server validates with. */
  readonly openapi: unknown;
  private readonly directory: WorkerDirectory;
  private readonly tickers: Ticker[];
  /** Background execs' output and completion (tests call `reconcile()` directly). */
  readonly followers: ProcessFollower;
  /** Bakes registered images (tests call `drain()` directly). */
  readonly bakery: ImageBakery;
  readonly imageScanning: ImageScanning;
  /** `GET /readyz`: the database, Redis, the blob store and the data disk, probed now. */
  readonly readiness: Readiness;
  /** Failures with codes: BLOB_STORE_UNAVAILABLE, INSUFFICIENT_STORAGE. */
  private readonly guardedBlobs: GuardedBlobStore;
  /** Exec, file and bunker events, group-committed; flushed on close. */
  readonly auditTrail: AuditTrail;
  /** `GET /metrics` and `--metrics-port`. */
  readonly metrics: ControllerMetrics;
  private metricsServer: Server | undefined;

  private constructor(
    readonly store: Store,
    /** The blob store as given (what `open` was passed); everything here uses it guarded. */
    readonly blobs: BlobStore,
    private readonly shared: SharedState,
    opts: ControllerOptions,
  ) {
    this.config = { ...DEFAULT_CONFIG, ...opts.config };
    const guarded = guardBlobStore(this.blobs);
    this.guardedBlobs = guarded;
    const dataDir = dirname(opts.blobDir);
    const outputs = new OutputStorage(store, guarded, {
      perExecBytes: this.config.outputStoreCapBytes,
      perTenantBytes: this.config.outputStoreTenantCapBytes,
      retentionMs: this.config.outputRetentionMs,
      diskReserveBytes: this.config.diskReserveBytes,
      localDir: this.blobs instanceof LocalDirBlobStore ? dataDir : undefined,
    });
    this.directory = new WorkerDirectory(store, opts.workerToken);
    const scheduler = new Scheduler(store);
    const quotas = new QuotaService(store, shared.counters, undefined, outputs);
    this.usageTicker = new UsageTicker(store, this.directory, this.config.usageIntervalMs);
    this.auditTrail = new AuditTrail(new AuditWriter(store.audit));
    // The worker gauges read the worker list through WorkerService, made below.
    let listWorkers: WorkerLister = async () => [];
    this.metrics = new ControllerMetrics(
      store,
      () => listWorkers(),
      undefined,
      () => quotas.gauges(),
    );
    const bunkers = new BunkerService(store, scheduler, this.directory, quotas, this.usageTicker, this.auditTrail, this.metrics);
    // Every committed bunker-row change drops that row from every controller's running-bunker cache.
    store.bunkers.onChange((id) => shared.changes.publish('bunker', id));
    shared.changes.subscribe((topic, id) => {
      if (topic === 'bunker') bunkers.running.invalidate(id);
    });
    const workers = new WorkerService(store, bunkers, this.config, shared.heartbeats, this.directory);
    listWorkers = () => workers.list();
    const jwt = opts.jwt && (opts.jwt.hs256Secret || opts.jwt.jwksUrl) ? new JwtVerifier(opts.jwt) : undefined;
    const authenticator = new Authenticator(store, jwt, opts.workerToken);
    // A revoked key leaves every controller's key cache at once (its own revocations synchronously).
    shared.changes.subscribe((topic, id) => {
      if (topic === 'api_key') authenticator.invalidateApiKey(id);
    });
    const holder = newId('ctl');
    const imageWork = opts.images?.workDir ?? join(dirname(opts.blobDir), 'image-work');
    const scanning = new ImageScanning(
      store,
      guarded,
      chooseScanner({ ...(opts.images?.advisoryPath ? { advisoryPath: opts.images.advisoryPath } : {}) }),
      imageWork,
    );
    this.bakery = new ImageBakery(store, guarded, scanning, {
      holder,
      workDir: imageWork,
      agentBinary: opts.images?.agentBinary ?? DEFAULT_AGENT_BINARY,
      insecureRegistries: opts.images?.insecureRegistries ?? [],
    });
    this.imageScanning = scanning;
    const warming = new ImageWarming(store, this.directory, undefined, (source) => this.metrics.imageWarmFetches.inc({ source }));
    workers.onCachedImages((workerId, cached) => warming.onCachedImages(workerId, cached));
    const exec = new ExecService(
      store,
      bunkers,
      guarded,
      this.config,
      outputs,
      opts.execLogJournal ? new ExecLogJournal(opts.execLogJournal) : undefined,
      this.auditTrail,
      this.metrics,
    );
    this.followers = new ProcessFollower(store, this.directory, guarded, exec.logs, this.config, outputs);
    const processes = new ProcessService(store, bunkers, exec.logs, this.followers, this.auditTrail);
    this.services = {
      store,
      bunkers,
      exec,
      processes,
      terminals: new TerminalBridge(this.config.shellGraceMs),
      tickets: ShellTickets.fromWorkerToken(opts.workerToken, shared.tickets),
      files: new FileService(bunkers, this.config, this.auditTrail),
      flowAudit: new FlowAuditService(bunkers, guarded),
      tenants: new TenantService(store, shared.changes),
      workers,
      quotas,
      quotaProfiles: new QuotaProfileService(store),
      usage: new UsageService(store, outputs),
      bridges: new BridgeService(store, this.directory),
      storage: new StorageService(guarded, authenticator.storage.capabilities),
      images: new ImageService(store, guarded, {
        importDir: opts.images?.importDir ?? join(dirname(opts.blobDir), 'image-imports'),
        onRegistered: () => this.bakery.kick(),
      }),
      availabilityGroups: new AvailabilityGroupService(store, warming),
      audit: new AuditService(store, bunkers),
      ports: new PortProxy(
        new PortTunnels(bunkers, new TunnelLimiter(this.config.maxTunnelsPerBunker), new TunnelBandwidth()),
        this.config.tunnelIdleMs,
        this.auditTrail,
      ),
      previews: new PreviewService(store, bunkers, this.config, this.auditTrail),
      ...snapshotServices(store, bunkers, this.directory, quotas, guarded, this.auditTrail),
      code: new CodeService(processes, this.auditTrail),
    };
    this.sweeper = new Sweeper(store, bunkers, this.config.stuckCreateMs, this.services.passivation);
    this.e2b = new E2b({
      store,
      authenticator,
      workerToken: opts.workerToken,
      bunkers,
      processes: this.services.processes,
      files: this.services.files,
      exec,
      passivation: this.services.passivation,
      images: this.services.images,
      code: this.services.code,
      previewDomain: this.config.previewDomain,
    });
    this.routes = [
      ...bunkerRoutes(this.services),
      ...processRoutes(this.services),
      ...portRoutes(this.services),
      ...snapshotRoutes(this.services),
      ...codeRoutes(this.services),
      ...fileRoutes(this.services),
      ...flowAuditRoutes(this.services),
      ...auditRoutes(this.services),
      ...adminRoutes(this.services),
      ...quotaRoutes(this.services),
      ...bridgeRoutes(this.services),
      ...usageRoutes(this.services),
      ...imageRoutes(this.services),
      ...availabilityGroupRoutes(this.services),
      ...e2bRoutes(this.e2b),
      ...storageRoutes(this.services.storage),
      ...capabilityRoutes(this.services.storage),
      ...consoleRoutes(),
      ...metaRoutes(
        () => this.openapi,
        () => this.readiness.report(),
        () => this.metrics.render(),
      ),
    ];
    this.openapi = buildOpenApi(this.routes, VERSION);
    const ping = shared.ping;
    this.readiness = new Readiness([
      { name: 'database', probe: async () => void (await store.ping()) },
      { name: 'live_state', probe: async () => (ping ? void (await ping()) : { kind: 'in-process' }) },
      // An absent key is an answer: the store is reachable.
      { name: 'blob_store', probe: async () => void (await guarded.stat('scaibunker/readyz')) },
      diskCheck(dataDir, this.config.diskReserveBytes),
    ]);
    this.http = buildHttpServer({
      authenticator,
      routes: this.routes,
      tickets: this.services.tickets,
      hostRouter: new PreviewGateway(this.services.previews, this.services.ports, this.config.previewScheme === 'https', this.e2b.tokens),
      logger: opts.logger ?? false,
      observe: requestObserver(this.metrics, opts.requestLog),
    });
    // Each background job runs on one controller at a time, whichever holds its lease.
    const lease: TickerLease = { store: store.leases, holder };
    if (this.config.traceJobs) lease.onTick = traceTick;
    lease.observe = (job, ok) => this.metrics.observeTick(job, ok);
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
      new Ticker('image-bake', this.config.imageBakeIntervalMs, () => this.bakery.drain(), lease),
      new Ticker('image-scan', this.config.imageScanIntervalMs, () => this.imageScanning.drain(), lease),
      new Ticker('exec-reconcile', this.config.execReconcileIntervalMs, () => this.followers.reconcile(), lease),
      new Ticker(
        'snapshot-cleanup',
        this.config.snapshotCleanupIntervalMs,
        () => this.services.snapshots.cleanup(this.config.snapshotStaleMs),
        lease,
      ),
      new Ticker('output-retention', this.config.outputRetentionIntervalMs, async () => ({ swept: await outputs.sweep() }), lease),
      new Ticker(
        'image-rescan',
        this.config.imageRescanCheckMs,
        async () => ({ marked: await this.imageScanning.requestDailyRescans() }),
        lease,
      ),
    ];
  }

  static async open(opts: ControllerOptions): Promise<Controller> {
    // Before anything is opened: a refused configuration leaves nothing to close.
    validateConfig({ ...DEFAULT_CONFIG, ...opts.config });
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

  /**
   * Registers the built-in images listed in an image directory's catalog.json. With `publish`,
   * also uploads each one missing from the blob store (checksum declared), so workers on other
   * hosts can fetch them through the storage proxy; `serve`'s own worker reads the directory.
   */
  async registerCatalog(imageDir: string, opts: { publish?: boolean } = {}): Promise<string[]> {
    let entries: Array<{ name: string; sha256: string; size_bytes: number; file?: string }>;
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
    if (opts.publish) {
      for (const e of entries) {
        if (await this.guardedBlobs.stat(blobKeys.image(e.sha256))) continue;
        const file = join(imageDir, e.file ?? `${e.sha256}.ext4`);
        await this.services.storage.write(workerGrant, blobKeys.image(e.sha256), createReadStream(file), e.sha256);
      }
    }
    return entries.map((e) => e.name);
  }

  /** Registers the OCI-sourced built-in catalog (`--catalog-from-registries`), once across controllers. */
  async registerRegistryCatalog(entries: ReadonlyArray<{ name: string; ref: string }> = REGISTRY_CATALOG): Promise<string[]> {
    return this.store.locks.with('catalog', () => this.services.images.registerCatalog(entries), 60_000);
  }

  /** Embedded mode: the in-process worker, reached without HTTP. */
  registerLocalWorker(workerId: string, api: WorkerApi): void {
    this.directory.registerLocal(workerId, api);
  }

  /** Embedded mode: heartbeats delivered by a direct call (validated like the HTTP route). */
  localLink(): ControllerLink {
    return {
      heartbeat: (hb) => this.services.workers.heartbeat(hb),
      putAuditBatch: async (bunkerId, name, ndjson) => {
        await this.services.storage.write(workerGrant, blobKeys.auditBatch(bunkerId, name), Readable.from([ndjson]), undefined);
      },
      // The embedded controller has exactly one worker — the one asking — so it has no peer
      // to fetch an image from: always storage.
      imagePeers: async () => [],
      // The worker hashed the archive on its way out (the snapshot row keeps that sha256), so it
      // goes straight to the blob store rather than through the proxy's hashing write.
      putSnapshot: async (snapshotId, archive) => {
        await this.guardedBlobs.put(blobKeys.snapshot(snapshotId), archive);
      },
      openSnapshot: async (snapshotId) => {
        const stream = await this.guardedBlobs.get(blobKeys.snapshot(snapshotId));
        if (!stream) throw new WorkerError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshotId} is not in storage`);
        return stream;
      },
      openImage: async (sha256, from = 0) => {
        // From `from` on: the rest of a download that was cut (the blob store reads the range).
        const opened = await this.guardedBlobs.open(blobKeys.image(sha256), from > 0 ? { start: from } : undefined);
        // IMAGE_NOT_CACHED is how a ControllerLink says "not in storage" (see its interface).
        if (!opened) throw new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is not in storage`);
        return opened.body;
      },
    };
  }

  async listen(port: number, host = '127.0.0.1'): Promise<string> {
    const address = await this.http.listen({ port, host });
    for (const t of this.tickers) t.start();
    // Background execs a previous controller followed are adopted now, not a whole interval later.
    void this.tickers.find((t) => t.name === 'exec-reconcile')?.tick();
    return address;
  }

  /**
   * `--metrics-port`: `GET /metrics` with no authentication on a port of its own (127.0.0.1 by
   * default), for scrapers that hold no API key. Anything else there is 404.
   */
  async listenMetrics(port: number, host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
        return;
      }
      this.metrics.render().then(
        (text) => res.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    });
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.metricsServer = server;
    const a = server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    const metricsServer = this.metricsServer;
    if (metricsServer) {
      metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
    }
    await this.bakery.close();
    await Promise.all(this.tickers.map((t) => t.stop()));
    this.followers.close();
    this.services.terminals.close();
    this.e2b.close();
    await this.http.close();
    await this.services.bunkers.writeActivity();
    await this.services.exec.close();
    // After the HTTP server: no request can queue an event once the writer has drained.
    await this.auditTrail.close();
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
      tickets: new InProcessTicketLedger(),
    };
  }
  const opened: Array<{ close(): Promise<void> }> = [];
  try {
    const health = new DependencyState('redis');
    const counters = opts.quotaCounters ?? (await RedisQuotaCounters.connect(url, { state: health }));
    opened.push(counters);
    const changes = await RedisChangeFeed.connect(url);
    opened.push(changes);
    const heartbeats = await RedisHeartbeats.connect(url, health);
    opened.push(heartbeats);
    const tickets = await RedisTicketLedger.connect(url, health);
    return { counters, changes, heartbeats, tickets, ping: () => heartbeats.ping() };
  } catch (err) {
    await Promise.all(opened.map((o) => o.close()));
    throw err;
  }
}

async function closeSharedState(s: SharedState): Promise<void> {
  await Promise.all([s.counters.close(), s.changes.close(), s.heartbeats.close(), s.tickets.close()]);
}

/** `--trace-jobs`: one line per tick this controller ran, for checking who ran what and when. */
function traceTick(t: TickRecord): void {
  const result = JSON.stringify(t.result ?? null) ?? 'null';
  process.stderr.write(
    `[jobs] tick ${t.job} holder=${t.holder} start=${t.startedAt} end=${t.endedAt} result=${result.length > 2000 ? `${result.slice(0, 2000)}…` : result}\n`,
  );
}
