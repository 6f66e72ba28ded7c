import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NetworkProfile, REGISTRY_HOSTNAMES } from '@scaibunker/core';
import type { BunkerAttachment, BunkerNetworking } from '../providers/BunkerNetworking.js';
import { runCommand } from '../providers/host/runCommand.js';
import type { BunkerSpec } from '../providers/Provider.js';
import { AddressOwners } from './audit/AddressOwners.js';
import { FlowAuditor } from './audit/FlowAuditor.js';
import { HostnameLog } from './audit/HostnameLog.js';
import { DnsResponder } from './dns/DnsResponder.js';
import { NftSetWriter } from './dns/NftSetWriter.js';
import { BunkerNetworks } from './host/BunkerNetworks.js';
import { writeFileAtomic } from './host/JsonStateDir.js';
import { TenantBridges } from './host/TenantBridges.js';
import { TransitPorts } from './host/TransitPorts.js';
import type { HostNetworkProfile } from './host/types.js';

export interface WorkerNetworkOptions {
  /** State files and the bunkers' resolv.conf live under `<dataDir>/network`. */
  dataDir: string;
  /** IPv4 pool the bunkers' /30s come from (default 10.200.0.0/16); distinct per worker on one host. */
  subnet?: string;
  /** Where the responder sends allowed A/AAAA questions (default: the host's first IPv4 nameserver). */
  dnsUpstream?: { host: string; port: number };
  /** Port the responder binds on 0.0.0.0 (default 0: any free one; the rules follow it). */
  dnsPort?: number;
  /** Egress cap of a bunker that asks for none (default 100 Mbit/s). */
  defaultBandwidthMbit?: number;
  /** Addresses bunkers must never reach besides the private ranges (the controller's, when remote). */
  protectedAddresses?: string[];
  /** Kernel object name prefix (tests use their own so they never touch a running worker's). */
  namePrefix?: string;
  /** Per-flow audit of `unrestricted` bunkers: the flowlog binary and where batches go. */
  flowAudit?: { binary: string; sink(bunkerId: string, name: string, ndjson: Buffer): Promise<void> };
  log?: (m: string) => void;
}

const PROFILES: readonly HostNetworkProfile[] = ['registry', 'allowlisted', 'unrestricted'];

/** The `transit` profile's parts: the tenants' bridges and the bunkers' ports on them. */
interface Transit {
  bridges: TenantBridges;
  ports: TransitPorts;
  resolvConfPath: string;
}

/** The conntrack DESTROY reader scripts/setup.sh builds. */
export const FLOWLOG_BINARY = fileURLToPath(new URL('../../native/flowlog/build/scaibunker-flowlog', import.meta.url));

/**
 * The worker's side of network profiles: per-bunker plumbing and rules (BunkerNetworks), the
 * one DNS responder every registry/allowlisted bunker's port 53 lands on, and the persistent
 * nft channel that responder fills the bunkers' address sets through. A bunker's policy is
 * found by the source address of its query, so nothing about it has to reach the responder.
 */
export class WorkerNetwork implements BunkerNetworking {
  /** `transit` only when this host can make bridges (see open()). */
  readonly profiles: readonly NetworkProfile[];
  private readonly resolvConfPath: string;

  private constructor(
    private readonly networks: BunkerNetworks,
    private readonly responder: DnsResponder,
    private readonly sets: NftSetWriter,
    private readonly defaultBandwidthMbit: number,
    private readonly audit: { auditor: FlowAuditor; hostnames: HostnameLog; owners: AddressOwners } | undefined,
    private readonly transit: Transit | undefined,
    dir: string,
    gateway: string,
  ) {
    // Any nameserver will do: every :53 a bunker sends is redirected to the responder.
    this.resolvConfPath = join(dir, 'resolv.conf');
    writeFileAtomic(this.resolvConfPath, `nameserver ${gateway}\noptions attempts:2 timeout:2\n`, 0o644);
    this.profiles = transit ? [...PROFILES, 'transit'] : PROFILES;
  }

  /** Why this host can't make transit bridges (a bridge link and an nft bridge table), or undefined. */
  private static async transitUnavailableReason(prefix: string): Promise<string | undefined> {
    const probe = `${prefix}bprobe`;
    const add = await runCommand('ip', ['link', 'add', 'name', probe, 'type', 'bridge']).catch((e: Error) => ({
      code: -1,
      stderr: e.message,
    }));
    await runCommand('ip', ['link', 'del', probe]).catch(() => undefined);
    if (add.code !== 0) return `cannot make a bridge: ${add.stderr.trim()}`;
    const nft = await runCommand('nft', ['list', 'tables', 'bridge']).catch((e: Error) => ({ code: -1, stderr: e.message }));
    if (nft.code !== 0) return `nft has no bridge family: ${nft.stderr.trim()}`;
    return undefined;
  }

