/**
 * `scaibunker audit`: the tenant's audit trail over the SDK (needs scaibunker:audit:read).
 */
import type { AuditEvent } from '@scaibunker/sdk';
import type { Command } from 'commander';
import { renderTable } from '../ui/table.js';
import {
  type ClientFlags,
  clientAction,
  clientFrom,
  exitTwoOnUsageErrors,
  positiveInt,
  printJson,
  withClientOptions,
} from './clientCommand.js';

/** The most a page of the API holds; a larger --limit is fetched page by page. */
const PAGE_MAX = 200;
const DETAILS_WIDTH = 80;

/** One line per event; details as compact JSON, cut so a long command does not wrap the table. */
function auditRows(events: AuditEvent[]): string {
  return renderTable(
    ['TIME', 'ACTOR', 'ACTION', 'BUNKER', 'TARGET', 'DETAILS'],
    events.map((e) => {
      const details = JSON.stringify(e.details);
      return [
        e.created_at,
        e.actor,
        e.action,
        e.bunker_id ?? '-',
        e.target_type === 'bunker' ? '-' : `${e.target_type}:${e.target_id}`,
        details.length > DETAILS_WIDTH ? `${details.slice(0, DETAILS_WIDTH - 1)}…` : details,
      ];
    }),
  );
}

interface AuditFlags extends ClientFlags {
  bunker?: string;
  action?: string;
  actor?: string;
  from?: string;
  to?: string;
  limit?: number;
  tenant?: string;
}

export function registerAuditCommand(program: Command): void {
  withClientOptions(
    exitTwoOnUsageErrors(
      program
        .command('audit')
        .description("The tenant's audit trail, newest first: execs, file changes, bunkers, keys (needs scaibunker:audit:read)")
        .option('--bunker <id>', 'only events on this bunker')
        .option('--action <action>', 'only this action (exec.run, file.write, file.delete, file.mkdir, bunker.create, …)')
        .option('--actor <actor>', 'only events by this actor (key:<id>, jwt:<sub>)')
        .option('--from <time>', 'from, inclusive: an ISO date (2025-05-01) or date-time (2025-05-01T12:00:00Z)')
        .option('--to <time>', 'to, exclusive')
        .option('--limit <n>', 'show at most this many events (default 50; more than 200 are fetched page by page)', positiveInt)
        .option('--tenant <tenant-id>', "platform admins: another tenant's events"),
    ),
  ).action(
    clientAction(async (o: AuditFlags) => {
      const want = o.limit ?? 50;
      const listing = (await clientFrom(o)).audit.list({
        ...(o.bunker ? { bunkerId: o.bunker } : {}),
        ...(o.action ? { action: o.action } : {}),
        ...(o.actor ? { actor: o.actor } : {}),
        ...(o.from ? { from: o.from } : {}),
        ...(o.to ? { to: o.to } : {}),
        ...(o.tenant ? { tenantId: o.tenant } : {}),
        limit: Math.min(want, PAGE_MAX),
      });
      const events: AuditEvent[] = [];
      for await (const e of listing) {
        events.push(e);
        if (events.length >= want) break;
      }
      if (o.json) printJson(events);
      else if (events.length) process.stdout.write(auditRows(events));
      else process.stderr.write('no audit events match\n');
      return 0;
    }),
  );
}
