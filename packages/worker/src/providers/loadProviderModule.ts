/**
 * Plugin providers (`--provider-module ./x.js`): a module whose default export is a class
 * implementing the provider contract (Provider.ts), constructed with PluginProviderOptions.
 * Checked as it loads: a module that is not such a class is refused with an error naming what
 * is missing, before the worker starts.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BunkerNetworking } from './BunkerNetworking.js';
import { ISOLATION_NAMES, type Provider } from './Provider.js';

/** What a plugin provider's constructor is given. */
export interface PluginProviderOptions {
  /** The worker's state directory (the plugin may keep its files under it). */
  dataDir: string;
  /** The worker's network plumbing, when it offers profiles beyond `isolated`. */
  networking?: BunkerNetworking;
  log: (message: string) => void;
}

/** The methods of the provider contract, every one required. */
export const PROVIDER_METHODS = [
  'init',
  'spawn',
  'destroy',
  'pause',
  'resume',
  'isPaused',
  'stats',
  'writeLayer',
  'list',
  'health',
  'shutdown',
] as const;

/** What an object lacks to be a Provider ([] when nothing). */
export function providerContractGaps(candidate: unknown): string[] {
  const o = candidate as Record<string, unknown> | null | undefined;
  const gaps = PROVIDER_METHODS.filter((m) => typeof o?.[m] !== 'function').map((m) => `${m}()`);
  if (!(ISOLATION_NAMES as readonly unknown[]).includes(o?.isolation))
    gaps.push(`isolation (one of ${ISOLATION_NAMES.map((n) => `'${n}'`).join(', ')}, got ${JSON.stringify(o?.isolation)})`);
  return gaps;
}

/** Imports `path` (relative to the working directory), checks its default export and constructs it. */
export async function loadProviderModule(path: string, options: PluginProviderOptions): Promise<Provider> {
  const what = `--provider-module ${path}`;
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown };
  } catch (e) {
    throw new Error(`${what}: cannot load it: ${(e as Error).message}`);
  }
  const Cls = mod.default;
  if (typeof Cls !== 'function' || !Cls.prototype)
    throw new Error(
      `${what}: its default export must be a class implementing the provider contract (got ${Cls === undefined ? 'no default export' : typeof Cls})`,
    );
  let instance: unknown;
  try {
    instance = new (Cls as new (o: PluginProviderOptions) => unknown)(options);
  } catch (e) {
    throw new Error(`${what}: constructing ${Cls.name || 'its default export'} failed: ${(e as Error).message}`);
  }
  const gaps = providerContractGaps(instance);
  if (gaps.length)
    throw new Error(`${what}: ${Cls.name || 'its default export'} does not implement the provider contract: missing ${gaps.join(', ')}`);
  return instance as Provider;
}
