import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import { freeBytes } from '../health/Readiness.js';
import type { Store } from '../store/Store.js';

export interface OutputStorageLimits {
  /** Stored bytes per exec (both streams); past it the stored output is capped. */
  perExecBytes: number;
  /** Stored bytes per tenant, over all its execs still within retention. */
  perTenantBytes: number;
  /** Stored output older than this is deleted by the retention sweep. */
  retentionMs: number;
  /** No new spill starts while the local blob directory's disk has less free than this. */
  diskReserveBytes: number;
  /** The local blob directory (its disk is checked against the reserve); undefined for S3. */
  localDir: string | undefined;
}

/** Why a spill was not started: `capped` by a cap or the disk reserve, `failed` when the budget could not be read. */
export type SpillRefusal = 'capped' | 'failed';

/** One exec's share of the stored-output budget, spent as its streams spill. */
export interface OutputBudget {
  /** Before a stream's first stored byte: undefined to go ahead, else why not. */
  open(): Promise<SpillRefusal | undefined>;
  /** Bytes of `want` that may be stored now (the rest is dropped). */
  take(want: number): number;
  /** Gives back bytes that were not kept after all (a failed or aborted spill). */
  release(bytes: number): void;
}

const SWEEP_BATCH = 500;

/**
 * The rules for exec output kept in the blob store: a cap per exec, a cap per tenant (what its
 * execs hold now, plus what spills in flight have taken), a free-space reserve on the local
 * disk, and a retention after which the output is deleted and its bytes no longer count. Any
 * tenant's `yes | head -c 10G` is then bounded, and a full disk is an answer, not a crash.
 */
export class OutputStorage {
  /** Bytes taken by spills still running, per tenant (not yet in exec-log rows). */
  private readonly inFlight = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    readonly limits: OutputStorageLimits,
  ) {}

  budgetFor(tenantId: string): OutputBudget {
    let left: number | undefined;
    let checked: Promise<SpillRefusal | undefined> | undefined;
    const charge = (n: number) => this.inFlight.set(tenantId, (this.inFlight.get(tenantId) ?? 0) + n);
    return {
      open: () => {
        checked ??= (async () => {
          if (this.limits.localDir) {
            // A disk that cannot be measured is not judged full (readiness reports the failure).
            const free = await freeBytes(this.limits.localDir).catch(() => Number.POSITIVE_INFINITY);
            if (free < this.limits.diskReserveBytes) return 'capped';
          }
          let held: number;
          try {
            held = await this.store.execLogs.storedOutputBytes(tenantId);
          } catch {
            return 'failed';
          }
          left = Math.max(0, Math.min(this.limits.perExecBytes, this.limits.perTenantBytes - held - (this.inFlight.get(tenantId) ?? 0)));
          return left > 0 ? undefined : 'capped';
        })();
        return checked;
      },
      take: (want) => {
        const n = Math.min(want, left ?? 0);
        left = (left ?? 0) - n;
        charge(n);
        return n;
      },
      release: (bytes) => charge(-bytes),
    };
  }

  /** The exec's stored bytes are in its row now (or were dropped): no longer in flight. */
  settle(tenantId: string, bytes: number): void {
    const now = (this.inFlight.get(tenantId) ?? 0) - bytes;
    if (now > 0) this.inFlight.set(tenantId, now);
    else this.inFlight.delete(tenantId);
  }

  /** What the tenant holds now (rows) and the cap. */
  async usage(tenantId: string): Promise<{ current: number; cap: number }> {
    return { current: await this.store.execLogs.storedOutputBytes(tenantId), cap: this.limits.perTenantBytes };
  }

  /** Deletes stored output past retention; answers how many execs' output went. */
  async sweep(now = Date.now()): Promise<number> {
    const before = new Date(now - this.limits.retentionMs).toISOString();
    let swept = 0;
    for (;;) {
      const rows = await this.store.execLogs.withOutputBefore(before, SWEEP_BATCH);
      if (rows.length === 0) return swept;
      for (const r of rows) {
        await this.blobs.delete(blobKeys.execOutput(r.bunker_id, r.id, 'stdout'));
        await this.blobs.delete(blobKeys.execOutput(r.bunker_id, r.id, 'stderr'));
      }
      await this.store.execLogs.markOutputExpired(rows.map((r) => r.id));
      swept += rows.length;
      if (rows.length < SWEEP_BATCH) return swept;
    }
  }
}
