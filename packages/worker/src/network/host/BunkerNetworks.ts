import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { KeyedLock } from '../../providers/host/KeyedLock.js';
import { runCommand } from '../../providers/host/runCommand.js';
import { BunkerNames } from './BunkerNames.js';
import { check, deleteTolerant, linkExists, listInetTables, listLinks, mustRunWithInput, writeOptionalSysctl } from './hostCommands.js';
import { NetworkStateStore } from './NetworkStateStore.js';
import { bunkerRuleset } from './nftRuleset.js';
import { SubnetAllocator } from './SubnetAllocator.js';
import { applyShaping } from './trafficShaping.js';
import type { BunkerNetwork, BunkerNetworksOptions, HostNetworkProfile, NetworkPlan } from './types.js';

const PROFILES: readonly HostNetworkProfile[] = ['registry', 'allowlisted', 'unrestricted'];
const NETNS_DIR = '/run/netns';
/** Restores and removals reconcile() runs at once (each is a dozen short host commands). */
const RECONCILE_CONCURRENCY = 4;

/**
 * Per-bunker host network plumbing for the `registry`, `allowlisted` and `unrestricted` profiles.
 *
 * Each bunker gets a named netns (/run/netns/<name>, joinable by path by a container runtime), a
 * veth pair whose host side stays in the root namespace and whose peer is the bunker's `eth0`,
 * a /30 of `subnet` (host side = gateway, bunker = the next address), an nft table matching only
 * on the host-side veth, and tbf shapers both ways (see trafficShaping.ts).
 *
 * IPv4 only: IPv6 is disabled on both veth ends and the table drops every IPv6 packet from the
 * bunker before conntrack, in every profile. The `allow6` set still exists because the DNS
 * responder writes AAAA answers for every bunker alike; a bunker without an IPv6 route fails
 * those connects at once (ENETUNREACH) and falls back to IPv4.
 *
 * Allocations live in one state file per bunker, written before any kernel object is created,
 * so every object a crash leaves behind is either restored or removed by reconcile(). All
 * allocations go through one lock (no two bunkers ever share a slot); setup and teardown of a
 * bunker are serialised per id.
 *
 * Root-namespace caveat: our base chains accept by policy, but a drop in any other table on the
 * same hook (docker's iptables-nft FORWARD policy, firewalld) still wins, so setup logs every
 * foreign base chain on prerouting/input/forward whose policy is drop.
 */
export class BunkerNetworks {
  private readonly names: BunkerNames;
  private readonly store: NetworkStateStore;
  private readonly allocator: SubnetAllocator;
  private readonly dnsPort: number;
  private readonly protectedAddresses: string[];
  private readonly maxConnections: number;
  private readonly log: (m: string) => void;
  /** By state key (hash of the bunker id). */
  private nets = new Map<string, BunkerNetwork>();
  private readonly byAddress = new Map<string, BunkerNetwork>();
  private readonly bunkerLocks = new KeyedLock();
  private readonly allocLock = new KeyedLock();
  private chainsChecked = false;

  constructor(opts: BunkerNetworksOptions) {
    if (!Number.isInteger(opts.dnsPort) || opts.dnsPort < 1 || opts.dnsPort > 65535) throw new Error(`invalid dnsPort ${opts.dnsPort}`);
    const maxConnections = opts.maxConnections ?? 512;
    if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new Error(`invalid maxConnections ${maxConnections}`);
    for (const a of opts.protectedAddresses) if (!isIP(a.split('/')[0] ?? '')) throw new Error(`invalid protected address '${a}'`);
    this.names = new BunkerNames(opts.namePrefix ?? 'sb');
    this.allocator = new SubnetAllocator(opts.subnet);
    this.store = new NetworkStateStore(opts.stateDir);
    this.dnsPort = opts.dnsPort;
    this.protectedAddresses = [...opts.protectedAddresses];
    this.maxConnections = maxConnections;
    this.log = opts.log ?? (() => {});
    this.replaceAll(this.store.loadAll().networks);
  }

  /**
   * Creates (or re-applies) the bunker's netns, veth, addresses, rules and shapers. Idempotent:
   * a second call keeps the allocation and applies `plan`, leaving allow4/allow6 elements intact.
   */
  async setup(bunkerId: string, plan: NetworkPlan): Promise<BunkerNetwork> {
    validatePlan(plan);
    return this.bunkerLocks.run(bunkerId, async () => {
      const net = await this.allocate(bunkerId, plan);
      await this.apply(net);
      return { ...net };
    });
  }

  /** Removes netns, veth, ifb, nft table and state file; anything already gone is fine. */
  teardown(bunkerId: string): Promise<void> {
    return this.bunkerLocks.run(bunkerId, () => this.removeKey(this.names.key(bunkerId)));
  }

