import { AdminApi } from './AdminApi.js';
import { AuditApi } from './AuditApi.js';
import { AvailabilityGroupsApi } from './AvailabilityGroupsApi.js';
import { BridgesApi } from './BridgesApi.js';
import { HttpTransport } from './HttpTransport.js';
import { ImagesApi } from './ImagesApi.js';
import { QuotasApi } from './QuotasApi.js';
import { SnapshotsApi } from './SnapshotsApi.js';
import { UsageApi } from './UsageApi.js';
import { WorkersApi } from './WorkersApi.js';

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8080';

export interface ClientOptions {
  /** Server root; default env SCAIBUNKER_URL, else http://127.0.0.1:8080. */
  baseUrl?: string;
  /** API key (or JWT); default env SCAIBUNKER_API_KEY. */
  apiKey?: string;
  /** A fetch to send every request through instead of the SDK's own HTTP client (tests, proxies). */
  fetch?: typeof fetch;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** A connection to one ScaiBunker API: credentials plus the non-bunker endpoints. */
export class ScaiBunkerClient {
  readonly baseUrl: string;
  /** The credential this client sends (undefined: none). */
  readonly apiKey: string | undefined;
  /** @internal the request layer shared by everything this client creates */
  readonly transport: HttpTransport;
  readonly admin: AdminApi;
  readonly workers: WorkersApi;
  readonly images: ImagesApi;
  readonly quotas: QuotasApi;
  readonly bridges: BridgesApi;
  readonly availabilityGroups: AvailabilityGroupsApi;
  readonly usage: UsageApi;
  /** The tenant's audit trail (`scaibunker:audit:read`). */
  readonly audit: AuditApi;
  /** The tenant's snapshots (taken with `bunker.snapshot()`). */
  readonly snapshots: SnapshotsApi;

  constructor(opts: ClientOptions = {}) {
    const env = process.env;
    this.apiKey = opts.apiKey ?? env.SCAIBUNKER_API_KEY;
    this.transport = new HttpTransport({
      baseUrl: opts.baseUrl ?? env.SCAIBUNKER_URL ?? DEFAULT_BASE_URL,
      apiKey: this.apiKey,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.headers ? { headers: opts.headers } : {}),
    });
    this.baseUrl = this.transport.baseUrl;
    this.admin = new AdminApi(this.transport);
    this.workers = new WorkersApi(this.transport);
    this.images = new ImagesApi(this.transport);
    this.quotas = new QuotasApi(this.transport);
    this.bridges = new BridgesApi(this.transport);
    this.availabilityGroups = new AvailabilityGroupsApi(this.transport);
    this.usage = new UsageApi(this.transport);
    this.audit = new AuditApi(this.transport);
    this.snapshots = new SnapshotsApi(this.transport);
  }

  /** Accepts a client, options for a new one, or nothing (environment defaults). */
  static from(clientOrOptions?: ScaiBunkerClient | ClientOptions): ScaiBunkerClient {
    return clientOrOptions instanceof ScaiBunkerClient ? clientOrOptions : new ScaiBunkerClient(clientOrOptions);
  }
}
