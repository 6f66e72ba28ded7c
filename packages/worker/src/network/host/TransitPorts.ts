import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { KeyedLock } from '../../providers/host/KeyedLock.js';
import { runCommand } from '../../providers/host/runCommand.js';
import type { TransitInterfaceSpec } from '../../WorkerApi.js';
import { check, deleteTolerant, linkExists, listLinks, mustRunWithInput, writeOptionalSysctl } from './hostCommands.js';
import { JsonStateDir } from './JsonStateDir.js';
import type { TenantBridges } from './TenantBridges.js';
import { applyShaping } from './trafficShaping.js';

const NETNS_DIR = '/run/netns';
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** One interface of a transit bunker. */
export interface TransitPort {
  /** Inside the bunker: eth0, eth1, … */
  name: string;
  /** Host end of the veth, a port of the bridge: `<prefix>p<9 hex of the bunker id's hash><index>`. */
  hostIf: string;
  bridgeId: string;
  tenantId: string;
  mac: string;
  spoofGuard: boolean;
  /** The ifb its uploads are shaped on: `<prefix>q<same 9 hex><index>` (absent in older state files: unshaped). */
  ifb?: string;
}

/** A transit bunker's netns and interfaces; persisted as its state file. */
export interface TransitAttachment {
  bunkerId: string;
  netnsName: string;
  netnsPath: string;
  ports: TransitPort[];
  /** Each port's cap both ways (tbf on the port, and on an ifb for what the bunker sends). */
  bandwidthMbit?: number;
}

function isAttachment(v: unknown): v is TransitAttachment {
  const a = v as Partial<TransitAttachment>;
  return typeof a?.bunkerId === 'string' && typeof a.netnsName === 'string' && Array.isArray(a.ports);
}

/**
 * The `transit` profile's per-bunker plumbing: a named netns (`<prefix>t-<key>`) whose only
 * interfaces besides lo are one veth per `interfaces[]` entry — the bunker's end is `ethN` with
 * the entry's MAC, the host end a port of the entry's bridge (TenantBridges). No address, no
 * route, no DNS: the bunker reaches what is on its bridges and nothing else.
 *
 * Spoof guard: one `bridge` table `<prefix>_guard` (prerouting, priority -200) drops frames from a
 * guarded port whose source MAC is not the port's, ARP whose sender hardware address is not the
 * port's, and VLAN-tagged frames (which would hide an ARP from the match). It matches on sets of
 * interface names (`meta ibrname` is not available on this kernel) and is rewritten whole in one
 * nft transaction whenever a guarded port comes or goes; it is deleted when none is left.
 *
 * A bridge must belong to the interface's tenant, or the attach is refused before anything is
 * made. State files are written before kernel objects; reconcile() restores live bunkers and
 * removes everything else with this prefix.
 */
export class TransitPorts {
  private readonly store: JsonStateDir<TransitAttachment>;
  private readonly attachments = new Map<string, TransitAttachment>();
  private readonly bunkerLocks = new KeyedLock();
  private readonly guardLock = new KeyedLock();
  private readonly portRe: RegExp;
  private readonly ifbRe: RegExp;
  private readonly netnsRe: RegExp;
  readonly guardTable: string;

  constructor(
    stateDir: string,
    private readonly prefix: string,
    private readonly bridges: TenantBridges,
    private readonly log: (m: string) => void = () => {},
  ) {
    if (!/^[a-z]{2,4}$/.test(prefix)) throw new Error(`name prefix must be 2-4 lowercase letters, got '${prefix}'`);
    this.portRe = new RegExp(`^${prefix}p[0-9a-f]{9}[0-7]$`);
    this.ifbRe = new RegExp(`^${prefix}q[0-9a-f]{9}[0-7]$`);
    this.netnsRe = new RegExp(`^${prefix}t-[0-9a-f]{10}$`);
    this.guardTable = `${prefix}_guard`;
    this.store = new JsonStateDir(stateDir);
    for (const a of this.store.loadAll(isAttachment).values()) this.attachments.set(a.bunkerId, a);
  }

  private key(bunkerId: string): string {
    return createHash('sha256').update(bunkerId).digest('hex');
  }

  get(bunkerId: string): TransitAttachment | undefined {
    const a = this.attachments.get(bunkerId);
    return a ? structuredClone(a) : undefined;
  }

  list(): TransitAttachment[] {
    return [...this.attachments.values()].map((a) => structuredClone(a));
  }