  /**
   * At worker start: re-applies the rules of every live bunker from its state file and removes
   * everything else this class (with this name prefix) ever created — bunkers not in `live`,
   * unreadable state files, and objects without any state file. Returns bunker ids.
   */
  async reconcile(live: ReadonlySet<string>): Promise<{ restored: string[]; removed: string[] }> {
    this.store.sweepTemporaries();
    const { networks, unreadable } = this.store.loadAll();
    await this.allocLock.run('alloc', async () => this.replaceAll(networks));
    const restored: string[] = [];
    const removed: string[] = [];
    const work = [...networks.values()].map((net) => async () => {
      if (live.has(net.bunkerId)) {
        await this.setup(net.bunkerId, {
          profile: net.profile,
          bandwidthMbit: net.bandwidthMbit,
          ...(net.allowlist ? { allowlist: net.allowlist } : {}),
        });
        restored.push(net.bunkerId);
      } else {
        await this.teardown(net.bunkerId);
        removed.push(net.bunkerId);
      }
    });
    await runPool(work, RECONCILE_CONCURRENCY);
    for (const key of unreadable) {
      this.log(`network: removing objects of unreadable state file ${key}.json`);
      await this.removeKey(key);
    }
    await this.removeOrphans();
    return { restored: restored.sort(), removed: removed.sort() };
  }

  /** The bunker whose address `ip` is (the source of a DNS query), if any. */
  lookupByAddress(ip: string): BunkerNetwork | undefined {
    const net = this.byAddress.get(ip);
    return net ? { ...net } : undefined;
  }

  list(): BunkerNetwork[] {
    return [...this.nets.values()].map((n) => ({ ...n }));
  }

  /** Finds or allocates the bunker's slot and persists it (with `plan`) before anything is created. */
  private allocate(bunkerId: string, plan: NetworkPlan): Promise<BunkerNetwork> {
    return this.allocLock.run('alloc', async () => {
      const key = this.names.key(bunkerId);
      const existing = this.nets.get(key);
      if (existing && existing.bunkerId !== bunkerId)
        throw new Error(`bunker ${bunkerId} hashes to the names of bunker ${existing.bunkerId}; refusing to share them`);
      let net: BunkerNetwork;
      if (existing) {
        net = { ...existing, ...plan };
      } else {
        const taken = new Set<number>();
        for (const n of this.nets.values()) {
          const s = this.allocator.slotOf(n.address);
          if (s !== undefined) taken.add(s);
        }
        const slot = this.allocator.allocate(taken);
        const netnsName = this.names.netns(key);
        net = {
          bunkerId,
          netnsName,
          netnsPath: `${NETNS_DIR}/${netnsName}`,
          hostIf: this.names.hostIf(key),
          address: slot.address,
          gateway: slot.gateway,
          prefixLen: slot.prefixLen,
          table: this.names.table(key),
          ...plan,
        };
      }
      this.store.save(key, net);
      this.remember(key, net);
      return net;
    });
  }

  private async apply(net: BunkerNetwork): Promise<void> {
    const key = this.names.key(net.bunkerId);
    await this.prepareHost();
    await this.ensureLink(net);
    writeOptionalSysctl(`/proc/sys/net/ipv6/conf/${net.hostIf}/disable_ipv6`, '1');
    await mustRunWithInput(
      'ip',
      ['-batch', '-'],
      `addr replace ${net.gateway}/${net.prefixLen} dev ${net.hostIf}\nlink set ${net.hostIf} up\n`,
    );
    // Inside the bunker: no IPv6 on any interface it has or creates; address, lo, default route.
    check(
      await runCommand('ip', [
        ...['netns', 'exec', net.netnsName, 'sysctl', '-q', '-w'],
        ...['net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv6.conf.eth0.disable_ipv6=1'],
      ]),
      `sysctl in ${net.netnsName}`,
    );
    await mustRunWithInput(
      'ip',
      ['-n', net.netnsName, '-batch', '-'],
      [
        'link set lo up',
        `addr replace ${net.address}/${net.prefixLen} dev eth0`,
        'link set eth0 up',
        `route replace default via ${net.gateway} dev eth0`,
      ].join('\n'),
    );
    await mustRunWithInput(
      'nft',
      ['-f', '-'],
      bunkerRuleset(net, {
        dnsPort: this.dnsPort,
        maxConnections: this.maxConnections,
        blocked: [...this.protectedAddresses, this.allocator.subnet],
      }),
    );
    if (net.profile === 'unrestricted') this.enableConntrackAccounting();
    await applyShaping(net.hostIf, this.names.ifb(key), net.bandwidthMbit);
  }

