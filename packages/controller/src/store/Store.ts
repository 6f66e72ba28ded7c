import type { Kysely } from 'kysely';
import { DependencyState } from '../health/DependencyState.js';
import { AuditStore } from './AuditStore.js';
import { AvailabilityGroupStore } from './AvailabilityGroupStore.js';
import { BridgeStore } from './BridgeStore.js';
import { BunkerStore } from './BunkerStore.js';
import { ExecLogStore } from './ExecLogStore.js';
import { ImageCacheStore } from './ImageCacheStore.js';
import { ImageStore } from './ImageStore.js';
import { JobLeaseStore } from './JobLeaseStore.js';
import { LockStore } from './LockStore.js';
import { type DialectName, openDatabase } from './openDatabase.js';
import { PreviewStore } from './PreviewStore.js';
import { QuotaStore } from './QuotaStore.js';
import { SnapshotStore } from './SnapshotStore.js';
import type { Database } from './schema.js';
import { TenantStore } from './TenantStore.js';
import { UsageStore } from './UsageStore.js';
import { WorkerStore } from './WorkerStore.js';

/** The only place with SQL: one repository per aggregate over one Kysely instance. */
export class Store {
  readonly tenants: TenantStore;
  readonly bunkers: BunkerStore;
  readonly execLogs: ExecLogStore;
  readonly workers: WorkerStore;
  readonly images: ImageStore;
  readonly audit: AuditStore;
  readonly leases: JobLeaseStore;
  /** Named locks across controllers (PostgreSQL advisory locks, MySQL GET_LOCK). */
  readonly locks: LockStore;
  readonly quotas: QuotaStore;
  readonly usage: UsageStore;
  readonly bridges: BridgeStore;
  readonly imageCache: ImageCacheStore;
  readonly availabilityGroups: AvailabilityGroupStore;
  readonly previews: PreviewStore;
  readonly snapshots: SnapshotStore;

  private constructor(
    readonly db: Kysely<Database>,
    readonly dialect: DialectName,
    /** Whether the database answers, as the last queries saw it (`/readyz`, the background jobs). */
    readonly health: DependencyState,
  ) {
    this.tenants = new TenantStore(db);
    this.bunkers = new BunkerStore(db);
    this.execLogs = new ExecLogStore(db);
    this.workers = new WorkerStore(db);
    this.images = new ImageStore(db);
    this.audit = new AuditStore(db);
    this.leases = new JobLeaseStore(db);
    this.locks = new LockStore(db, dialect);
    this.quotas = new QuotaStore(db);
    this.usage = new UsageStore(db);
    this.bridges = new BridgeStore(db);
    this.imageCache = new ImageCacheStore(db);
    this.availabilityGroups = new AvailabilityGroupStore(db);
    this.previews = new PreviewStore(db);
    this.snapshots = new SnapshotStore(db);
  }

  static async open(url: string): Promise<Store> {
    const health = new DependencyState('database');
    const { db, dialect } = await openDatabase(url, health);
    return new Store(db, dialect, health);
  }

  /** One round trip, for readiness: throws STORE_UNAVAILABLE when the database does not answer. */
  async ping(): Promise<void> {
    await this.db.selectFrom('job_leases').select('job').limit(1).execute();
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}