  /**
   * Creates (or re-applies) the bunker's netns and interfaces, each shaped to `bandwidthMbit`
   * both ways when given; refuses a bridge of another tenant.
   */
  async attach(bunkerId: string, interfaces: readonly TransitInterfaceSpec[], bandwidthMbit?: number): Promise<TransitAttachment> {
    if (interfaces.length < 1 || interfaces.length > 8) throw new Error('a transit bunker has 1-8 interfaces');
    const macs = new Set<string>();
    for (const i of interfaces) {
      const bridge = this.bridges.get(i.bridgeId);
      if (!bridge) throw new Error(`this worker has no bridge ${i.bridgeId}`);
      if (bridge.tenantId !== i.tenantId) throw new Error(`bridge ${i.bridgeId} belongs to another tenant`);
      const mac = i.mac.toLowerCase();
      if (!MAC_RE.test(mac) || (Number.parseInt(mac.slice(0, 2), 16) & 1) === 1) throw new Error(`invalid unicast MAC ${i.mac}`);
      if (macs.has(mac)) throw new Error(`MAC ${mac} is given twice`);
      macs.add(mac);
    }
    return this.bunkerLocks.run(bunkerId, async () => {
      const key = this.key(bunkerId);
      const netnsName = `${this.prefix}t-${key.slice(0, 10)}`;
      for (const other of this.attachments.values())
        if (other.bunkerId !== bunkerId && other.netnsName === netnsName)
          throw new Error(`bunker ${bunkerId} hashes to the names of bunker ${other.bunkerId}`);
      const att: TransitAttachment = {
        bunkerId,
        netnsName,
        netnsPath: `${NETNS_DIR}/${netnsName}`,
        ports: interfaces.map((i, n) => ({
          name: `eth${n}`,
          hostIf: `${this.prefix}p${key.slice(0, 9)}${n}`,
          bridgeId: i.bridgeId,
          tenantId: i.tenantId,
          mac: i.mac.toLowerCase(),
          spoofGuard: i.spoofGuard,
          ifb: `${this.prefix}q${key.slice(0, 9)}${n}`,
        })),
        ...(bandwidthMbit !== undefined ? { bandwidthMbit } : {}),
      };
      this.store.save(bunkerId, att);
      this.attachments.set(bunkerId, att);
      try {
        await this.apply(att);
      } catch (err) {
        await this.remove(att).catch(() => undefined);
        throw err;
      }
      return structuredClone(att);
    });
  }

  /** Removes the bunker's interfaces, netns, guard entries and state file; idempotent. */
  detach(bunkerId: string): Promise<void> {
    return this.bunkerLocks.run(bunkerId, async () => {
      const att = this.attachments.get(bunkerId);
      if (att) await this.remove(att);
    });
  }

  /** At worker start (after the bridges): live bunkers are re-applied, the rest and any leftover removed. */
  async reconcile(live: ReadonlySet<string>): Promise<{ restored: string[]; removed: string[] }> {
    const restored: string[] = [];
    const removed: string[] = [];
    for (const att of [...this.attachments.values()]) {
      const bridgesThere = att.ports.every((p) => this.bridges.get(p.bridgeId)?.tenantId === p.tenantId);
      if (live.has(att.bunkerId) && bridgesThere) {
        await this.bunkerLocks.run(att.bunkerId, () => this.apply(att));
        restored.push(att.bunkerId);
      } else {
        await this.detach(att.bunkerId);
        removed.push(att.bunkerId);
      }
    }
    const ports = new Set([...this.attachments.values()].flatMap((a) => a.ports.flatMap((p) => [p.hostIf, ...(p.ifb ? [p.ifb] : [])])));
    const namespaces = new Set([...this.attachments.values()].map((a) => a.netnsName));
    for (const name of await listLinks())
      if ((this.portRe.test(name) || this.ifbRe.test(name)) && !ports.has(name)) {
        this.log(`network: removing leftover transit port ${name}`);
        await deleteTolerant('ip', ['link', 'del', name], () => linkExists(name));
      }
    if (existsSync(NETNS_DIR))
      for (const name of readdirSync(NETNS_DIR))
        if (this.netnsRe.test(name) && !namespaces.has(name)) {
          this.log(`network: removing leftover transit netns ${name}`);
          await deleteTolerant('ip', ['netns', 'del', name], async () => existsSync(`${NETNS_DIR}/${name}`));
        }
    await this.writeGuard();
    return { restored: restored.sort(), removed: removed.sort() };
  }

