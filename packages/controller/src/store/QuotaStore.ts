import type { Kysely } from 'kysely';
import type { Database, QuotaAssignmentRow, QuotaProfileRow } from './schema.js';
import { isUniqueViolation } from './uniqueViolation.js';

/** Quota profiles and their assignments. `tenantId` null means any tenant (platform admins). */
export class QuotaStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** False when the tenant already has a profile of that name. */
  async insertProfile(row: QuotaProfileRow): Promise<boolean> {
    try {
      await this.db.insertInto('quota_profiles').values(row).execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async getProfile(id: string, tenantId: string | null): Promise<QuotaProfileRow | undefined> {
    let q = this.db.selectFrom('quota_profiles').selectAll().where('id', '=', id);
    if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
    return q.executeTakeFirst();
  }

  async listProfiles(tenantId: string | null): Promise<QuotaProfileRow[]> {
    let q = this.db.selectFrom('quota_profiles').selectAll();
    if (tenantId !== null) q = q.where('tenant_id', '=', tenantId);
    return q.orderBy('tenant_id').orderBy('name').orderBy('id').execute();
  }

  async getProfiles(ids: readonly string[]): Promise<QuotaProfileRow[]> {
    if (ids.length === 0) return [];
    return this.db
      .selectFrom('quota_profiles')
      .selectAll()
      .where('id', 'in', [...ids])
      .execute();
  }

  /** False when the new name is taken in the tenant. */
  async updateProfile(id: string, patch: Partial<QuotaProfileRow>): Promise<boolean> {
    try {
      await this.db.updateTable('quota_profiles').set(patch).where('id', '=', id).execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  /** The profile and its assignments. */
  async deleteProfile(id: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('quota_assignments').where('profile_id', '=', id).execute();
      await tx.deleteFrom('quota_profiles').where('id', '=', id).execute();
    });
  }

  /** False when the profile already has that assignment. */
  async insertAssignment(row: QuotaAssignmentRow): Promise<boolean> {
    try {
      await this.db.insertInto('quota_assignments').values(row).execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async deleteAssignment(profileId: string, id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('quota_assignments').where('id', '=', id).where('profile_id', '=', profileId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  async listAssignments(profileIds: readonly string[]): Promise<QuotaAssignmentRow[]> {
    if (profileIds.length === 0) return [];
    return this.db
      .selectFrom('quota_assignments')
      .selectAll()
      .where('profile_id', 'in', [...profileIds])
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  /** Every tenant's assignments (the quota gauges of `/metrics`). */
  async listAllAssignments(): Promise<QuotaAssignmentRow[]> {
    return this.db.selectFrom('quota_assignments').selectAll().orderBy('tenant_id').orderBy('id').execute();
  }

  async listAssignmentsOfTenant(tenantId: string): Promise<QuotaAssignmentRow[]> {
    return this.db.selectFrom('quota_assignments').selectAll().where('tenant_id', '=', tenantId).orderBy('id').execute();
  }

  /** The assignments that apply to a user of a tenant (its own, and its groups'), with their profiles. */
  async applicable(
    tenantId: string,
    userId: string,
    groups: readonly string[],
  ): Promise<Array<{ assignment: QuotaAssignmentRow; profile: QuotaProfileRow }>> {
    const assignments = await this.db
      .selectFrom('quota_assignments')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where((eb) =>
        eb.or([
          eb.and([eb('kind', '=', 'user'), eb('subject', '=', userId)]),
          ...(groups.length > 0 ? [eb.and([eb('kind', 'in', ['group', 'group_per_user']), eb('subject', 'in', [...groups])])] : []),
        ]),
      )
      .orderBy('id')
      .execute();
    const profiles = new Map((await this.getProfiles([...new Set(assignments.map((a) => a.profile_id))])).map((p) => [p.id, p]));
    return assignments.flatMap((a) => {
      const profile = profiles.get(a.profile_id);
      return profile ? [{ assignment: a, profile }] : [];
    });
  }
}
