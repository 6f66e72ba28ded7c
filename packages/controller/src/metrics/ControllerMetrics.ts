import type { schemas } from '@scaibunker/core';
import type { Static } from '@sinclair/typebox';
import type { QuotaGauge } from '../quotas/QuotaService.js';
import type { Store } from '../store/Store.js';
import { Registry } from './Registry.js';

/** How long the store-backed gauges (bunkers by state, workers) are reused between scrapes. */
export const GAUGE_CACHE_MS = 5_000;

const ACTIVE_STATES = ['pending', 'provisioning', 'running', 'paused', 'snapshotting'] as const;

/** What the worker gauges read (WorkerService.list: rows, allocations and last heartbeats). */
export type WorkerLister = () => Promise<Array<Static<typeof schemas.Worker>>>;

/** What the quota gauges read (QuotaService.gauges: each assignment's counters against its caps). */
export type QuotaGaugeReader = () => Promise<QuotaGauge[]>;

/**
 * This controller's metrics (`GET /metrics`, `--metrics-port`). Counters and histograms are per
 * process (a scraper sums them over controllers); the bunker and worker gauges read the shared
 * database, so every controller reports the same values.
 */
export class ControllerMetrics {
  readonly registry = new Registry();
  readonly httpRequests = this.registry.counter(
    'scaibunker_http_requests_total',
    'API requests answered, by route pattern, method and status',
    ['route', 'method', 'status'],
  );
  readonly httpDuration = this.registry.histogram(
    'scaibunker_http_request_duration_seconds',
    'Time from a request arriving to its answer being sent, by route pattern and method',
    ['route', 'method'],
  );
  readonly execDuration = this.registry.histogram(
    'scaibunker_exec_duration_seconds',
    'Blocking execs, from the request to the result (result: ok, or error when the exec answered an API error)',
    ['result'],
  );
  readonly createDuration = this.registry.histogram(
    'scaibunker_create_duration_seconds',
    'Bunker creates, from the request to the bunker running (result: ok or error)',
    ['result'],
  );
  readonly jobTicks = this.registry.counter('scaibunker_job_ticks_total', 'Background job ticks this controller ran', ['job']);
  readonly jobFailures = this.registry.counter('scaibunker_job_failures_total', 'Background job ticks that failed (outages included)', [
    'job',
  ]);
  readonly bunkers = this.registry.gauge('scaibunker_bunkers', 'Bunkers that have not ended, by state (from the database)', ['state']);
  readonly workers = this.registry.gauge('scaibunker_workers', 'Workers by state', ['state']);
  readonly workerCapacity = this.registry.gauge(
    'scaibunker_worker_capacity',
    'What a worker offers, by resource (cpu_millicores, memory_mb, disk_mb)',
    ['worker', 'resource'],
  );
  readonly workerAllocated = this.registry.gauge(
    'scaibunker_worker_allocated',
    "What the worker's bunkers that have not ended requested, by resource",
    ['worker', 'resource'],
  );
  readonly workerBunkers = this.registry.gauge('scaibunker_worker_bunkers', 'Bunkers placed on a worker that have not ended', ['worker']);
  readonly heartbeatAge = this.registry.gauge(
    'scaibunker_worker_heartbeat_age_seconds',
    "Seconds since a worker's last heartbeat (absent: it never sent one)",
    ['worker'],
  );
  readonly tenantUsage = this.registry.gauge(
    'scaibunker_tenant_usage',
    "What a tenant's bunkers that have not ended hold, by resource (bunkers, cpu_millicores, memory_mb, disk_mb); tenants with none are absent",
    ['tenant', 'resource'],
  );
  readonly quotaUsage = this.registry.gauge(
    'scaibunker_quota_usage',
    'Quota counters of each assignment (bucket: user:<id>, group:<name>, group_per_user:<name> = its fullest user), by capped resource',
    ['tenant', 'bucket', 'resource'],
  );
  readonly quotaCap = this.registry.gauge(
    'scaibunker_quota_cap',
    "The strictest cap of the bucket's profiles, by resource (uncapped resources are absent)",
    ['tenant', 'bucket', 'resource'],
  );
  readonly imagePlacements = this.registry.counter(
    'scaibunker_image_cache_placements_total',
    'Bunkers placed by this controller (result: hit, the worker held the image; miss, it fetches the image at spawn)',
    ['result'],
  );
  readonly imageWarmFetches = this.registry.counter(
    'scaibunker_image_warm_fetches_total',
    'Images a worker was asked to keep warm, by where it got them (cache: it already had it, peer, proxy, or error)',
    ['source'],
  );
  readonly scrapeErrors = this.registry.counter(
    'scaibunker_metrics_collect_errors_total',
    'Scrapes where a gauge could not be read (the previous values were kept)',
  );
  private readonly startTime = this.registry.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch');
  private readonly rss = this.registry.gauge('process_resident_memory_bytes', 'Resident memory of the controller process');
  private lastHeartbeats = new Map<string, number>();
  private gaugesReadAt = 0;
  private gaugesReading: Promise<void> | undefined;
  private quotasReadAt = 0;
  private quotasReading: Promise<void> | undefined;

