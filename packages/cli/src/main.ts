import { Command } from 'commander';

type Register = (program: Command) => void;

/**
 * The top-level commands, each with the module that registers it (with its options and verbs).
 * A command line loads only the module of the command it names, so `scaibunker bunker ls` never
 * loads the server side and `serve` never the client verbs; the top-level help (and an unknown
 * command) loads none and lists these summaries. test/cli.test.ts checks they match what the
 * modules register.
 */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Register> }> = {};
function group(load: () => Promise<Register>, summaries: Record<string, string>): void {
  for (const [name, summary] of Object.entries(summaries)) COMMANDS[name] = { summary, load };
}
group(async () => (await import('./commands/server.js')).registerServerCommands, {
  serve:
    'Embedded mode: controller + one local worker in one process (SQLite, local blob store unless SCAIBUNKER_BLOB_STORE is set; Redis if REDIS_URL is set)',
  controller:
    'Controller only: HTTP API, scheduler, background jobs (workers connect with SCAIBUNKER_WORKER_TOKEN; quota counters in REDIS_URL)',
  proxy:
    'Storage proxy only: the /v1/modules/scaibunker/storage/* routes over the blob store (SCAIBUNKER_BLOB_STORE), no database or Redis; takes the worker token (SCAIBUNKER_WORKER_TOKEN) or capability tokens',
  worker: 'Worker daemon: runs bunkers for a controller (SCAIBUNKER_WORKER_TOKEN)',
});
group(async () => (await import('./commands/certify.js')).registerCertifyCommand, {
  certify:
    "Runs the provider conformance suite against this host's providers and reports each check and the host's facts (exit 1 on a failure)",
});
group(async () => (await import('./commands/bunker.js')).registerBunkerCommands, {
  bunker: 'Create, use and remove bunkers (client of the API)',
});
group(async () => (await import('./commands/snapshot.js')).registerSnapshotCommands, {
  snapshot: "Snapshots of bunkers' files: take, list, inspect, remove (restore: bunker create --from-snapshot)",
});
group(async () => (await import('./commands/bridge.js')).registerBridgeCommands, {
  bridge: 'Transit bridges: layer-2 segments for transit bunkers (create/rm: scaibunker:admin:tenant)',
});
group(async () => (await import('./commands/image.js')).registerImageCommands, {
  image: 'Images bunkers start from: register (bake from OCI or tar), list, inspect, remove',
  group:
    "Availability groups: workers that keep images warm and share them (platform groups: scaibunker:admin; a tenant's own: scaibunker:admin:tenant)",
});
group(async () => (await import('./commands/admin.js')).registerAdminCommands, {
  admin: 'Administration: tenants, API keys, workers (need scaibunker:admin); quota profiles (scaibunker:admin:tenant)',
});
group(async () => (await import('./commands/audit.js')).registerAuditCommand, {
  audit: "The tenant's audit trail, newest first: execs, file changes, bunkers, keys (needs scaibunker:audit:read)",
});
group(async () => (await import('./commands/usage.js')).registerUsageCommand, {
  usage: "The tenant's metered usage: CPU seconds, memory and disk MB-minutes, wall seconds (needs scaibunker:read)",
});

/** The command a command line names: its first operand (the top-level options take no value), or what `help` is asked about. */
export function commandNamed(args: string[]): string | undefined {
  const operands = args.filter((a) => !a.startsWith('-'));
  return operands[0] === 'help' ? operands[1] : operands[0];
}

export async function buildProgram(args: string[]): Promise<Command> {
  const program = new Command('scaibunker').description('ScaiBunker: multi-tenant sandboxed compute').version('0.1.0').showHelpAfterError();
  const named = commandNamed(args);
  const entry = named === undefined ? undefined : COMMANDS[named];
  if (entry) (await entry.load())(program);
  else for (const [name, { summary }] of Object.entries(COMMANDS)) program.command(name).description(summary);
  return program;
}

/** `scaibunker …` (packages/cli/bin/scaibunker.js calls this). */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await (await buildProgram(argv.slice(2))).parseAsync(argv);
  } catch (err) {
    process.stderr.write(`scaibunker: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
