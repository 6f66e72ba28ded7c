import type { Principal } from '../auth/Principal.js';
import { type AuditEntry, auditRow } from '../tenants/audit.js';
import type { AuditWriter } from './AuditWriter.js';

/**
 * Where services record what callers did in a bunker, for `GET /audit-events`. `record` is for
 * hot paths (exec, files, shell sessions, snapshots): it queues the event on the group-committed
 * AuditWriter and returns at once, so the call never waits for the database; the event is
 * stored within ~100 ms, or once the database is back (see AuditWriter for the bounds).
 * Administrative actions that must be on record before they are answered use `recordAudit`
 * (tenants/audit.ts) instead.
 *
 * ```ts
 * audit.record(principal, { action: 'shell.open', target: { type: 'shell', id: sessionId }, bunkerId, details: { user } });
 * ```
 *
 * The event belongs to the caller's tenant (`principal.tenantId`) and names `principal.actor`.
 */
export class AuditTrail {
  constructor(private readonly writer: AuditWriter) {}

  record(principal: Principal, entry: AuditEntry): void {
    this.writer.write(auditRow(principal, principal.tenantId, entry));
  }

  /** Writes what is queued now (tests; shutdown uses `close`). */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** Flushes what is queued and stops the writer's timers. */
  close(): Promise<void> {
    return this.writer.close();
  }
}