  /** The netns and the veth pair, recreated when one half is missing (a veth dies with either end). */
  private async ensureLink(net: BunkerNetwork): Promise<void> {
    if (!existsSync(net.netnsPath)) {
      // A stale host veth would be paired with an eth0 in a netns nobody can name any more.
      await deleteTolerant('ip', ['link', 'del', net.hostIf], () => linkExists(net.hostIf));
      check(await runCommand('ip', ['netns', 'add', net.netnsName]), `ip netns add ${net.netnsName}`);
    }
    if (await linkExists(net.hostIf)) {
      if ((await runCommand('ip', ['-n', net.netnsName, 'link', 'show', 'dev', 'eth0'])).code === 0) return;
      await deleteTolerant('ip', ['link', 'del', net.hostIf], () => linkExists(net.hostIf));
    }
    check(
      await runCommand('ip', ['link', 'add', net.hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', net.netnsName]),
      `ip link add ${net.hostIf}`,
    );
  }

  /**
   * Routing between the bunkers' veths and the uplink needs ip_forward in the root namespace,
   * where the veths' host sides live (written on every apply: something else may have reset
   * it). Once per instance: a warning for any foreign base chain whose drop policy would
   * override our accepts.
   */
  private async prepareHost(): Promise<void> {
    writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    if (this.chainsChecked) return;
    const r = await runCommand('nft', ['-j', 'list', 'chains']);
    if (r.code === 0 && r.stdout.trim()) {
      const chains = (
        JSON.parse(r.stdout) as { nftables: { chain?: { family: string; table: string; name: string; hook?: string; policy?: string } }[] }
      ).nftables;
      for (const { chain } of chains) {
        if (!chain?.hook || chain.policy !== 'drop' || this.names.keyOfTable(chain.table) !== undefined) continue;
        if (['prerouting', 'input', 'forward', 'postrouting'].includes(chain.hook))
          this.log(
            `network: base chain ${chain.family} ${chain.table} ${chain.name} (${chain.hook}) has policy drop and overrides bunker accepts`,
          );
      }
    }
    this.chainsChecked = true;
  }

  /**
   * Byte/packet counters and start timestamps on the conntrack entries flow records are built
   * from. Forwarded flows are tracked in the ROOT namespace (the host-side veth and the uplink
   * are there), so these per-netns sysctls are set here, not in the bunker's netns; they only
   * affect entries created afterwards, so they are set before the bunker can send anything.
   */
  private enableConntrackAccounting(): void {
    writeFileSync('/proc/sys/net/netfilter/nf_conntrack_acct', '1');
    writeFileSync('/proc/sys/net/netfilter/nf_conntrack_timestamp', '1');
  }

  /** Removes every object of a key; veths first so the netns cannot keep the pair alive. */
  private async removeKey(key: string): Promise<void> {
    const hostIf = this.names.hostIf(key);
    const ifb = this.names.ifb(key);
    const netns = this.names.netns(key);
    const table = this.names.table(key);
    await deleteTolerant('ip', ['link', 'del', hostIf], () => linkExists(hostIf));
    await deleteTolerant('ip', ['link', 'del', ifb], () => linkExists(ifb));
    await deleteTolerant('ip', ['netns', 'del', netns], async () => existsSync(`${NETNS_DIR}/${netns}`));
    await deleteTolerant(
      'nft',
      ['delete', 'table', 'inet', table],
      async () => (await runCommand('nft', ['list', 'table', 'inet', table])).code === 0,
    );
    await this.allocLock.run('alloc', async () => {
      this.store.remove(key);
      this.forget(key);
    });
  }

  /** Objects carrying this instance's name prefix whose key has no known bunker. */
  private async removeOrphans(): Promise<void> {
    const known = new Set(this.nets.keys());
    const orphanKeys = new Set<string>();
    for (const name of await listLinks()) {
      const k = this.names.keyOfLink(name);
      if (k && !known.has(k)) orphanKeys.add(k);
    }
    if (existsSync(NETNS_DIR)) {
      for (const name of readdirSync(NETNS_DIR)) {
        const k = this.names.keyOfNetns(name);
        if (k && !known.has(k)) orphanKeys.add(k);
      }
    }
    for (const name of await listInetTables()) {
      const k = this.names.keyOfTable(name);
      if (k && !known.has(k)) orphanKeys.add(k);
    }
    for (const k of orphanKeys) {
      this.log(`network: removing leftover objects of ${k} (no state file)`);
      await this.removeKey(k);
    }
  }

  private replaceAll(networks: Map<string, BunkerNetwork>): void {
    this.nets = new Map();
    this.byAddress.clear();
    for (const [key, net] of networks) this.remember(key, net);
  }

  private remember(key: string, net: BunkerNetwork): void {
    const old = this.nets.get(key);
    if (old) this.byAddress.delete(old.address);
    this.nets.set(key, net);
    this.byAddress.set(net.address, net);
  }

  private forget(key: string): void {
    const old = this.nets.get(key);
    if (!old) return;
    this.nets.delete(key);
    if (this.byAddress.get(old.address) === old) this.byAddress.delete(old.address);
  }
}

function validatePlan(plan: NetworkPlan): void {
  if (!PROFILES.includes(plan.profile)) throw new Error(`network profile '${String(plan.profile)}' has no host plumbing`);
  if (!Number.isInteger(plan.bandwidthMbit) || plan.bandwidthMbit < 1 || plan.bandwidthMbit > 10_000)
    throw new Error(`bandwidthMbit must be an integer 1-10000, got ${plan.bandwidthMbit}`);
  if (plan.profile === 'allowlisted' && !plan.allowlist?.length) throw new Error('an allowlisted network needs a non-empty allowlist');
}

/** Runs thunks with at most `limit` in flight; rejects with the first failure after all settle. */
async function runPool(tasks: (() => Promise<void>)[], limit: number): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++]!;
      await task().catch((e: unknown) => errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  if (errors.length) throw errors[0];
}
