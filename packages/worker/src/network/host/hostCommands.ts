import { writeFileSync } from 'node:fs';
import { type CommandResult, runCommand } from '../../providers/host/runCommand.js';

/** Runs a host command feeding `input` on stdin: a whole ruleset or address plan in one process (and, for nft, one transaction). */
export function runWithInput(cmd: string, args: readonly string[], input: string, timeoutMs = 30_000): Promise<CommandResult> {
  return runCommand(cmd, args, { input, timeoutMs });
}

/** Throws with the command's stderr when it exited non-zero. */
export function check(r: CommandResult, what: string): CommandResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

export async function mustRunWithInput(cmd: string, args: readonly string[], input: string): Promise<CommandResult> {
  return check(await runWithInput(cmd, args, input), `${cmd} ${args.join(' ')}`);
}

/** True when a link of that name exists in the root namespace. */
export async function linkExists(name: string): Promise<boolean> {
  return (await runCommand('ip', ['link', 'show', 'dev', name])).code === 0;
}

/** Names of all links in the root namespace. */
export async function listLinks(): Promise<string[]> {
  const r = check(await runCommand('ip', ['-j', 'link', 'show']), 'ip -j link show');
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

/** Names of the inet nft tables. */
export async function listInetTables(): Promise<string[]> {
  const r = check(await runCommand('nft', ['-j', 'list', 'tables', 'inet']), 'nft list tables');
  const parsed = JSON.parse(r.stdout || '{"nftables":[]}') as { nftables: { table?: { name: string } }[] };
  return parsed.nftables.flatMap((o) => (o.table ? [o.table.name] : []));
}

/**
 * Deletes something with a command and treats "it was already gone" as success: the delete
 * failing is fine when `stillThere` then says the object does not exist.
 */
export async function deleteTolerant(cmd: string, args: readonly string[], stillThere: () => Promise<boolean>): Promise<void> {
  const r = await runCommand(cmd, args);
  if (r.code === 0) return;
  if (await stillThere()) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
}

/** Writes a sysctl that does not exist when IPv6 is compiled out (then there is nothing to disable). */
export function writeOptionalSysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
