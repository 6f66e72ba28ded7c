import type { AuditService } from '../../audit/AuditService.js';
import type { AvailabilityGroupService } from '../../availability/AvailabilityGroupService.js';
import type { BridgeService } from '../../bridges/BridgeService.js';
import type { BunkerService } from '../../bunkers/BunkerService.js';
import type { ExecService } from '../../bunkers/ExecService.js';
import type { FileService } from '../../bunkers/FileService.js';
import type { FlowAuditService } from '../../bunkers/FlowAuditService.js';
import type { ProcessService } from '../../bunkers/ProcessService.js';
import type { CodeService } from '../../code/CodeService.js';
import type { ImageService } from '../../images/ImageService.js';
import type { PortProxy } from '../../ports/PortProxy.js';
import type { PreviewService } from '../../ports/PreviewService.js';
import type { QuotaProfileService } from '../../quotas/QuotaProfileService.js';
import type { QuotaService } from '../../quotas/QuotaService.js';
import type { ShellTickets } from '../../shell/ShellTickets.js';
import type { TerminalBridge } from '../../shell/TerminalBridge.js';
import type { ForkService } from '../../snapshots/ForkService.js';
import type { Passivation } from '../../snapshots/Passivation.js';
import type { SnapshotService } from '../../snapshots/SnapshotService.js';
import type { StorageService } from '../../storage/StorageService.js';
import type { Store } from '../../store/Store.js';
import type { TenantService } from '../../tenants/TenantService.js';
import type { UsageService } from '../../usage/UsageService.js';
import type { WorkerService } from '../../workers/WorkerService.js';

/** What route modules may call: services, and the store only for plain reads. */
export interface Services {
  store: Store;
  bunkers: BunkerService;
  exec: ExecService;
  processes: ProcessService;
  terminals: TerminalBridge;
  tickets: ShellTickets;
  files: FileService;
  flowAudit: FlowAuditService;
  tenants: TenantService;
  workers: WorkerService;
  quotas: QuotaService;
  quotaProfiles: QuotaProfileService;
  usage: UsageService;
  bridges: BridgeService;
  storage: StorageService;
  images: ImageService;
  availabilityGroups: AvailabilityGroupService;
  audit: AuditService;
  /** Proxied requests to ports inside bunkers. */
  ports: PortProxy;
  previews: PreviewService;
  snapshots: SnapshotService;
  passivation: Passivation;
  forks: ForkService;
  code: CodeService;
}

export const API = '/v1/modules/scaibunker';
