import { createHash } from 'node:crypto';
import { KeyedLock } from '../../providers/host/KeyedLock.js';
import { runCommand } from '../../providers/host/runCommand.js';
import { check, deleteTolerant, linkExists, listLinks, writeOptionalSysctl } from './hostCommands.js';
import { JsonStateDir } from './JsonStateDir.js';

/** One tenant's bridge on this worker; persisted as its state file. */
export interface TenantBridge {
  bridgeId: string;
  tenantId: string;
  /** The Linux bridge in the root namespace: `<prefix>b<10 hex of the id's hash>`. */
  ifName: string;
}

function isBridge(v: unknown): v is TenantBridge {
  const b = v as Partial<TenantBridge>;
  return typeof b?.bridgeId === 'string' && typeof b.tenantId === 'string' && typeof b.ifName === 'string';
}

/**
 * The `transit` profile's tenant-scoped layer-2 bridges: one Linux bridge per bridge id in the
 * ROOT namespace, without any address (IPv6 off too, so the host never speaks on it), whose
 * ports are the host ends of transit bunkers' veths (TransitPorts). Bridged frames must not
 * enter the IP/ARP netfilter hooks (br_netfilter is built in here and on, and an inet forward
 * drop would eat them), so `net.bridge.bridge-nf-call-{iptables,ip6tables,arptables}` are 0 —
 * in the root namespace, where the bridges are — and the bridge's own nf_call_* options too.
 *
 * A state file per bridge is written before the link exists; reconcile() re-creates every
 * bridge that has one and removes links with this prefix that have none.
 */
export class TenantBridges {
  private readonly store: JsonStateDir<TenantBridge>;
  private readonly bridges = new Map<string, TenantBridge>();
  private readonly lock = new KeyedLock();
  private readonly linkRe: RegExp;

  constructor(
    stateDir: string,
    private readonly prefix: string,
    private readonly log: (m: string) => void = () => {},
  ) {
    if (!/^[a-z]{2,4}$/.test(prefix)) throw new Error(`name prefix must be 2-4 lowercase letters, got '${prefix}'`);
    this.linkRe = new RegExp(`^${prefix}b[0-9a-f]{10}$`);
    this.store = new JsonStateDir(stateDir);
    for (const b of this.store.loadAll(isBridge).values()) this.bridges.set(b.bridgeId, b);
  }

  /** The bridge's link name (≤ 15 bytes): a hash of its id, so the same id always gets the same name. */
  ifName(bridgeId: string): string {
    return `${this.prefix}b${createHash('sha256').update(bridgeId).digest('hex').slice(0, 10)}`;
  }

  get(bridgeId: string): TenantBridge | undefined {
    const b = this.bridges.get(bridgeId);
    return b ? { ...b } : undefined;
  }

  ids(): string[] {
    return [...this.bridges.keys()].sort();
  }

  /** Makes (or re-applies) the bridge; refuses an id already made for another tenant. */
  async create(bridgeId: string, tenantId: string): Promise<TenantBridge> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(bridgeId)) throw new Error(`invalid bridge id ${JSON.stringify(bridgeId)}`);
    return this.lock.run('bridges', async () => {
      const existing = this.bridges.get(bridgeId);
      if (existing && existing.tenantId !== tenantId) throw new Error(`bridge ${bridgeId} exists for another tenant`);
      const ifName = this.ifName(bridgeId);
      for (const b of this.bridges.values())
        if (b.ifName === ifName && b.bridgeId !== bridgeId) throw new Error(`bridge ${bridgeId} hashes to the name of ${b.bridgeId}`);
      const bridge: TenantBridge = { bridgeId, tenantId, ifName };
      this.store.save(bridgeId, bridge);
      this.bridges.set(bridgeId, bridge);
      await this.ensureLink(bridge);
      return { ...bridge };
    });
  }

  /** Removes the link and the state file; a bridge this worker does not have is fine. */
  delete(bridgeId: string): Promise<void> {
    return this.lock.run('bridges', async () => {
      const ifName = this.bridges.get(bridgeId)?.ifName ?? this.ifName(bridgeId);
      await deleteTolerant('ip', ['link', 'del', ifName], () => linkExists(ifName));
      this.store.remove(bridgeId);
      this.bridges.delete(bridgeId);
    });
  }

  /** At worker start: every bridge with a state file is back; links with our prefix without one are removed. */
  reconcile(): Promise<{ restored: string[]; removed: string[] }> {
    return this.lock.run('bridges', async () => {
      const restored: string[] = [];
      const removed: string[] = [];
      for (const b of this.bridges.values()) {
        await this.ensureLink(b);
        restored.push(b.bridgeId);
      }
      const known = new Set([...this.bridges.values()].map((b) => b.ifName));
      for (const name of await listLinks()) {
        if (!this.linkRe.test(name) || known.has(name)) continue;
        this.log(`network: removing leftover bridge ${name} (no state file)`);
        await deleteTolerant('ip', ['link', 'del', name], () => linkExists(name));
        removed.push(name);
      }
      return { restored: restored.sort(), removed };
    });
  }

  private async ensureLink(b: TenantBridge): Promise<void> {
    // Bridged frames stay out of the IP/ARP hooks (see the class comment).
    for (const proto of ['iptables', 'ip6tables', 'arptables']) writeOptionalSysctl(`/proc/sys/net/bridge/bridge-nf-call-${proto}`, '0');
    if (!(await linkExists(b.ifName))) {
      check(
        await runCommand('ip', [
          ...['link', 'add', 'name', b.ifName, 'type', 'bridge'],
          ...['nf_call_iptables', '0', 'nf_call_ip6tables', '0', 'nf_call_arptables', '0'],
        ]),
        `ip link add ${b.ifName} type bridge`,
      );
    }
    writeOptionalSysctl(`/proc/sys/net/ipv6/conf/${b.ifName}/disable_ipv6`, '1');
    check(await runCommand('ip', ['addr', 'flush', 'dev', b.ifName]), `ip addr flush dev ${b.ifName}`);
    check(await runCommand('ip', ['link', 'set', b.ifName, 'up']), `ip link set ${b.ifName} up`);
  }
}
