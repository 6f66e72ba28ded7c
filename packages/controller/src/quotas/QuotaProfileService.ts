import { ApiError, newId, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { Store } from '../store/Store.js';
import type { QuotaProfileRow } from '../store/schema.js';
import { recordAudit } from '../tenants/audit.js';
import { isPlatformAdmin, resolveTenant } from './access.js';
import { assignmentToApi, profileToApi } from './toApi.js';

const LIST_FIELDS = ['allowed_lifecycles', 'allowed_images', 'allowed_network_profiles'] as const;
const CAP_FIELDS = ['max_bunkers', 'max_cpu_millicores', 'max_memory_mb', 'max_disk_mb', 'max_gpu_count', 'max_snapshot_bytes'] as const;

/**
 * Quota profiles and their assignments. Tenant admins manage their own tenant's; platform admins
 * any tenant's. Another tenant's profile is QUOTA_PROFILE_NOT_FOUND, never a 403. Edits apply to
 * later creates only: what running bunkers were charged stays charged until they end.
 */
export class QuotaProfileService {
  constructor(private readonly store: Store) {}

  /** The profile if the caller may see it (its tenant's, or any for platform admins). */
  private async mustGet(p: Principal, id: string): Promise<QuotaProfileRow> {
    const row = await this.store.quotas.getProfile(id, isPlatformAdmin(p) ? null : p.tenantId);
    if (!row) throw new ApiError('QUOTA_PROFILE_NOT_FOUND', `no quota profile ${id}`, { profile_id: id });
    return row;
  }

  private async toApi(row: QuotaProfileRow): Promise<schemas.QuotaProfile> {
    return profileToApi(row, await this.store.quotas.listAssignments([row.id]));
  }

  async create(p: Principal, body: schemas.CreateQuotaProfileBody): Promise<schemas.QuotaProfile> {
    const tenantId = await resolveTenant(this.store, p, body.tenant_id);
    const now = new Date().toISOString();
    const row: QuotaProfileRow = {
      id: newId('qp'),
      tenant_id: tenantId,
      name: body.name,
      max_bunkers: body.max_bunkers ?? null,
      max_cpu_millicores: body.max_cpu_millicores ?? null,
      max_memory_mb: body.max_memory_mb ?? null,
      max_disk_mb: body.max_disk_mb ?? null,
      max_gpu_count: body.max_gpu_count ?? null,
      max_snapshot_bytes: body.max_snapshot_bytes ?? null,
      allowed_lifecycles: body.allowed_lifecycles ? JSON.stringify(body.allowed_lifecycles) : null,
      allowed_images: body.allowed_images ? JSON.stringify(body.allowed_images) : null,
      allowed_network_profiles: body.allowed_network_profiles ? JSON.stringify(body.allowed_network_profiles) : null,
      created_at: now,
      updated_at: now,
    };
    if (!(await this.store.quotas.insertProfile(row))) {
      throw new ApiError('QUOTA_PROFILE_CONFLICT', `tenant ${tenantId} already has a quota profile named ${body.name}`, {
        name: body.name,
      });
    }
    await recordAudit(this.store, p, tenantId, 'quota_profile.create', { type: 'quota_profile', id: row.id }, body);
    return profileToApi(row, []);
  }

  /** The caller's tenant's profiles; platform admins: every tenant's, or the one they name. */
  async list(p: Principal, tenantId: string | undefined): Promise<schemas.QuotaProfile[]> {
    const scope = tenantId === undefined && isPlatformAdmin(p) ? null : await resolveTenant(this.store, p, tenantId);
    const rows = await this.store.quotas.listProfiles(scope);
    const assignments = await this.store.quotas.listAssignments(rows.map((r) => r.id));
    return rows.map((r) => profileToApi(r, assignments));
  }

  async get(p: Principal, id: string): Promise<schemas.QuotaProfile> {
    return this.toApi(await this.mustGet(p, id));
  }

  /** Only the fields given change; null clears a cap or an allow-list. */
  async update(p: Principal, id: string, body: schemas.UpdateQuotaProfileBody): Promise<schemas.QuotaProfile> {
    const row = await this.mustGet(p, id);
    const patch: Partial<QuotaProfileRow> = { updated_at: new Date().toISOString() };
    if (body.name !== undefined) patch.name = body.name;
    for (const f of CAP_FIELDS) if (body[f] !== undefined) patch[f] = body[f];
    for (const f of LIST_FIELDS) {
      const v = body[f];
      if (v !== undefined) patch[f] = v === null ? null : JSON.stringify(v);
    }
    if (!(await this.store.quotas.updateProfile(id, patch))) {
      throw new ApiError('QUOTA_PROFILE_CONFLICT', `tenant ${row.tenant_id} already has a quota profile named ${body.name}`, {
        name: body.name,
      });
    }
    await recordAudit(this.store, p, row.tenant_id, 'quota_profile.update', { type: 'quota_profile', id }, body);
    return this.toApi({ ...row, ...patch });
  }

  /** Deletes the profile and its assignments; bunkers charged under it are released as they end. */
  async remove(p: Principal, id: string): Promise<void> {
    const row = await this.mustGet(p, id);
    await this.store.quotas.deleteProfile(id);
    await recordAudit(this.store, p, row.tenant_id, 'quota_profile.delete', { type: 'quota_profile', id }, { name: row.name });
  }

  async assign(p: Principal, id: string, body: schemas.CreateQuotaAssignmentBody): Promise<schemas.QuotaAssignment> {
    const profile = await this.mustGet(p, id);
    const row = {
      id: newId('qa'),
      tenant_id: profile.tenant_id,
      profile_id: id,
      kind: body.kind,
      subject: body.subject,
      created_at: new Date().toISOString(),
    };
    if (!(await this.store.quotas.insertAssignment(row))) {
      throw new ApiError('QUOTA_PROFILE_CONFLICT', `profile ${id} is already assigned to ${body.kind} ${body.subject}`, {
        kind: body.kind,
        subject: body.subject,
      });
    }
    await recordAudit(this.store, p, profile.tenant_id, 'quota_assignment.create', { type: 'quota_profile', id }, body);
    return assignmentToApi(row);
  }

  async unassign(p: Principal, id: string, assignmentId: string): Promise<void> {
    const profile = await this.mustGet(p, id);
    if (!(await this.store.quotas.deleteAssignment(id, assignmentId))) {
      throw new ApiError('QUOTA_PROFILE_NOT_FOUND', `profile ${id} has no assignment ${assignmentId}`, {
        profile_id: id,
        assignment_id: assignmentId,
      });
    }
    await recordAudit(
      this.store,
      p,
      profile.tenant_id,
      'quota_assignment.delete',
      { type: 'quota_profile', id },
      { assignment_id: assignmentId },
    );
  }
}
