import type { Kysely } from 'kysely';
import type { Database, ImageRow } from './schema.js';

export class ImageStore {
  constructor(private readonly db: Kysely<Database>) {}

  /** Images a tenant can use: its own and platform-scoped ones. */
  async listVisible(tenantId: string): Promise<ImageRow[]> {
    return this.db
      .selectFrom('images')
      .selectAll()
      .where((eb) => eb.or([eb('tenant_id', '=', tenantId), eb('scope', '=', 'platform')]))
      .orderBy('name')
      .execute();
  }

  async findVisible(tenantId: string, name: string): Promise<ImageRow | undefined> {
    const rows = await this.db
      .selectFrom('images')
      .selectAll()
      .where('name', '=', name)
      .where((eb) => eb.or([eb('tenant_id', '=', tenantId), eb('scope', '=', 'platform')]))
      .execute();
    // A tenant's own image shadows a platform image of the same name.
    return rows.find((r) => r.tenant_id === tenantId) ?? rows[0];
  }

  /** Register or refresh a platform image (built-in catalog entries). */
  async upsertPlatform(row: ImageRow): Promise<void> {
    const existing = await this.db
      .selectFrom('images')
      .select('id')
      .where('name', '=', row.name)
      .where('scope', '=', 'platform')
      .executeTakeFirst();
    if (existing) {
      await this.db
        .updateTable('images')
        .set({ sha256: row.sha256, size_bytes: row.size_bytes, state: row.state })
        .where('id', '=', existing.id)
        .execute();
    } else {
      await this.db.insertInto('images').values(row).execute();
    }
  }
}
