import { existsSync, readdirSync } from 'node:fs';
import { runCommand } from '../../packages/worker/src/providers/host/runCommand.js';

/**
 * Kernel objects a worker network with this name prefix still owns: netns, links (veth host
 * ends, ifbs, transit bridges and their ports), nft tables (inet per bunker, the bridge spoof
 * guard) and qdiscs. Empty once every bunker network and every bridge is torn down.
 */
export async function networkObjects(prefix: string): Promise<string[]> {
  const key = '[0-9a-f]{10}';
  const found: string[] = [];
  if (existsSync('/run/netns')) found.push(...readdirSync('/run/netns').filter((n) => new RegExp(`^${prefix}[nt]-${key}$`).test(n)));
  const links = JSON.parse((await runCommand('ip', ['-j', 'link', 'show'])).stdout) as Array<{ ifname: string }>;
  found.push(...links.map((l) => l.ifname).filter((n) => new RegExp(`^${prefix}([vib]${key}|p[0-9a-f]{9}[0-7])$`).test(n)));
  found.push(
    ...(await runCommand('nft', ['list', 'tables', 'bridge'])).stdout.split('\n').filter((l) => l === `table bridge ${prefix}_guard`),
  );
  found.push(
    ...(await runCommand('nft', ['list', 'tables'])).stdout.split('\n').filter((l) => new RegExp(`^table inet ${prefix}_${key}$`).test(l)),
  );
  found.push(
    ...(await runCommand('tc', ['qdisc', 'show'])).stdout.split('\n').filter((l) => new RegExp(`dev ${prefix}[vi]${key} `).test(l)),
  );
  return found;
}
