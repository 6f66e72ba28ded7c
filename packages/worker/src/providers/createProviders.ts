/**
 * The providers a worker offers, from its `--isolations` setting: `auto` offers containers
 * and, when QEMU and the guest kernel are usable here, microVMs; an explicit list must all
 * be usable or the worker refuses to start (a clear error beats a worker that never places).
 * `proot` (no kernel isolation) is never offered by `auto`: an admin names it.
 * Containers run on crun/runc (`--container-runtime auto|crun|runc`) or a Docker daemon
 * (`docker`, `--docker-host`); a `--provider-module` replaces the built-in provider of its
 * isolation (and is required to be usable).
 */
import type { BunkerNetworking } from './BunkerNetworking.js';
import { ContainerProvider } from './container/ContainerProvider.js';
import { DockerProvider } from './docker/DockerProvider.js';
import { loadProviderModule } from './loadProviderModule.js';
import { FirecrackerVmm } from './microvm/firecracker/FirecrackerVmm.js';
import { MicrovmProvider } from './microvm/MicrovmProvider.js';
import { ISOLATION_NAMES, type Isolation, type Provider } from './Provider.js';
import { ProotProvider } from './proot/ProotProvider.js';

export { ISOLATION_NAMES };
/** What `--isolations auto` tries: every isolation with kernel isolation (never proot). */
export const AUTO_ISOLATIONS: readonly Isolation[] = ['container', 'microvm'];
export const CONTAINER_RUNTIMES = ['auto', 'crun', 'runc', 'docker'] as const;
export type ContainerRuntimeSetting = (typeof CONTAINER_RUNTIMES)[number];
/** Where `--container-runtime docker` finds the daemon without `--docker-host`. */
export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

export interface ProviderSettings {
  dataDir: string;
  /** 'auto' or a comma-separated list of isolations. */
  isolations: string;
  /** Memory snapshots for microVMs (default true). */
  snapshots?: boolean;
  /** Networks beyond loopback (microVMs get every profile but `transit`). */
  networking?: BunkerNetworking;
  /** Who runs container bunkers (default auto: crun, runc fallback). */
  containerRuntime?: ContainerRuntimeSetting;
  /** The Docker daemon's socket for `docker` (default DOCKER_HOST, else /var/run/docker.sock). */
  dockerHost?: string;
  /** The microVM monitor (default qemu); firecracker needs `firecrackerBin` or `firecracker` on PATH, and KVM. */
  vmm?: 'qemu' | 'firecracker' | undefined;
  firecrackerBin?: string | undefined;
  /** Plugin provider modules (`--provider-module`), each replacing the built-in of its isolation. */
  providerModules?: string[];
  log?: (message: string) => void;
}

export function parseIsolations(value: string): Isolation[] | 'auto' {
  if (value.trim() === 'auto') return 'auto';
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = names.filter((n) => !(ISOLATION_NAMES as readonly string[]).includes(n));
  if (bad.length || names.length === 0) {
    throw new Error(`--isolations: expected 'auto' or a list of ${ISOLATION_NAMES.join(', ')} (got ${JSON.stringify(value)})`);
  }
  return [...new Set(names)] as Isolation[];
}

export async function createProviders(s: ProviderSettings): Promise<Provider[]> {
  const wanted = parseIsolations(s.isolations);
  const log = s.log ?? ((m: string) => console.warn(`[worker] ${m}`));
  const out: Provider[] = [];
  const plugins = new Map<Isolation, { path: string; provider: Provider }>();
  for (const path of s.providerModules ?? []) {
    const provider = await loadProviderModule(path, { dataDir: s.dataDir, ...(s.networking ? { networking: s.networking } : {}), log });
    const other = plugins.get(provider.isolation);
    if (other) throw new Error(`--provider-module ${path}: ${other.path} already provides ${provider.isolation} bunkers`);
    plugins.set(provider.isolation, { path, provider });
  }
  const runtime = s.containerRuntime ?? 'auto';
  if (!(CONTAINER_RUNTIMES as readonly string[]).includes(runtime))
    throw new Error(`--container-runtime: expected one of ${CONTAINER_RUNTIMES.join(', ')} (got ${JSON.stringify(runtime)})`);
  const isolations = wanted === 'auto' ? [...new Set([...AUTO_ISOLATIONS, ...plugins.keys()])] : wanted;
  for (const isolation of isolations) {
    const plugin = plugins.get(isolation);
    if (plugin) {
      try {
        await plugin.provider.init();
      } catch (err) {
        throw new Error(`--provider-module ${plugin.path}: init failed: ${(err as Error).message}`);
      }
      out.push(plugin.provider);
      continue;
    }
    const provider = builtInProvider(isolation, s, runtime);
    try {
      await provider.init();
      out.push(provider);
    } catch (err) {
      // an explicit choice that cannot be had is an error, not a quietly missing isolation
      if (wanted !== 'auto' || (isolation === 'container' && runtime !== 'auto') || (isolation === 'microvm' && s.vmm === 'firecracker'))
        throw new Error(`${isolation} isolation is not available on this host: ${(err as Error).message}`);
      log(`${isolation} isolation not offered: ${(err as Error).message}`);
    }
  }
  if (out.length === 0) throw new Error('no isolation is available on this host');
  return out;
}

/** The worker's own provider of an isolation (no plugin replaces it). */
function builtInProvider(isolation: Isolation, s: ProviderSettings, runtime: ContainerRuntimeSetting): Provider {
  const networking = s.networking ? { networking: s.networking } : {};
  switch (isolation) {
    case 'container':
      return runtime === 'docker'
        ? new DockerProvider({ dataDir: s.dataDir, dockerHost: s.dockerHost ?? process.env.DOCKER_HOST ?? DEFAULT_DOCKER_HOST })
        : new ContainerProvider({ dataDir: s.dataDir, ...(runtime !== 'auto' ? { runtime } : {}), ...networking });
    case 'microvm':
      return new MicrovmProvider({
        dataDir: s.dataDir,
        snapshots: s.snapshots === false ? 'off' : 'auto',
        ...networking,
        ...(s.vmm === 'firecracker' ? { vmm: new FirecrackerVmm(s.firecrackerBin ?? 'firecracker') } : {}),
      });
    case 'proot':
      // no network namespace to join: proot bunkers get no networking, whatever the worker offers
      return new ProotProvider({ dataDir: s.dataDir });
  }
}
