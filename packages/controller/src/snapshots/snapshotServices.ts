import type { AuditTrail } from '../audit/AuditTrail.js';
import type { BlobStore } from '../blobs/BlobStore.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { QuotaService } from '../quotas/QuotaService.js';
import type { Store } from '../store/Store.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';
import { ForkService } from './ForkService.js';
import { Passivation } from './Passivation.js';
import { SnapshotService } from './SnapshotService.js';

/** The snapshot services, wired to each other and to the bunker lifecycle. */
export function snapshotServices(
  store: Store,
  bunkers: BunkerService,
  workers: WorkerDirectory,
  quotas: QuotaService,
  blobs: BlobStore,
  audit: AuditTrail,
): { snapshots: SnapshotService; passivation: Passivation; forks: ForkService } {
  const snapshots = new SnapshotService(store, bunkers, workers, quotas, blobs, audit);
  return { snapshots, passivation: new Passivation(store, bunkers, snapshots, audit), forks: new ForkService(bunkers, snapshots) };
}