  /** Why this host can't plumb bunker networks, or undefined when it can. */
  static async unavailableReason(): Promise<string | undefined> {
    if (process.getuid?.() !== 0) return 'the worker does not run as root';
    for (const [cmd, args] of [
      ['nft', ['list', 'tables']],
      ['ip', ['netns', 'list']],
      ['tc', ['qdisc', 'show', 'dev', 'lo']],
    ] as const) {
      const r = await runCommand(cmd, [...args]).catch((err: Error) => ({ code: -1, stderr: err.message, stdout: '' }));
      if (r.code !== 0) return `\`${cmd} ${args.join(' ')}\` failed: ${r.stderr.trim() || `exit ${r.code}`}`;
    }
    return undefined;
  }

  static async open(opts: WorkerNetworkOptions): Promise<WorkerNetwork> {
    const log = opts.log ?? ((m: string) => console.warn(`[network] ${m}`));
    const dir = join(opts.dataDir, 'network');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const subnet = opts.subnet ?? '10.200.0.0/16';
    const upstream = opts.dnsUpstream ?? hostNameserver();
    if (opts.flowAudit && !existsSync(opts.flowAudit.binary))
      throw new Error(`flow audit: ${opts.flowAudit.binary} is missing (run scripts/setup.sh, or start with --no-flow-audit)`);
    const sets = new NftSetWriter({ log });
    let networks: BunkerNetworks | undefined;
    const hostnames = opts.flowAudit ? new HostnameLog() : undefined;
    const responder = new DnsResponder({
      ...(hostnames ? { onAnswer: hostnames.onAnswer } : {}),
      host: '0.0.0.0',
      port: opts.dnsPort ?? 0,
      upstream,
      sets,
      log,
      policyFor: (ip) => {
        const net = networks?.lookupByAddress(ip);
        if (!net) return undefined;
        if (net.profile === 'unrestricted') return { bunkerId: net.bunkerId, table: net.table, patterns: [], anyName: true };
        return {
          bunkerId: net.bunkerId,
          table: net.table,
          patterns: net.profile === 'registry' ? REGISTRY_HOSTNAMES : (net.allowlist ?? []),
        };
      },
    });
    // Whatever fails from here stops what already runs: the responder and the nft channel.
    let audit: { auditor: FlowAuditor; hostnames: HostnameLog; owners: AddressOwners } | undefined;
    try {
      await responder.start();
      networks = new BunkerNetworks({
        stateDir: join(dir, 'bunkers'),
        subnet,
        dnsPort: responder.port(),
        protectedAddresses: opts.protectedAddresses ?? [],
        ...(opts.namePrefix ? { namePrefix: opts.namePrefix } : {}),
        log,
      });
      if (opts.flowAudit && hostnames) {
        const owners = new AddressOwners();
        for (const net of networks.list()) if (net.profile === 'unrestricted') owners.attached(net.address, net.bunkerId, 0);
        const auditor = new FlowAuditor({
          binary: opts.flowAudit.binary,
          srcPrefixes: [subnet],
          bunkerFor: (ip, flow) => owners.ownerAt(ip, flow.start_us),
          hostnameFor: (bunkerId, ip) => hostnames.lookup(bunkerId, ip),
          sink: opts.flowAudit.sink,
          log,
        });
        await auditor.start();
        audit = { auditor, hostnames, owners };
      }
    } catch (err) {
      await responder.stop().catch(() => undefined);
      sets.close();
      throw err;
    }
    const [base] = subnet.split('/');
    const gateway = (base ?? '10.200.0.0').replace(/\.\d+$/, '.1');
    const prefix = opts.namePrefix ?? 'sb';
    let transit: Transit | undefined;
    const why = await WorkerNetwork.transitUnavailableReason(prefix);
    if (why) log(`transit profile not offered: ${why}`);
    else {
      const bridges = new TenantBridges(join(dir, 'bridges'), prefix, log);
      const resolvConfPath = join(dir, 'transit-resolv.conf');
      writeFileAtomic(resolvConfPath, '# transit bunkers have no DNS: only their bridge interfaces\n', 0o644);
      transit = { bridges, ports: new TransitPorts(join(dir, 'transit'), prefix, bridges, log), resolvConfPath };
    }
    return new WorkerNetwork(networks, responder, sets, opts.defaultBandwidthMbit ?? 100, audit, transit, dir, gateway);
  }