  constructor(
    private readonly store: Store,
    private readonly listWorkers: WorkerLister,
    private readonly log: (m: string) => void = (m) => console.error(m),
    private readonly readQuotas?: QuotaGaugeReader,
  ) {
    this.startTime.set(undefined, Math.round(Date.now() / 1000 - process.uptime()));
    this.registry.collect(() => this.rss.set(undefined, process.memoryUsage.rss()));
    this.registry.collect(() => this.readGauges());
    // Apart from the store gauges: counters unreachable (Redis down) keep the bunker and worker gauges fresh.
    this.registry.collect(() => this.readQuotaGauges());
    // The age is computed at each scrape from the (cached) heartbeat times, so it never stands still.
    this.registry.collect(() => {
      this.heartbeatAge.reset();
      const now = Date.now();
      for (const [worker, at] of this.lastHeartbeats) this.heartbeatAge.set({ worker }, Math.max(0, (now - at) / 1000));
    });
  }

  /** The exposition text; the store-backed gauges are re-read at most every 5 s. */
  render(): Promise<string> {
    return this.registry.render((err) => {
      this.scrapeErrors.inc();
      this.log(`[metrics] could not read a gauge: ${(err as Error).message}`);
    });
  }

  /** Records one background tick (Ticker's observer). */
  observeTick(job: string, ok: boolean): void {
    this.jobTicks.inc({ job });
    if (!ok) this.jobFailures.inc({ job });
  }

  /** Times `fn` into a `result`-labelled histogram. */
  async time<T>(h: ControllerMetrics['execDuration'], fn: () => Promise<T>): Promise<T> {
    const start = process.hrtime.bigint();
    let result = 'error';
    try {
      const value = await fn();
      result = 'ok';
      return value;
    } finally {
      h.observe({ result }, Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  private readGauges(): Promise<void> {
    if (Date.now() - this.gaugesReadAt < GAUGE_CACHE_MS) return Promise.resolve();
    // Concurrent scrapes share one read.
    this.gaugesReading ??= (async () => {
      try {
        const [byState, workers, byTenant] = await Promise.all([
          this.store.bunkers.countByState(),
          this.listWorkers(),
          this.store.bunkers.allocationsByTenant(),
        ]);
        this.tenantUsage.reset();
        for (const [tenant, u] of byTenant) {
          this.tenantUsage.set({ tenant, resource: 'bunkers' }, u.count);
          this.tenantUsage.set({ tenant, resource: 'cpu_millicores' }, u.cpu);
          this.tenantUsage.set({ tenant, resource: 'memory_mb' }, u.memory);
          this.tenantUsage.set({ tenant, resource: 'disk_mb' }, u.disk);
        }
        this.bunkers.reset();
        for (const s of ACTIVE_STATES) this.bunkers.set({ state: s }, byState.get(s) ?? 0);
        this.workers.reset();
        this.workerCapacity.reset();
        this.workerAllocated.reset();
        this.workerBunkers.reset();
        const heartbeats = new Map<string, number>();
        const states = new Map<string, number>([
          ['online', 0],
          ['draining', 0],
          ['offline', 0],
        ]);
        for (const w of workers) {
          states.set(w.state, (states.get(w.state) ?? 0) + 1);
          for (const r of ['cpu_millicores', 'memory_mb', 'disk_mb'] as const) {
            this.workerCapacity.set({ worker: w.id, resource: r }, w.capacity[r]);
            this.workerAllocated.set({ worker: w.id, resource: r }, w.allocated[r]);
          }
          this.workerBunkers.set({ worker: w.id }, w.bunker_count);
          if (w.last_heartbeat_at) heartbeats.set(w.id, Date.parse(w.last_heartbeat_at));
        }
        for (const [state, n] of states) this.workers.set({ state }, n);
        this.lastHeartbeats = heartbeats;
        this.gaugesReadAt = Date.now();
      } finally {
        this.gaugesReading = undefined;
      }
    })();
    return this.gaugesReading;
  }

  private readQuotaGauges(): Promise<void> {
    const read = this.readQuotas;
    if (!read || Date.now() - this.quotasReadAt < GAUGE_CACHE_MS) return Promise.resolve();
    this.quotasReading ??= (async () => {
      try {
        const gauges = await read();
        this.quotaUsage.reset();
        this.quotaCap.reset();
        for (const g of gauges) {
          const labels = { tenant: g.tenantId, bucket: g.bucket, resource: g.resource };
          this.quotaUsage.set(labels, g.current);
          this.quotaCap.set(labels, g.cap);
        }
        this.quotasReadAt = Date.now();
      } finally {
        this.quotasReading = undefined;
      }
    })();
    return this.quotasReading;
  }
}
