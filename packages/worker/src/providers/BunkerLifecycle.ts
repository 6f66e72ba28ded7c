/**
 * The skeleton every provider shares, composed (not inherited) so a provider keeps its own
 * class and only hands over the parts that must not differ between providers:
 * - the bunker id check (an id that fails it cannot exist, and is never used as a path);
 * - one lock per bunker id: spawn, destroy and snapshot of one bunker never overlap;
 * - spawn's preamble: init, the provider's spec validation, then under the lock the checks
 *   made before anything is created (not there yet, image file present, restore archive of
 *   this isolation's format and present);
 * - ONE destroy semantics: idempotent, tried even when init fails, every step runs and every
 *   failure is collected into one BunkerDestroyError (nothing stops at the first error);
 * - the network: attach for profiles beyond `isolated`, detach as a destroy step;
 * - the bunker's cgroup path and its JSON metadata file.
 *
 * A provider: `spawn(spec) { return this.life.spawn(spec, { validate, exists, create }) }`,
 * `destroy(id) { return this.life.destroy(id, () => this.destroySteps(id)) }`, and on a failed
 * create `await this.life.runDestroySteps(id, this.destroySteps(id)).catch(() => {})` (already
 * under the lock) before rethrowing. See docs/ARCHITECTURE.md, "Providers".
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { BunkerDestroyError, type DestroyFailure } from './BunkerDestroyError.js';
import type { BunkerAttachment, BunkerNetworking } from './BunkerNetworking.js';
import { KeyedLock } from './host/KeyedLock.js';
import { type BunkerSpec, type Isolation, LAYER_FORMAT, ProviderError, type SpawnedBunker } from './Provider.js';
import { BUNKER_ID_RE } from './validateSpec.js';

/** One step of destroying a bunker; it must be harmless when what it removes is already gone. */
export interface DestroyStep {
  step: string;
  run(): Promise<void> | void;
}

export interface BunkerLifecycleOptions {
  /** Whose restore archives are accepted (LAYER_FORMAT[isolation]). */
  isolation: Isolation;
  /** The provider's init: awaited before a spawn, tried (its failure ignored) before a destroy. */
  init?: (() => Promise<void>) | undefined;
  /** The worker's network plumbing, when it offers profiles beyond `isolated`. */
  networking?: BunkerNetworking | undefined;
  /** Parent cgroup of the provider's bunkers, e.g. 'scaibunker' (for cgroupPath). */
  cgroupParent?: string | undefined;
}

export interface SpawnHooks {
  /** Checks the spec (validateSpec with the provider's bounds); throws before anything is created. */
  validate(spec: BunkerSpec): void;
  /** Whether something of this bunker already exists (its directory, a container of its name). */
  exists(id: string): boolean | Promise<boolean>;
  /** Creates and starts the bunker; on failure it undoes what it made (runDestroySteps) and throws. */
  create(spec: BunkerSpec): Promise<SpawnedBunker>;
}

export class BunkerLifecycle {
  private readonly lock = new KeyedLock();

  constructor(private readonly opts: BunkerLifecycleOptions) {}

  /** Whether `id` can be a bunker's id at all. */
  isBunkerId(id: string): boolean {
    return BUNKER_ID_RE.test(id);
  }

  /** `/<cgroupParent>/<id>`. */
  cgroupPath(id: string): string {
    if (!this.opts.cgroupParent) throw new Error('BunkerLifecycle.cgroupPath without a cgroupParent');
    return `/${this.opts.cgroupParent}/${id}`;
  }

  /** Runs `fn` holding the bunker's lock. */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(id, fn);
  }

  async spawn(spec: BunkerSpec, hooks: SpawnHooks): Promise<SpawnedBunker> {
    await this.opts.init?.();
    hooks.validate(spec);
    return this.lock.run(spec.id, async () => {
      if (await hooks.exists(spec.id)) throw new ProviderError('SPAWN_FAILED', `bunker ${spec.id} already exists`);
      if (!existsSync(spec.imagePath)) throw new ProviderError('SPAWN_FAILED', `image file ${spec.imagePath} not found`);
      const restore = spec.restore;
      const format = LAYER_FORMAT[this.opts.isolation];
      if (restore && restore.format !== format)
        throw new ProviderError(
          'SNAPSHOT_CORRUPT',
          `a ${this.opts.isolation} cannot start from a ${restore.format} snapshot (${format} only)`,
        );
      if (restore && !existsSync(restore.archivePath))
        throw new ProviderError('SPAWN_FAILED', `snapshot archive ${restore.archivePath} not found`);
      return hooks.create(spec);
    });
  }

  /**
   * Idempotent: an id that cannot exist is a no-op; init is tried but not required (cleaning up
   * must work without a usable runtime); then, under the bunker's lock, runDestroySteps.
   */
  async destroy(id: string, steps: () => DestroyStep[] | Promise<DestroyStep[]>): Promise<void> {
    if (!this.isBunkerId(id)) return;
    try {
      await this.opts.init?.();
    } catch {
      /* clean up whatever we can even without a usable runtime */
    }
    await this.lock.run(id, async () => this.runDestroySteps(id, await steps()));
  }

  /** Every step, in order, whatever the earlier ones did; BunkerDestroyError lists each failure. The caller holds the lock. */
  async runDestroySteps(id: string, steps: readonly DestroyStep[]): Promise<void> {
    const failures: DestroyFailure[] = [];
    for (const s of steps) {
      try {
        await s.run();
      } catch (e) {
        failures.push({ step: s.step, error: e instanceof Error ? e : new Error(String(e)) });
      }
    }
    if (failures.length) throw new BunkerDestroyError(id, failures);
  }

  /** The bunker's network for profiles beyond `isolated` (undefined for `isolated`). */
  async attachNetwork(spec: BunkerSpec): Promise<BunkerAttachment | undefined> {
    if (spec.networkProfile === 'isolated') return undefined;
    const networking = this.opts.networking;
    if (!networking) throw new Error(`network profile ${spec.networkProfile} needs the worker's networking`);
    return networking.attach(spec);
  }

  /** The destroy step removing the bunker's network; cheap and idempotent for one that never had any. */
  detachNetworkStep(id: string): DestroyStep {
    return { step: 'network', run: async () => this.opts.networking?.detach(id) };
  }

  /** The bunker ids among a directory's entries (none when it does not exist yet). */
  idsIn(dir: string): string[] {
    try {
      return readdirSync(dir).filter((n) => this.isBunkerId(n));
    } catch {
      return [];
    }
  }

  /** Writes the bunker's metadata file (JSON). */
  writeMeta(path: string, meta: object): void {
    writeFileSync(path, JSON.stringify(meta));
  }

  /** The bunker's metadata file, or undefined when it is missing or unreadable. */
  readMeta<T>(path: string): T | undefined {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as T;
    } catch {
      return undefined;
    }
  }
}