  async attach(spec: BunkerSpec): Promise<BunkerAttachment> {
    if (spec.networkProfile === 'transit') {
      if (!this.transit) throw new Error('this worker cannot give the transit profile');
      if (!spec.interfaces?.length) throw new Error('a transit bunker needs at least one interface');
      const att = await this.transit.ports.attach(spec.id, spec.interfaces, spec.bandwidthMbit ?? this.defaultBandwidthMbit);
      return { netnsPath: att.netnsPath, resolvConfPath: this.transit.resolvConfPath };
    }
    const profile = spec.networkProfile as HostNetworkProfile;
    if (!PROFILES.includes(profile)) throw new Error(`network profile ${spec.networkProfile} has no host plumbing`);
    const net = await this.networks.setup(spec.id, {
      profile,
      bandwidthMbit: spec.bandwidthMbit ?? this.defaultBandwidthMbit,
      ...(spec.networkAllowlist ? { allowlist: spec.networkAllowlist } : {}),
    });
    if (profile === 'unrestricted') this.audit?.owners.attached(net.address, spec.id, Date.now() * 1000);
    return {
      netnsPath: net.netnsPath,
      resolvConfPath: this.resolvConfPath,
      ipv4: { address: net.address, prefixLen: net.prefixLen, gateway: net.gateway },
    };
  }

  async detach(bunkerId: string): Promise<void> {
    if (this.transit?.ports.get(bunkerId)) {
      await this.transit.ports.detach(bunkerId);
      return;
    }
    const net = this.networks.list().find((n) => n.bunkerId === bunkerId);
    if (!net) return;
    await this.networks.teardown(bunkerId);
    this.sets.forgetTable(net.table);
    if (net.profile === 'unrestricted' && this.audit) {
      // Its connections end now: deleting their conntrack entries makes the kernel report them
      // (instead of days later, when an established entry would time out).
      this.audit.owners.detached(net.address, bunkerId, Date.now() * 1000);
      await runCommand('conntrack', ['-D', '-s', net.address]).catch(() => undefined);
    }
    // Every profile whose lookups the responder answers feeds the names (an allowlisted bunker's
    // too), so every bunker releases them, or they would stay for the worker's lifetime.
    this.audit?.hostnames.release(bunkerId);
  }

  /** At worker start, before it takes work: live bunkers get their rules back, the rest is removed. */
  async reconcile(live: ReadonlySet<string>): Promise<{ restored: string[]; removed: string[] }> {
    const hosted = await this.networks.reconcile(live);
    if (!this.transit) return hosted;
    await this.transit.bridges.reconcile();
    const transit = await this.transit.ports.reconcile(live);
    return { restored: [...hosted.restored, ...transit.restored].sort(), removed: [...hosted.removed, ...transit.removed].sort() };
  }

  /** Makes a tenant's bridge (idempotent); refused when the id was made for another tenant. */
  async createBridge(bridgeId: string, tenantId: string): Promise<void> {
    if (!this.transit) throw new Error('this worker cannot make transit bridges');
    await this.transit.bridges.create(bridgeId, tenantId);
  }

  /** Removes a bridge; its bunkers' ports go with it (the controller refuses while any is attached). */
  async deleteBridge(bridgeId: string): Promise<void> {
    await this.transit?.bridges.delete(bridgeId);
  }

  bridgeIds(): string[] {
    return this.transit?.bridges.ids() ?? [];
  }

  bridgeTenant(bridgeId: string): string | undefined {
    return this.transit?.bridges.get(bridgeId)?.tenantId;
  }

  /** The responder's counters (answered, denied, failed…), for health and the bench. */
  dnsStats() {
    return this.responder.stats();
  }

  dnsPort(): number {
    return this.responder.port();
  }

  /** The flow auditor's counters, when flows are audited. */
  auditStats() {
    return this.audit?.auditor.stats();
  }

  /** Stops the responder, the nft channel and the flow auditor (delivering what it holds); bunkers keep their rules. */
  async close(): Promise<void> {
    await this.responder.stop();
    this.sets.close();
    await this.audit?.auditor.close();
  }
}

/** The first IPv4 nameserver of the host's resolv.conf. */
function hostNameserver(): { host: string; port: number } {
  const text = existsSync('/etc/resolv.conf') ? readFileSync('/etc/resolv.conf', 'utf8') : '';
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m?.[1] && isIPv4(m[1])) return { host: m[1], port: 53 };
  }
  throw new Error('no IPv4 nameserver in /etc/resolv.conf: pass --dns-upstream');
}