  private async apply(att: TransitAttachment): Promise<void> {
    if (!existsSync(att.netnsPath)) {
      for (const p of att.ports) await deleteTolerant('ip', ['link', 'del', p.hostIf], () => linkExists(p.hostIf));
      check(await runCommand('ip', ['netns', 'add', att.netnsName]), `ip netns add ${att.netnsName}`);
    }
    check(await runCommand('ip', ['-n', att.netnsName, 'link', 'set', 'lo', 'up']), `lo up in ${att.netnsName}`);
    // The guard must be in place before a port can carry a frame.
    await this.writeGuard();
    for (const p of att.ports) {
      const bridge = this.bridges.get(p.bridgeId);
      if (!bridge || bridge.tenantId !== p.tenantId) throw new Error(`bridge ${p.bridgeId} is not this tenant's bridge here`);
      if (await linkExists(p.hostIf)) {
        if ((await runCommand('ip', ['-n', att.netnsName, 'link', 'show', 'dev', p.name])).code !== 0)
          await deleteTolerant('ip', ['link', 'del', p.hostIf], () => linkExists(p.hostIf));
      }
      if (!(await linkExists(p.hostIf)))
        check(
          await runCommand('ip', ['link', 'add', p.hostIf, 'type', 'veth', 'peer', 'name', p.name, 'netns', att.netnsName]),
          `ip link add ${p.hostIf}`,
        );
      // The host end never speaks: no addresses, no IPv6 link-local, just a bridge port.
      writeOptionalSysctl(`/proc/sys/net/ipv6/conf/${p.hostIf}/disable_ipv6`, '1');
      await mustRunWithInput('ip', ['-batch', '-'], `link set ${p.hostIf} master ${bridge.ifName}\nlink set ${p.hostIf} up\n`);
      await mustRunWithInput(
        'ip',
        ['-n', att.netnsName, '-batch', '-'],
        `link set ${p.name} down\nlink set ${p.name} address ${p.mac}\nlink set ${p.name} up\n`,
      );
      // Frames the bunker sends enter the bridge through the port's ingress: redirected to the
      // ifb's tbf first, they come back to the port and are bridged (and guarded) as before.
      if (att.bandwidthMbit !== undefined && p.ifb) await applyShaping(p.hostIf, p.ifb, att.bandwidthMbit);
    }
  }

  private async remove(att: TransitAttachment): Promise<void> {
    for (const p of att.ports) {
      await deleteTolerant('ip', ['link', 'del', p.hostIf], () => linkExists(p.hostIf));
      const ifb = p.ifb;
      if (ifb) await deleteTolerant('ip', ['link', 'del', ifb], () => linkExists(ifb));
    }
    await deleteTolerant('ip', ['netns', 'del', att.netnsName], async () => existsSync(att.netnsPath));
    this.store.remove(att.bunkerId);
    this.attachments.delete(att.bunkerId);
    await this.writeGuard();
  }

  /** The guard table for every guarded port now known, in one transaction; none left: no table. */
  private writeGuard(): Promise<void> {
    return this.guardLock.run('guard', async () => {
      const guarded = [...this.attachments.values()].flatMap((a) => a.ports.filter((p) => p.spoofGuard));
      const exists = (await runCommand('nft', ['list', 'table', 'bridge', this.guardTable])).code === 0;
      if (guarded.length === 0) {
        if (exists) await mustRunWithInput('nft', ['-f', '-'], `delete table bridge ${this.guardTable}\n`);
        return;
      }
      const names = guarded.map((p) => `"${p.hostIf}"`).join(', ');
      const pairs = guarded.map((p) => `"${p.hostIf}" . ${p.mac}`).join(', ');
      await mustRunWithInput(
        'nft',
        ['-f', '-'],
        [
          `table bridge ${this.guardTable} {}`,
          `delete table bridge ${this.guardTable}`,
          `table bridge ${this.guardTable} {`,
          `  set guarded { type ifname; elements = { ${names} } }`,
          `  set port_mac { type ifname . ether_addr; elements = { ${pairs} } }`,
          '  chain pre {',
          '    type filter hook prerouting priority -200; policy accept;',
          '    iifname @guarded ether type vlan drop',
          '    iifname @guarded iifname . ether saddr != @port_mac drop',
          '    iifname @guarded ether type arp iifname . arp saddr ether != @port_mac drop',
          '  }',
          '}',
          '',
        ].join('\n'),
      );
    });
  }
}
