/**
 * The providers a worker offers, from its `--isolations` setting: `auto` offers containers
 * and, when QEMU and the guest kernel are usable here, microVMs; an explicit list must all
 * be usable or the worker refuses to start (a clear error beats a worker that never places).
 */
import type { BunkerNetworking } from './BunkerNetworking.js';
import { ContainerProvider } from './container/ContainerProvider.js';
import { MicrovmProvider } from './microvm/MicrovmProvider.js';
import type { Isolation, Provider } from './Provider.js';

export const ISOLATION_NAMES: readonly Isolation[] = ['container', 'microvm'];

export interface ProviderSettings {
  dataDir: string;
  /** 'auto' or a comma-separated list of isolations. */
  isolations: string;
  /** Memory snapshots for microVMs (default true). */
  snapshots?: boolean;
  /** Networks beyond loopback (microVMs get every profile but `transit`). */
  networking?: BunkerNetworking;
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
  for (const isolation of wanted === 'auto' ? ISOLATION_NAMES : wanted) {
    const provider: Provider =
      isolation === 'container'
        ? new ContainerProvider({ dataDir: s.dataDir, ...(s.networking ? { networking: s.networking } : {}) })
        : new MicrovmProvider({
            dataDir: s.dataDir,
            snapshots: s.snapshots === false ? 'off' : 'auto',
            ...(s.networking ? { networking: s.networking } : {}),
          });
    try {
      await provider.init();
      out.push(provider);
    } catch (err) {
      if (wanted !== 'auto') throw new Error(`${isolation} isolation is not available on this host: ${(err as Error).message}`);
      log(`${isolation} isolation not offered: ${(err as Error).message}`);
    }
  }
  if (out.length === 0) throw new Error('no isolation is available on this host');
  return out;
}
