import type { HttpTransport } from './HttpTransport.js';
import type {
  CreateQuotaProfileBody,
  QuotaAssignment,
  QuotaAssignmentKind,
  QuotaProfile,
  QuotaUsageItem,
  UpdateQuotaProfileBody,
} from './types.js';

const BASE = '/v1/modules/scaibunker/quota-profiles';

/**
 * Quota profiles, their assignments (need `scaibunker:admin:tenant`: the caller's tenant, or
 * `scaibunker:admin`: any tenant) and usage (`scaibunker:read`).
 */
export class QuotasApi {
  constructor(private readonly transport: HttpTransport) {}

  /** Creates a profile; platform admins may set `tenant_id`. */
  create(body: CreateQuotaProfileBody): Promise<QuotaProfile> {
    return this.transport.json('post', BASE, { body });
  }

  /** The caller's tenant's profiles; platform admins: every tenant's, or one tenant's. */
  async list(opts: { tenantId?: string } = {}): Promise<QuotaProfile[]> {
    return (await this.transport.json('get', BASE, { query: opts.tenantId ? { tenant_id: opts.tenantId } : {} })).items;
  }

  get(profileId: string): Promise<QuotaProfile> {
    return this.transport.json('get', `${BASE}/{id}`, { path: { id: profileId } });
  }

  /** Changes the fields given (`null` clears a cap or list); affects later creates only. */
  update(profileId: string, patch: UpdateQuotaProfileBody): Promise<QuotaProfile> {
    return this.transport.json('patch', `${BASE}/{id}`, { path: { id: profileId }, body: patch });
  }

  /** Deletes the profile and its assignments; running bunkers keep their charge until they end. */
  async delete(profileId: string): Promise<void> {
    await this.transport.json('delete', `${BASE}/{id}`, { path: { id: profileId } });
  }

  /** Assigns the profile to a user (`user`), a group's shared bucket (`group`) or each member of a group (`group_per_user`). */
  assign(profileId: string, kind: QuotaAssignmentKind, subject: string): Promise<QuotaAssignment> {
    return this.transport.json('post', `${BASE}/{id}/assignments`, { path: { id: profileId }, body: { kind, subject } });
  }

  async unassign(profileId: string, assignmentId: string): Promise<void> {
    await this.transport.json('delete', `${BASE}/{id}/assignments/{assignment_id}`, {
      path: { id: profileId, assignment_id: assignmentId },
    });
  }

  /** Current / cap / remaining per bucket: the caller's own buckets, or every bucket of the tenant for its admins. */
  async usage(opts: { tenantId?: string } = {}): Promise<QuotaUsageItem[]> {
    return (await this.transport.json('get', `${BASE}/usage`, { query: opts.tenantId ? { tenant_id: opts.tenantId } : {} })).items;
  }
}
