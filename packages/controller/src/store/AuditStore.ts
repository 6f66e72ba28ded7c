import type { Kysely } from 'kysely';
import type { AuditEventRow, Database } from './schema.js';

export class AuditStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: AuditEventRow): Promise<void> {
    await this.db.insertInto('audit_events').values(row).execute();
  }

  async listForTarget(tenantId: string | null, targetId: string): Promise<AuditEventRow[]> {
    let q = this.db.selectFrom('audit_events').selectAll().where('target_id', '=', targetId);
    q = tenantId === null ? q.where('tenant_id', 'is', null) : q.where('tenant_id', '=', tenantId);
    return q.orderBy('created_at').orderBy('id').execute();
  }
}
