/**
 * `scaibunker usage`: the tenant's metered usage over the SDK (needs scaibunker:read).
 */
import { schemas } from '@scaibunker/core';
import type { UsageGroupBy, UsageReport } from '@scaibunker/sdk';
import { type Command, Option } from 'commander';
import { renderTable } from '../ui/table.js';
import { type ClientFlags, clientAction, clientFrom, exitTwoOnUsageErrors, printJson, withClientOptions } from './clientCommand.js';

const KEY_HEADER: Record<UsageGroupBy, string | null> = { bunker: 'BUNKER', day: 'DAY', hour: 'HOUR', image: 'IMAGE', none: null };

/** Three decimals at most, no trailing zeros. */
const num = (n: number) => String(Number(n.toFixed(3)));

function usageRows(report: UsageReport): string {
  const keyHeader = KEY_HEADER[report.group_by];
  const metrics = ['CPU-SECONDS', 'MEMORY-MB-MINUTES', 'DISK-MB-MINUTES', 'WALL-SECONDS'];
  return renderTable(
    keyHeader ? [keyHeader, ...metrics] : metrics,
    report.items.map((i) => {
      const values = [num(i.cpu_seconds), num(i.memory_mb_minutes), num(i.disk_mb_minutes), num(i.wall_seconds)];
      return keyHeader ? [i.key ?? '-', ...values] : values;
    }),
  );
}

export function registerUsageCommand(program: Command): void {
  withClientOptions(
    exitTwoOnUsageErrors(
      program
        .command('usage')
        .description("The tenant's metered usage: CPU seconds, memory and disk MB-minutes, wall seconds (needs scaibunker:read)")
        .option('--from <time>', 'start, inclusive: an ISO date (2025-05-01) or date-time (2025-05-01T12:00:00Z); default: --to minus 24 h')
        .option('--to <time>', `end, exclusive; default now; at most ${schemas.USAGE_MAX_RANGE_DAYS} days after --from`)
        .addOption(
          new Option('--group-by <group>', 'sum per bunker, UTC day, UTC hour or image (default: one total)').choices(
            schemas.USAGE_GROUP_BY,
          ),
        )
        .option('--tenant <tenant-id>', "platform admins: another tenant's usage"),
    ),
  ).action(
    clientAction(async (o: ClientFlags & { from?: string; to?: string; groupBy?: UsageGroupBy; tenant?: string }) => {
      const report = await (await clientFrom(o)).usage.get({
        ...(o.from ? { from: o.from } : {}),
        ...(o.to ? { to: o.to } : {}),
        ...(o.groupBy ? { groupBy: o.groupBy } : {}),
        ...(o.tenant ? { tenantId: o.tenant } : {}),
      });
      if (o.json) {
        printJson(report);
        return 0;
      }
      process.stderr.write(`usage from ${report.from} to ${report.to}\n`);
      if (report.items.length) process.stdout.write(usageRows(report));
      else process.stderr.write('no usage in this range\n');
      return 0;
    }),
  );
}
