import type { Kysely } from 'kysely';
import type { BridgeRow, BunkerRow, Database } from './schema.js';
import { isUniqueViolation } from './uniqueViolation.js';

const ACTIVE_STATES = ['pending', 'provisioning', 'running', 'paused', 'snapshotting'];

/** Tenants' transit bridges, and which bunkers that have not ended are attached to one. */
export class BridgeStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** False when the tenant already has a bridge of that name. */
  async insert(row: BridgeRow): Promise<boolean> {
    try {
      await this.db.insertInto('bridges').values(row).execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }

  async get(tenantId: string, id: string): Promise<BridgeRow | undefined> {
    return this.db.selectFrom('bridges').selectAll().where('id', '=', id).where('tenant_id', '=', tenantId).executeTakeFirst();
  }

  /** The tenant's bridges among `ids` (others' and unknown ids are simply absent). */
  async getMany(tenantId: string, ids: readonly string[]): Promise<BridgeRow[]> {
    if (ids.length === 0) return [];
    return this.db
      .selectFrom('bridges')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('id', 'in', [...ids])
      .execute();
  }

  /** Bridges by id whatever their tenant (placement: which worker owns each). */
  async getByIds(ids: readonly string[]): Promise<BridgeRow[]> {
    if (ids.length === 0) return [];
    return this.db
      .selectFrom('bridges')
      .selectAll()
      .where('id', 'in', [...ids])
      .execute();
  }

  async list(tenantId: string): Promise<BridgeRow[]> {
    return this.db.selectFrom('bridges').selectAll().where('tenant_id', '=', tenantId).orderBy('created_at').orderBy('id').execute();
  }

  /** Bridges still `reserved` since before `before`: their create lost its controller. */
  async listReservedBefore(before: string): Promise<BridgeRow[]> {
    return this.db.selectFrom('bridges').selectAll().where('state', '=', 'reserved').where('created_at', '<', before).execute();
  }

  async markReady(id: string): Promise<BridgeRow | undefined> {
    await this.db.updateTable('bridges').set({ state: 'ready' }).where('id', '=', id).execute();
    return this.db.selectFrom('bridges').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async delete(id: string): Promise<boolean> {
    const r = await this.db.deleteFrom('bridges').where('id', '=', id).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Ids of the tenant's bunkers that have not ended and have an interface on the bridge. */
  async attachedBunkers(tenantId: string, bridgeId: string): Promise<string[]> {
    const rows: Pick<BunkerRow, 'id' | 'interfaces'>[] = await this.db
      .selectFrom('bunkers')
      .select(['id', 'interfaces'])
      .where('tenant_id', '=', tenantId)
      .where('network_profile', '=', 'transit')
      .where('state', 'in', ACTIVE_STATES)
      .where('interfaces', 'like', `%${bridgeId}%`)
      .execute();
    return rows
      .filter((r) => (JSON.parse(r.interfaces ?? '[]') as { bridge_id: string }[]).some((i) => i.bridge_id === bridgeId))
      .map((r) => r.id);
  }
}
