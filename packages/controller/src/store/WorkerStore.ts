import type { Kysely } from 'kysely';
import type { Database, WorkerRow } from './schema.js';

export class WorkerStore {
  constructor(private readonly db: Kysely<Database>) {}

  async get(id: string): Promise<WorkerRow | undefined> {
    return this.db.selectFrom('workers').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(): Promise<WorkerRow[]> {
    return this.db.selectFrom('workers').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  /** Insert on first heartbeat; later heartbeats refresh what the worker reports, keeping admin state (draining). */
  async upsertFromHeartbeat(row: WorkerRow): Promise<WorkerRow> {
    const existing = await this.get(row.id);
    if (!existing) {
      await this.db.insertInto('workers').values(row).execute();
      return row;
    }
    const state = existing.state === 'draining' ? 'draining' : 'online';
    const patch = {
      name: row.name,
      url: row.url,
      isolations: row.isolations,
      network_profiles: row.network_profiles,
      capacity_cpu_millicores: row.capacity_cpu_millicores,
      capacity_memory_mb: row.capacity_memory_mb,
      capacity_disk_mb: row.capacity_disk_mb,
      cached_images: row.cached_images,
      bridges: row.bridges,
      last_heartbeat_at: row.last_heartbeat_at,
      state,
    } as const;
    await this.db.updateTable('workers').set(patch).where('id', '=', row.id).execute();
    return { ...existing, ...patch };
  }

  /** Records a bridge the worker just made, before its next heartbeat reports it (read-modify-write). */
  async addBridge(id: string, bridgeId: string): Promise<void> {
    const row = await this.get(id);
    if (!row) return;
    const bridges = JSON.parse(row.bridges ?? '[]') as string[];
    if (bridges.includes(bridgeId)) return;
    await this.db
      .updateTable('workers')
      .set({ bridges: JSON.stringify([...bridges, bridgeId]) })
      .where('id', '=', id)
      .execute();
  }

  async setState(id: string, state: WorkerRow['state']): Promise<boolean> {
    const r = await this.db.updateTable('workers').set({ state }).where('id', '=', id).executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * Marks a worker offline unless its row changed since the caller read it (a heartbeat written
   * meanwhile, or another controller's monitor already did it); true when this call did it.
   * `lastSeenAt`, the worker's last heartbeat as the Heartbeats store knew it, replaces the row's
   * coarse copy: from then on the row alone says how long the worker has been silent.
   */
  async markOffline(id: string, lastHeartbeatAt: string | null, lastSeenAt?: string): Promise<boolean> {
    const r = await this.db
      .updateTable('workers')
      .set(lastSeenAt ? { state: 'offline', last_heartbeat_at: lastSeenAt } : { state: 'offline' })
      .where('id', '=', id)
      .where('state', '!=', 'offline')
      .where('last_heartbeat_at', lastHeartbeatAt === null ? 'is' : '=', lastHeartbeatAt)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * An offline worker heartbeated: back `online` (a drain it had is not kept: the row had left
   * `draining` when it went offline). One statement that changes nothing while the worker is
   * already online, so every heartbeat can afford it; true when this call brought it back.
   */
  async markOnline(id: string, lastHeartbeatAt: string): Promise<boolean> {
    const r = await this.db
      .updateTable('workers')
      .set({ state: 'online', last_heartbeat_at: lastHeartbeatAt })
      .where('id', '=', id)
      .where('state', '=', 'offline')
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }
}
