import { runCommand } from '../../providers/host/runCommand.js';
import { check, linkExists, writeOptionalSysctl } from './hostCommands.js';

/** The kernel's tick here is 4 ms (HZ=250): a bucket smaller than one tick of data caps below the rate. */
const TICKS_PER_SECOND = 250;
/** Never below 64 KiB: a GSO super-packet must fit the bucket, and 64 KiB measured 47.9/50 Mbit here. */
const MIN_BURST_BYTES = 64 * 1024;

/** tbf arguments for `mbit` in each direction. */
export function tbfArgs(mbit: number): string[] {
  const burst = Math.max(Math.ceil((mbit * 1_000_000) / 8 / TICKS_PER_SECOND), MIN_BURST_BYTES);
  return ['tbf', 'rate', `${mbit}mbit`, 'burst', String(burst), 'latency', '50ms'];
}

/**
 * Caps both directions of a bunker at `mbit`: a tbf on the host veth's egress shapes what the
 * bunker downloads; what it uploads arrives on that veth's ingress, where only policing would
 * be possible (act_police is absent from this kernel), so an ingress filter redirects it to a
 * per-bunker ifb whose egress carries a second tbf. The ifb hands packets back to the veth's
 * receive path, so the nft rules still see them with iifname = the veth. Idempotent.
 */
export async function applyShaping(hostIf: string, ifb: string, mbit: number): Promise<void> {
  if (!(await linkExists(ifb))) check(await runCommand('ip', ['link', 'add', ifb, 'type', 'ifb']), `ip link add ${ifb}`);
  // The ifb only relays the bunker's packets; it needs no addresses of its own.
  writeOptionalSysctl(`/proc/sys/net/ipv6/conf/${ifb}/disable_ipv6`, '1');
  check(await runCommand('ip', ['link', 'set', ifb, 'up']), `ip link set ${ifb} up`);
  check(await runCommand('tc', ['qdisc', 'replace', 'dev', hostIf, 'root', ...tbfArgs(mbit)]), `tc qdisc ${hostIf} root`);
  check(await runCommand('tc', ['qdisc', 'replace', 'dev', ifb, 'root', ...tbfArgs(mbit)]), `tc qdisc ${ifb} root`);
  if (await redirectsTo(hostIf, ifb)) return;
  await runCommand('tc', ['qdisc', 'del', 'dev', hostIf, 'ingress']);
  check(await runCommand('tc', ['qdisc', 'add', 'dev', hostIf, 'handle', 'ffff:', 'ingress']), `tc qdisc ${hostIf} ingress`);
  check(
    await runCommand('tc', [
      ...['filter', 'add', 'dev', hostIf, 'parent', 'ffff:', 'protocol', 'all', 'prio', '1'],
      ...['u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', ifb],
    ]),
    `tc filter ${hostIf} ingress`,
  );
}

/** Whether the veth's ingress already redirects everything to the ifb (re-apply keeps it). */
async function redirectsTo(hostIf: string, ifb: string): Promise<boolean> {
  const r = await runCommand('tc', ['-j', 'filter', 'show', 'dev', hostIf, 'parent', 'ffff:']);
  if (r.code !== 0 || !r.stdout.trim()) return false;
  const filters = JSON.parse(r.stdout) as { options?: { actions?: { kind?: string; to_dev?: string }[] } }[];
  return filters.some((f) => f.options?.actions?.some((a) => a.kind === 'mirred' && a.to_dev === ifb));
}
