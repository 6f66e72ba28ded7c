/**
 * The NIC of a networked microVM, plumbed inside the bunker's network namespace.
 *
 * Design: the worker's networking (`BunkerNetworking.attach`) is the same as for a container —
 * a netns whose `eth0` is a veth whose host end, in the ROOT namespace, carries every rule of
 * the bunker (nft table, DNS redirect, shapers). A VM cannot join a netns, so inside that netns
 * a TAP (`tap0`) is made for QEMU, which runs in the netns too (it opens the TAP by name), and
 * L2 is passed between the TAP and `eth0` both ways by tc (`u32 match u32 0 0` — this host's
 * kernel has no matchall classifier — with `mirred egress redirect`). The address moves off
 * `eth0` into the guest, and the guest's MAC is `eth0`'s own, so the host end's neighbour entry
 * and the source checks hold exactly as for a container. Why this shape and not a TAP in the
 * root namespace replacing the veth's host end: it reuses all the tested rule, reconcile and
 * teardown code unchanged, and everything guest-specific lives inside the netns, where the guest
 * cannot reach it (QEMU is its only way out) and where it dies with the netns at detach.
 */
import { runCommand } from '../host/runCommand.js';

export const GUEST_TAP = 'tap0';
const INNER_IF = 'eth0';

/** Idempotent: a second run replaces the TAP and the filters. */
const PLUMB = `set -e
ip link del ${GUEST_TAP} 2>/dev/null || true
tc qdisc del dev ${INNER_IF} ingress 2>/dev/null || true
ip tuntap add dev ${GUEST_TAP} mode tap
ip addr flush dev ${INNER_IF}
ip link set ${INNER_IF} up
ip link set ${GUEST_TAP} up
for pair in "${INNER_IF} ${GUEST_TAP}" "${GUEST_TAP} ${INNER_IF}"; do
  set -- $pair
  tc qdisc add dev "$1" ingress
  tc filter add dev "$1" ingress protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev "$2"
done
ip -o link show dev ${INNER_IF}
`;

/** Makes the TAP and its redirects in the netns at `netnsPath`; returns the MAC the guest must use. */
export async function plumbGuestNic(netnsPath: string): Promise<{ tap: string; mac: string }> {
  const r = await runCommand('nsenter', [`--net=${netnsPath}`, 'sh', '-c', PLUMB]);
  if (r.code !== 0) throw new Error(`plumbing the guest NIC in ${netnsPath}: ${r.stderr.trim() || `exit ${r.code}`}`);
  const mac = /link\/ether ([0-9a-f]{2}(?::[0-9a-f]{2}){5})/.exec(r.stdout)?.[1];
  if (!mac) throw new Error(`no MAC on ${INNER_IF} in ${netnsPath}: ${r.stdout.trim()}`);
  return { tap: GUEST_TAP, mac };
}

/** The first IPv4 nameserver of a resolv.conf's text (what a container bunker would be given). */
export function nameserverOf(resolvConf: string): string | undefined {
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (m) return m[1];
  }
  return undefined;
}
