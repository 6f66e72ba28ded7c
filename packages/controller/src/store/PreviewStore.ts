import type { Kysely } from 'kysely';
import type { Database, PortPreviewRow } from './schema.js';

/** Host-based previews of bunkers' ports; tokens are looked up by their sha256 only. */
export class PreviewStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: PortPreviewRow): Promise<void> {
    await this.db.insertInto('port_previews').values(row).execute();
  }

  /** The preview a token hashes to, whatever its state (the caller checks bunker, port, expiry and revocation). */
  async byTokenHash(tokenSha256: string): Promise<PortPreviewRow | undefined> {
    return this.db.selectFrom('port_previews').selectAll().where('token_sha256', '=', tokenSha256).executeTakeFirst();
  }

  /** Public previews of that bunker's port that are neither revoked nor expired at `now`. */
  async livePublic(bunkerId: string, port: number, now: string): Promise<PortPreviewRow | undefined> {
    return this.db
      .selectFrom('port_previews')
      .selectAll()
      .where('bunker_id', '=', bunkerId)
      .where('port', '=', port)
      .where('public', '=', 1)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('expires_at', 'desc')
      .executeTakeFirst();
  }

  /** A bunker's previews in the tenant, newest first. */
  async list(tenantId: string, bunkerId: string): Promise<PortPreviewRow[]> {
    return this.db
      .selectFrom('port_previews')
      .selectAll()
      .where('tenant_id', '=', tenantId)
      .where('bunker_id', '=', bunkerId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
  }

  async get(tenantId: string, bunkerId: string, id: string): Promise<PortPreviewRow | undefined> {
    return this.db
      .selectFrom('port_previews')
      .selectAll()
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId)
      .where('bunker_id', '=', bunkerId)
      .executeTakeFirst();
  }

  /** Sets revoked_at unless already set; the row as it is afterwards. */
  async revoke(tenantId: string, bunkerId: string, id: string, at: string): Promise<PortPreviewRow | undefined> {
    await this.db
      .updateTable('port_previews')
      .set({ revoked_at: at })
      .where('id', '=', id)
      .where('tenant_id', '=', tenantId)
      .where('bunker_id', '=', bunkerId)
      .where('revoked_at', 'is', null)
      .execute();
    return this.get(tenantId, bunkerId, id);
  }
}
