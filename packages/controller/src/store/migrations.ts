import { type Kysely, sql } from 'kysely';
import type { Migration, MigrationProvider } from 'kysely/migration';
import { columnTypes, type ColumnType as DataTypeExpression, isMysql } from './sqlDialect.js';

/**
 * Migrations in code, portable across SQLite, PostgreSQL and MySQL/MariaDB (text timestamps,
 * integer booleans, JSON as text). String columns are declared through `columnTypes` (`t.id`,
 * `t.ts`, `t.key(N)` for key and indexed columns, `t.text` for the rest): plain `text` on SQLite
 * and PostgreSQL, `varchar(N)`/`mediumtext` in utf8mb4 tables with a binary, no-pad collation on MySQL.
 */
const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      await db.schema
        .createTable('tenants')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('users')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('name', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('groups')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('name', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('group_members')
        .$call(t.table)
        .addColumn('group_id', t.id, (c) => c.notNull().references('groups.id'))
        .addColumn('user_id', t.id, (c) => c.notNull().references('users.id'))
        .addPrimaryKeyConstraint('group_members_pk', ['group_id', 'user_id'])
        .execute();
      await db.schema
        .createTable('api_keys')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('user_id', t.id, (c) => c.references('users.id'))
        .addColumn('name', t.text, (c) => c.notNull())
        .addColumn('key_hash', t.key(128), (c) => c.notNull().unique())
        .addColumn('permissions', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addColumn('revoked_at', t.ts)
        .execute();
      await db.schema
        .createTable('workers')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', t.text, (c) => c.notNull())
        .addColumn('url', t.text, (c) => c.notNull())
        .addColumn('state', t.text, (c) => c.notNull())
        .addColumn('isolations', t.text, (c) => c.notNull())
        .addColumn('capacity_cpu_millicores', 'integer', (c) => c.notNull())
        .addColumn('capacity_memory_mb', 'integer', (c) => c.notNull())
        .addColumn('capacity_disk_mb', 'integer', (c) => c.notNull())
        .addColumn('cached_images', t.text, (c) => c.notNull())
        .addColumn('last_heartbeat_at', t.ts)
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('images')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.references('tenants.id'))
        .addColumn('name', t.key(256), (c) => c.notNull())
        .addColumn('scope', t.text, (c) => c.notNull())
        .addColumn('state', t.text, (c) => c.notNull())
        .addColumn('sha256', t.text)
        .addColumn('size_bytes', 'bigint')
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('images_name').on('images').columns(['name', 'tenant_id']).execute();
      await db.schema
        .createTable('bunkers')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('created_by', t.text, (c) => c.notNull())
        .addColumn('image', t.text, (c) => c.notNull())
        .addColumn('image_sha256', t.text)
        .addColumn('lifecycle', t.text, (c) => c.notNull())
        .addColumn('state', t.key(32), (c) => c.notNull())
        .addColumn('termination_reason', t.text)
        .addColumn('worker_id', t.id, (c) => c.references('workers.id'))
        .addColumn('isolation', t.text, (c) => c.notNull())
        .addColumn('cpu_millicores', 'integer', (c) => c.notNull())
        .addColumn('memory_mb', 'integer', (c) => c.notNull())
        .addColumn('disk_mb', 'integer', (c) => c.notNull())
        .addColumn('network_profile', t.text, (c) => c.notNull())
        .addColumn('idle_timeout_s', 'integer', (c) => c.notNull())
        .addColumn('max_lifetime_s', 'integer')
        .addColumn('env', t.text, (c) => c.notNull())
        .addColumn('metadata', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addColumn('started_at', t.ts)
        .addColumn('last_activity_at', t.ts, (c) => c.notNull())
        .addColumn('ended_at', t.ts)
        .addColumn('updated_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('bunkers_tenant_created').on('bunkers').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('bunkers_state').on('bunkers').columns(['state']).execute();
      await db.schema.createIndex('bunkers_worker').on('bunkers').columns(['worker_id', 'state']).execute();
      await db.schema
        .createTable('bunker_labels')
        .$call(t.table)
        .addColumn('bunker_id', t.id, (c) => c.notNull().references('bunkers.id'))
        .addColumn('tenant_id', t.id, (c) => c.notNull())
        .addColumn('key', t.key(256), (c) => c.notNull())
        .addColumn('value', t.key(256), (c) => c.notNull())
        .addPrimaryKeyConstraint('bunker_labels_pk', ['bunker_id', 'key'])
        .execute();
      await db.schema.createIndex('bunker_labels_kv').on('bunker_labels').columns(['tenant_id', 'key', 'value']).execute();
      await db.schema
        .createTable('exec_logs')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('bunker_id', t.id, (c) => c.notNull().references('bunkers.id'))
        .addColumn('tenant_id', t.id, (c) => c.notNull())
        .addColumn('caller', t.text, (c) => c.notNull())
        .addColumn('command', t.text, (c) => c.notNull())
        .addColumn('exit_code', 'integer')
        .addColumn('signal', t.text)
        .addColumn('timed_out', 'integer', (c) => c.notNull())
        .addColumn('duration_ms', 'integer')
        .addColumn('stdout_preview', t.text, (c) => c.notNull())
        .addColumn('stderr_preview', t.text, (c) => c.notNull())
        .addColumn('truncated', 'integer', (c) => c.notNull())
        .addColumn('full_output_ref', t.text)
        .addColumn('started_at', t.ts, (c) => c.notNull())
        .addColumn('finished_at', t.ts)
        .execute();
      await db.schema.createIndex('exec_logs_bunker').on('exec_logs').columns(['bunker_id', 'started_at', 'id']).execute();
      await db.schema
        .createTable('audit_events')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id)
        .addColumn('actor', t.text, (c) => c.notNull())
        .addColumn('action', t.text, (c) => c.notNull())
        .addColumn('target_type', t.text, (c) => c.notNull())
        .addColumn('target_id', t.text, (c) => c.notNull())
        .addColumn('details', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_events_tenant').on('audit_events').columns(['tenant_id', 'created_at']).execute();
    },
  },
  '0002_job_leases': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // One row per background job: which controller holds this tick, and until when.
      await db.schema
        .createTable('job_leases')
        .$call(t.table)
        .addColumn('job', t.key(128), (c) => c.primaryKey())
        .addColumn('holder', t.text, (c) => c.notNull())
        .addColumn('expires_at', t.ts, (c) => c.notNull())
        .execute();
    },
  },
  '0003_quotas': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // Who an API key acts as, for quota buckets (JWTs carry it in `sub` and `groups`).
      await db.schema.alterTable('api_keys').addColumn('identity_user_id', t.text).execute();
      await db.schema
        .alterTable('api_keys')
        .addColumn('identity_groups', t.text, (c) => c.notNull().defaultTo('[]'))
        .execute();
      await db.schema
        .alterTable('bunkers')
        .addColumn('gpu_count', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // The counters a bunker was charged at create: what a rebuild re-counts.
      await db.schema.alterTable('bunkers').addColumn('quota_charges', t.text).execute();
      await db.schema
        .createTable('quota_profiles')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('name', t.key(256), (c) => c.notNull())
        .addColumn('max_bunkers', 'integer')
        .addColumn('max_cpu_millicores', 'integer')
        .addColumn('max_memory_mb', 'integer')
        .addColumn('max_disk_mb', 'integer')
        .addColumn('max_gpu_count', 'integer')
        .addColumn('allowed_lifecycles', t.text)
        .addColumn('allowed_images', t.text)
        .addColumn('allowed_network_profiles', t.text)
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addColumn('updated_at', t.ts, (c) => c.notNull())
        .addUniqueConstraint('quota_profiles_tenant_name', ['tenant_id', 'name'])
        .execute();
      await db.schema
        .createTable('quota_assignments')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('profile_id', t.id, (c) => c.notNull().references('quota_profiles.id'))
        .addColumn('kind', t.key(32), (c) => c.notNull())
        .addColumn('subject', t.key(256), (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addUniqueConstraint('quota_assignments_unique', ['profile_id', 'kind', 'subject'])
        .execute();
      await db.schema.createIndex('quota_assignments_subject').on('quota_assignments').columns(['tenant_id', 'kind', 'subject']).execute();
    },
  },
  '0004_usage': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // At most one row per bunker per minute: what it used up to `sampled_at`, filed under the
      // minute it was sampled in. `cpu_usage_ns` is the worker's cumulative reading at
      // `sampled_at`; the next tick (on whichever controller) takes its deltas from there.
      await db.schema
        .createTable('usage')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull())
        .addColumn('bunker_id', t.id, (c) => c.notNull().references('bunkers.id'))
        .addColumn('image', t.text, (c) => c.notNull())
        .addColumn('minute_start', t.ts, (c) => c.notNull())
        .addColumn('since_at', t.ts, (c) => c.notNull())
        .addColumn('sampled_at', t.ts, (c) => c.notNull())
        // double precision, not real: PostgreSQL's real has 4 bytes (~7 digits), too few for sums.
        .addColumn('cpu_seconds', 'double precision', (c) => c.notNull())
        .addColumn('memory_mb_minutes', 'double precision', (c) => c.notNull())
        .addColumn('disk_mb_minutes', 'double precision', (c) => c.notNull())
        .addColumn('wall_seconds', 'double precision', (c) => c.notNull())
        .addColumn('cpu_usage_ns', 'bigint', (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        // A tick that runs twice cannot add a second row for the same minute…
        .addUniqueConstraint('usage_bunker_minute', ['bunker_id', 'minute_start'])
        // …and no two rows can count from the same reading (`since_at`: where a row's last sample started).
        .addUniqueConstraint('usage_bunker_since', ['bunker_id', 'since_at'])
        .execute();
      await db.schema.createIndex('usage_tenant_minute').on('usage').columns(['tenant_id', 'minute_start']).execute();
      // The last reading of a terminated bunker, taken just before its worker destroyed it; the
      // next tick turns it into the bunker's last usage and deletes it.
      await db.schema
        .createTable('usage_final_samples')
        .$call(t.table)
        .addColumn('bunker_id', t.id, (c) => c.primaryKey())
        .addColumn('paused', 'integer', (c) => c.notNull())
        .addColumn('cpu_usage_ns', 'bigint', (c) => c.notNull())
        .addColumn('memory_bytes', 'bigint', (c) => c.notNull())
        .addColumn('disk_used_bytes', 'bigint')
        .addColumn('sampled_at', t.ts, (c) => c.notNull())
        .execute();
    },
  },
  '0005_network_profiles': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // The `allowlisted` profile's hosts (JSON array, normalized) and the egress cap in Mbit/s;
      // null: not allowlisted / the worker's default.
      await db.schema.alterTable('bunkers').addColumn('network_allowlist', t.text).execute();
      await db.schema.alterTable('bunkers').addColumn('bandwidth_mbit', 'integer').execute();
      // What each worker can give a bunker (JSON array); workers registered before this only
      // offered `isolated`, and their next heartbeat refreshes it.
      await db.schema
        .alterTable('workers')
        .addColumn('network_profiles', t.text, (c) => c.notNull().defaultTo('["isolated"]'))
        .execute();
    },
  },
  '0006_transit_bridges': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // Tenant-scoped layer-2 bridges, each made on one worker: `reserved` while the worker is
      // asked to make it, `ready` once it has (a reject deletes the row).
      await db.schema
        .createTable('bridges')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('name', t.key(256), (c) => c.notNull())
        .addColumn('worker_id', t.id, (c) => c.notNull())
        .addColumn('state', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addUniqueConstraint('bridges_tenant_name', ['tenant_id', 'name'])
        .execute();
      // A transit bunker's interfaces (JSON `[{name, bridge_id, mac, spoof_guard}]`); null otherwise.
      await db.schema.alterTable('bunkers').addColumn('interfaces', t.text).execute();
      // Which bridges each worker reported in its last heartbeat (JSON array of ids).
      await db.schema
        .alterTable('workers')
        .addColumn('bridges', t.text, (c) => c.notNull().defaultTo('[]'))
        .execute();
    },
  },
  '0007_images': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // Registered images: where they come from (JSON `{type, ref|path}`; null for the built-in
      // catalog baked by setup), how far the bake got (JSON progress, `failure` when it failed),
      // which controller bakes it and when it last said so (a stale claim is taken over), and
      // the last scan (JSON result; `scan_state` pending | scanning | done | failed).
      for (const [name, type] of [
        ['source', t.text],
        ['progress', t.text],
        ['failure', t.text],
        ['baker', t.text],
        ['baker_seen_at', t.ts],
        ['scan_state', t.text],
        ['scan_result', t.text],
        ['scanned_at', t.ts],
        ['created_by', t.text],
        ['updated_at', t.ts],
      ] as Array<[string, DataTypeExpression]>) {
        await db.schema.alterTable('images').addColumn(name, type).execute();
      }
      await db.schema
        .alterTable('images')
        .addColumn('lazy_pull', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // `partner` images: the tenants (besides the owner) that may use them.
      await db.schema
        .createTable('image_shares')
        .$call(t.table)
        .addColumn('image_id', t.id, (c) => c.notNull().references('images.id'))
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addPrimaryKeyConstraint('image_shares_pk', ['image_id', 'tenant_id'])
        .execute();
      // Which worker holds which image, reconciled from heartbeats both ways.
      await db.schema
        .createTable('image_cache')
        .$call(t.table)
        .addColumn('worker_id', t.id, (c) => c.notNull())
        .addColumn('sha256', t.key(128), (c) => c.notNull())
        .addColumn('state', t.key(32), (c) => c.notNull())
        .addColumn('error', t.text)
        .addColumn('updated_at', t.ts, (c) => c.notNull())
        .addPrimaryKeyConstraint('image_cache_pk', ['worker_id', 'sha256'])
        .execute();
      await db.schema.createIndex('image_cache_sha').on('image_cache').columns(['sha256', 'state']).execute();
      // Availability groups (platform objects, like workers): images warmed on every member.
      await db.schema
        .createTable('availability_groups')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('name', t.key(256), (c) => c.notNull().unique())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('availability_group_workers')
        .$call(t.table)
        .addColumn('group_id', t.id, (c) => c.notNull().references('availability_groups.id'))
        .addColumn('worker_id', t.id, (c) => c.notNull())
        .addPrimaryKeyConstraint('availability_group_workers_pk', ['group_id', 'worker_id'])
        .execute();
      await db.schema
        .createTable('availability_group_images')
        .$call(t.table)
        .addColumn('group_id', t.id, (c) => c.notNull().references('availability_groups.id'))
        .addColumn('image_id', t.id, (c) => c.notNull().references('images.id'))
        .addPrimaryKeyConstraint('availability_group_images_pk', ['group_id', 'image_id'])
        .execute();
    },
  },
  '0008_output_store': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      await db.schema
        .alterTable('exec_logs')
        .addColumn('output_store', t.key(32), (c) => c.notNull().defaultTo('inline'))
        .execute();
      await db.schema
        .alterTable('exec_logs')
        .addColumn('output_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .execute();
      // The retention sweep's scan, and each tenant's stored total.
      await db.schema.createIndex('exec_logs_output').on('exec_logs').columns(['output_bytes', 'started_at']).execute();
      await db.schema.createIndex('exec_logs_tenant_output').on('exec_logs').columns(['tenant_id', 'output_bytes']).execute();
    },
  },
  '0009_audit_bunker': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // The bunker an event is on or inside (exec, files, create, terminate): `GET /audit-events`
      // filters by it, and an exec's target is the exec, not the bunker. Events written before
      // this on bunker targets get theirs from the target.
      await db.schema.alterTable('audit_events').addColumn('bunker_id', t.id).execute();
      await db
        .updateTable('audit_events')
        .set((eb) => ({ bunker_id: eb.ref('target_id') }))
        .where('target_type', '=', 'bunker')
        .execute();
      // Both listings are keyset pages over (created_at, id), newest first, within one tenant.
      // MySQL names indexes per table (`drop index … on …`); the others reject the `on`.
      const drop = db.schema.dropIndex('audit_events_tenant');
      await (isMysql(db) ? drop.on('audit_events') : drop).execute();
      await db.schema.createIndex('audit_events_tenant').on('audit_events').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema
        .createIndex('audit_events_bunker')
        .on('audit_events')
        .columns(['tenant_id', 'bunker_id', 'created_at', 'id'])
        .execute();
    },
  },
  '0010_exec_processes': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      for (const [name, type] of [
        ['state', t.text],
        ['tag', t.text],
        ['pid', 'integer'],
        ['end_reason', t.text],
      ] as Array<[string, DataTypeExpression]>) {
        await db.schema.alterTable('exec_logs').addColumn(name, type).execute();
      }
      await db.schema
        .alterTable('exec_logs')
        .addColumn('background', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('exec_logs')
        .addColumn('pty', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      // The reconciler's scan: background execs whose row has not ended.
      await db.schema.createIndex('exec_logs_unfinished').on('exec_logs').columns(['background', 'finished_at']).execute();
    },
  },
  '0011_port_previews': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // Host-based previews of a bunker's port. Only the token's sha256 is kept (null for a
      // public preview); revocation sets revoked_at, honoured by every controller at once.
      await db.schema
        .createTable('port_previews')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('bunker_id', t.id, (c) => c.notNull())
        .addColumn('port', 'integer', (c) => c.notNull())
        .addColumn('token_sha256', t.key(128), (c) => c.unique())
        .addColumn('public', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_by', t.text, (c) => c.notNull())
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addColumn('expires_at', t.ts, (c) => c.notNull())
        .addColumn('revoked_at', t.ts)
        .execute();
      await db.schema.createIndex('port_previews_bunker').on('port_previews').columns(['bunker_id', 'port']).execute();
    },
  },
  '0012_snapshots': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // A bunker's writable layer as one archive in the blob store (`scaibunker/snapshots/{id}`).
      // `source`: why it was taken (`user`, `fork`, `passivation`); `bunker_id` is kept after the
      // bunker ended (restores need only the image and the archive).
      await db.schema
        .createTable('snapshots')
        .$call(t.table)
        .addColumn('id', t.id, (c) => c.primaryKey())
        .addColumn('tenant_id', t.id, (c) => c.notNull().references('tenants.id'))
        .addColumn('bunker_id', t.id, (c) => c.notNull())
        .addColumn('created_by', t.text, (c) => c.notNull())
        .addColumn('name', t.text)
        .addColumn('source', t.text, (c) => c.notNull())
        .addColumn('state', t.key(32), (c) => c.notNull())
        .addColumn('image', t.text, (c) => c.notNull())
        .addColumn('image_sha256', t.text, (c) => c.notNull())
        .addColumn('isolation', t.text, (c) => c.notNull())
        .addColumn('disk_mb', 'integer', (c) => c.notNull())
        .addColumn('format', t.text)
        .addColumn('sha256', t.text)
        .addColumn('size_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('error', t.text)
        .addColumn('created_at', t.ts, (c) => c.notNull())
        .addColumn('ready_at', t.ts)
        .addColumn('expires_at', t.ts)
        .execute();
      await db.schema.createIndex('snapshots_tenant').on('snapshots').columns(['tenant_id', 'created_at', 'id']).execute();
      await db.schema.createIndex('snapshots_expiry').on('snapshots').columns(['expires_at']).execute();
      await db.schema.createIndex('snapshots_state').on('snapshots').columns(['state', 'created_at']).execute();
      // snapshot_id: what the bunker was restored from (create, resume, recovery);
      // passivated: its worker resources were released after a snapshot (state paused).
      await db.schema.alterTable('bunkers').addColumn('snapshot_id', t.id).execute();
      await db.schema.alterTable('bunkers').addColumn('recovered_from', t.text).execute();
      await db.schema
        .alterTable('bunkers')
        .addColumn('auto_resume', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .alterTable('bunkers')
        .addColumn('passivated', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex('bunkers_snapshot').on('bunkers').columns(['snapshot_id', 'state']).execute();
      await db.schema.alterTable('quota_profiles').addColumn('max_snapshot_bytes', 'bigint').execute();
    },
  },
  '0013_api_keys': {
    async up(db: Kysely<any>) {
      // Keys listed per tenant, with an optional expiry and their last use (written at most once a minute).
      await db.schema.alterTable('api_keys').addColumn('expires_at', 'text').execute();
      await db.schema.alterTable('api_keys').addColumn('last_used_at', 'text').execute();
      await db.schema.createIndex('api_keys_tenant').on('api_keys').columns(['tenant_id', 'created_at', 'id']).execute();
    },
  },
  '0014_tenant_availability_groups': {
    async up(db: Kysely<any>) {
      const t = await columnTypes(db);
      // Null: a platform group. A tenant's group keeps its images warm on the workers its bunkers use.
      await db.schema.alterTable('availability_groups').addColumn('tenant_id', t.id).execute();
      await db.schema.createIndex('availability_groups_tenant').on('availability_groups').columns(['tenant_id']).execute();
    },
  },
  '0015_exec_log_partial_indexes': {
    async up(db: Kysely<any>) {
      // Most execs store no output and are not background: their rows need not be in the
      // indexes of stored output and of unfinished background execs. Partial indexes leave
      // those rows out; every exec's row was three index inserts more than it needed, on pages
      // all writers shared. MySQL has no partial indexes and keeps the full ones.
      if (isMysql(db)) return;
      for (const name of ['exec_logs_output', 'exec_logs_tenant_output', 'exec_logs_unfinished']) {
        await db.schema.dropIndex(name).execute();
      }
      await db.schema
        .createIndex('exec_logs_output')
        .on('exec_logs')
        .column('started_at')
        .where(sql.ref('output_bytes'), '>', sql.lit(0))
        .execute();
      await db.schema
        .createIndex('exec_logs_tenant_output')
        .on('exec_logs')
        .columns(['tenant_id', 'output_bytes'])
        .where(sql.ref('output_bytes'), '>', sql.lit(0))
        .execute();
      await db.schema
        .createIndex('exec_logs_unfinished')
        .on('exec_logs')
        .column('started_at')
        .where(sql<boolean>`background = 1 and finished_at is null`)
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
