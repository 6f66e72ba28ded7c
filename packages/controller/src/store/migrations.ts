import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

/** Migrations in code, portable across SQLite and PostgreSQL (text timestamps, integer booleans). */
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('tenants')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('groups')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('group_members')
        .addColumn('group_id', 'text', (c) => c.notNull().references('groups.id'))
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id'))
        .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
        .execute();
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('user_id', 'text', (c) => c.references('users.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'text', (c) => c.notNull().unique())
        .addColumn('permissions', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('workers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('isolations', 'text', (c) => c.notNull())
        .addColumn('capacity_cpu_millicores', 'integer', (c) => c.notNull())
        .addColumn('capacity_memory_mb', 'integer', (c) => c.notNull())
        .addColumn('capacity_disk_mb', 'integer', (c) => c.notNull())
        .addColumn('cached_images', 'text', (c) => c.notNull())
        .addColumn('last_heartbeat_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('images')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.references('tenants.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text')
        .addColumn('size_bytes', 'bigint')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('images_name').on('images').columns(['name', 'tenant_id']).execute();
      await db.schema
        .createTable('bunkers')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text', (c) => c.notNull().references('tenants.id'))
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('image', 'text', (c) => c.notNull())
        .addColumn('image_sha256', 'text')
        .addColumn('lifecycle', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('termination_reason', 'text')
        .addColumn('worker_id', 'text', (c) => c.references('workers.id'))
        .addColumn('isolation', 'text', (c) => c.notNull())
        .addColumn('cpu_millicores', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('disk_mb', 'integer', (c) => c.notNull())
        .addColumn('network_profile', 'text', (c) => c.notNull())
        .addColumn('idle_timeout_s', 'integer', (c) => c.notNull())
        .addColumn('max_lifetime_s', 'integer')
        .addColumn('env', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('started_at', 'text')
        .addColumn('last_activity_at', 'text', (c) => c.notNull())
        .addColumn('ended_at', 'text')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('bunkers_tenant_created').on('bunkers').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('bunkers_state').on('bunkers').columns(['state']).execute();
      await db.schema.createIndex('bunkers_worker').on('bunkers').columns(['worker_id', 'state']).execute();
      await db.schema
        .createTable('bunker_labels')
        .addColumn('bunker_id', 'text', (c) => c.notNull().references('bunkers.id'))
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('bunker_labels_pk', ['bunker_id', 'key'])
        .execute();
      await db.schema.createIndex('bunker_labels_kv').on('bunker_labels').columns(['tenant_id', 'key', 'value']).execute();
      await db.schema
        .createTable('exec_logs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('bunker_id', 'text', (c) => c.notNull().references('bunkers.id'))
        .addColumn('tenant_id', 'text', (c) => c.notNull())
        .addColumn('caller', 'text', (c) => c.notNull())
        .addColumn('command', 'text', (c) => c.notNull())
        .addColumn('exit_code', 'integer')
        .addColumn('signal', 'text')
        .addColumn('timed_out', 'integer', (c) => c.notNull())
        .addColumn('duration_ms', 'integer')
        .addColumn('stdout_preview', 'text', (c) => c.notNull())
        .addColumn('stderr_preview', 'text', (c) => c.notNull())
        .addColumn('truncated', 'integer', (c) => c.notNull())
        .addColumn('full_output_ref', 'text')
        .addColumn('started_at', 'text', (c) => c.notNull())
        .addColumn('finished_at', 'text')
        .execute();
      await db.schema.createIndex('exec_logs_bunker').on('exec_logs').columns(['bunker_id', 'started_at', 'id']).execute();
      await db.schema
        .createTable('audit_events')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('tenant_id', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_type', 'text', (c) => c.notNull())
        .addColumn('target_id', 'text', (c) => c.notNull())
        .addColumn('details', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_events_tenant').on('audit_events').columns(['tenant_id', 'created_at']).execute();
    },
  },
  '0002_job_leases': {
    async up(db: Kysely<any>) {
      // One row per background job: which controller holds this tick, and until when.
      await db.schema
        .createTable('job_leases')
        .addColumn('job', 'text', (c) => c.primaryKey())
        .addColumn('holder', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
};

export class InCodeMigrations implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export { sql };
