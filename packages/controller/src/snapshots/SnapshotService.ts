import { ApiError, newId, type SnapshotResult, type schemas } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import { fromWorkerError } from '../bunkers/workerErrors.js';
import type { QuotaService } from '../quotas/QuotaService.js';
import type { Store } from '../store/Store.js';
import type { BunkerRow, SnapshotRow } from '../store/schema.js';
import type { WorkerDirectory } from '../workers/WorkerDirectory.js';

/** How long a failed snapshot's row stays listed (with its error) before the cleanup removes it. */
const FAILED_KEPT_MS = 24 * 3600_000;

export interface TakeOptions {
  source: SnapshotRow['source'];
  createdBy: string;
  name?: string | undefined;
  expiresInS?: number | undefined;
  /** What the bunker becomes once its snapshot is stored: `running` again, or passivated (`paused`, worker resources released). */
  afterwards: 'running' | 'passivated';
}

/**
 * Snapshots: a bunker's writable layer archived by its worker into the blob store
 * (`scaibunker/snapshots/{id}`). Taking one moves the bunker `running → snapshotting` and back
 * (or on to passivated) around the worker's `snapshot` call; the row goes `creating → ready`
 * (sha256 and size from the worker) or `failed` (reason kept, nothing stored). Deleting claims
 * the row first (`deleting`), then refuses if a bunker needs the archive.
 */
export class SnapshotService {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly workers: WorkerDirectory,
    private readonly quotas: QuotaService,
    private readonly blobs: BlobStore,
    private readonly audit?: AuditTrail,
    private readonly log: (msg: string) => void = (m) => console.error(m),
  ) {
    // A passivated bunker's files die with it; a user's snapshots outlive it.
    bunkers.onEnded(async (row) => {
      for (const s of await this.store.snapshots.passivationsOf(row.id)) await this.remove(s).catch(() => undefined);
    });
  }

  /** `POST /bunkers/{id}/snapshots`: answers the `creating` row; `done` settles when it is ready or failed. */
  async create(
    principal: Principal,
    bunkerId: string,
    body: schemas.CreateSnapshotBody,
    source: 'user' | 'fork' = 'user',
  ): Promise<{ row: SnapshotRow; done: Promise<SnapshotRow> }> {
    const bunker = await this.bunkers.get(principal, bunkerId);
    if (bunker.state !== 'running') {
      throw new ApiError('BUNKER_NOT_RUNNING', `bunker ${bunkerId} is ${bunker.state}; only a running bunker is snapshotted`, {
        state: bunker.state,
      });
    }
    if (bunker.isolation === 'proot') {
      throw new ApiError('VALIDATION_FAILED', `bunker ${bunkerId} is a proot bunker; proot bunkers cannot be snapshotted or forked`, {
        isolation: bunker.isolation,
      });
    }
    const cap = await this.quotas.snapshotCap(principal);
    if (cap !== null) {
      const used = await this.store.snapshots.tenantBytes(principal.tenantId);
      if (used >= cap.cap) {
        throw new ApiError('QUOTA_EXCEEDED', `the tenant's snapshots hold ${used} bytes, at its cap of ${cap.cap}`, {
          resource: 'snapshot_bytes',
          current: used,
          cap: cap.cap,
          profile_id: cap.profileId,
        });
      }
    }
    const taken = await this.take(
      bunker,
      { source, createdBy: principal.actor, name: body.name, expiresInS: body.expires_in_s, afterwards: 'running' },
      cap?.cap,
    );
    this.audit?.record(principal, {
      action: 'snapshot.create',
      target: { type: 'snapshot', id: taken.row.id },
      bunkerId,
      details: { source, ...(body.name ? { name: body.name } : {}) },
    });
    return taken;
  }

  /**
   * Snapshots a running bunker (any caller: the API, fork, passivation). `capBytes`: the tenant's
   * snapshot cap to hold the finished archive to (checked again once its size is known).
   */
  async take(bunker: BunkerRow, opts: TakeOptions, capBytes?: number): Promise<{ row: SnapshotRow; done: Promise<SnapshotRow> }> {
    const now = new Date();
    const row: SnapshotRow = {
      id: newId('sn'),
      tenant_id: bunker.tenant_id,
      bunker_id: bunker.id,
      created_by: opts.createdBy,
      name: opts.name ?? null,
      source: opts.source,
      state: 'creating',
      image: bunker.image,
      image_sha256: bunker.image_sha256 as string,
      isolation: bunker.isolation,
      disk_mb: bunker.disk_mb,
      format: null,
      sha256: null,
      size_bytes: 0,
      error: null,
      created_at: now.toISOString(),
      ready_at: null,
      expires_at: opts.expiresInS ? new Date(now.getTime() + opts.expiresInS * 1000).toISOString() : null,
    };
    await this.store.snapshots.insert(row);
    const frozen = await this.store.bunkers.transition(bunker.id, ['running'], 'snapshotting');
    if (!frozen) {
      await this.store.snapshots.delete(row.id);
      const current = await this.store.bunkers.getById(bunker.id);
      throw new ApiError('BUNKER_NOT_RUNNING', `bunker ${bunker.id} is ${current?.state ?? 'gone'}; only a running bunker is snapshotted`, {
        state: current?.state,
      });
    }
    const done = this.write(row, frozen, opts.afterwards, capBytes);
    this.bunkers.whileSnapshotting(bunker.id, done);
    // The caller may only want the 202: a failure is on the row, never an unhandled rejection.
    done.catch(() => undefined);
    return { row, done };
  }

  /**
   * The worker writes the archive; then the row and the bunker move on, whatever happened. A
   * bunker that runs on is `running` again before its snapshot reads `ready` (so whoever saw it
   * ready can use the bunker at once); a passivated one's snapshot is `ready` before the bunker
   * points at it.
   */
  private async write(
    row: SnapshotRow,
    bunker: BunkerRow,
    afterwards: TakeOptions['afterwards'],
    capBytes: number | undefined,
  ): Promise<SnapshotRow> {
    let failure: string | undefined;
    let stored: SnapshotResult | undefined;
    try {
      const worker = await this.workers.get(bunker.worker_id as string);
      stored = await worker.snapshot(bunker.id, { snapshotId: row.id });
      const used = capBytes === undefined ? 0 : await this.store.snapshots.tenantBytes(row.tenant_id);
      if (capBytes !== undefined && used + stored.sizeBytes > capBytes) {
        failure = `QUOTA_EXCEEDED: the archive (${stored.sizeBytes} bytes) would take the tenant's snapshots past their cap of ${capBytes} bytes`;
      }
    } catch (err) {
      const mapped = fromWorkerError(err);
      failure = mapped instanceof ApiError ? `${mapped.code}: ${mapped.message}` : (err as Error).message;
    }
    if (failure || afterwards === 'running') await this.store.bunkers.transition(bunker.id, ['snapshotting'], 'running');
    if (!failure && stored) {
      const ready = await this.store.snapshots.markReady(row.id, {
        format: stored.format,
        sha256: stored.sha256,
        size_bytes: stored.sizeBytes,
        ready_at: new Date().toISOString(),
      });
      if (!ready) failure = 'the snapshot was given up while its archive was written';
      else if (afterwards === 'passivated') await this.passivated(bunker, row.id);
      if (!ready && afterwards === 'passivated') await this.store.bunkers.transition(bunker.id, ['snapshotting'], 'running');
    }
    if (failure) {
      await this.store.snapshots.markFailed(row.id, failure, new Date(Date.now() + FAILED_KEPT_MS).toISOString());
      // The worker's put is whole or nothing; an archive it stored after we gave up is removed here.
      await this.blobs.delete(blobKeys.snapshot(row.id)).catch(() => undefined);
      this.log(`[snapshots] ${row.id} of ${bunker.id} failed: ${failure}`);
    }
    const final = await this.store.snapshots.getById(row.id);
    if (!final) throw new ApiError('SNAPSHOT_NOT_FOUND', `snapshot ${row.id} is gone`);
    if (final.state !== 'ready') throw new ApiError('SNAPSHOT_FAILED', final.error ?? `snapshot ${row.id} failed`, { snapshot_id: row.id });
    return final;
  }

  /** snapshotting → passivated: its worker drops it, its files are in the snapshot. */
  private async passivated(bunker: BunkerRow, snapshotId: string): Promise<void> {
    const passivated = await this.store.bunkers.transition(bunker.id, ['snapshotting'], 'paused', {
      passivated: 1,
      worker_id: null,
      snapshot_id: snapshotId,
    });
    if (!passivated) return;
    try {
      await (await this.workers.get(bunker.worker_id as string)).destroy(bunker.id);
    } catch {
      // An unreachable worker reports it at its next heartbeat, and is told to destroy it.
    }
    for (const older of await this.store.snapshots.passivationsOf(bunker.id, snapshotId)) await this.remove(older).catch(() => undefined);
  }

  async get(principal: Principal, id: string): Promise<SnapshotRow> {
    const row = await this.store.snapshots.get(principal.tenantId, id);
    if (!row) throw new ApiError('SNAPSHOT_NOT_FOUND', `no snapshot ${id}`, { snapshot_id: id });
    return row;
  }

  async list(principal: Principal, q: schemas.ListSnapshotsQuery): Promise<{ items: SnapshotRow[]; nextCursor: string | null }> {
    return this.store.snapshots.list({
      tenantId: principal.tenantId,
      ...(q.bunker_id ? { bunkerId: q.bunker_id } : {}),
      limit: q.limit ?? 50,
      ...(q.cursor ? { cursor: q.cursor } : {}),
    });
  }

  /** `DELETE /snapshots/{id}`: refused while it is written or a bunker needs it. */
  async delete(principal: Principal, id: string): Promise<void> {
    const row = await this.get(principal, id);
    if (row.state === 'creating') throw new ApiError('SNAPSHOT_IN_USE', `snapshot ${id} is still being written`, { snapshot_id: id });
    await this.remove(row);
    this.audit?.record(principal, { action: 'snapshot.delete', target: { type: 'snapshot', id }, bunkerId: row.bunker_id, details: {} });
  }

  /**
   * Claims the row (`deleting`), then looks for bunkers that need the archive: a create that
   * names the snapshot writes its row before re-reading the snapshot, so one of the two sees
   * the other. The row goes after its object, so a crash in between leaves a row the cleanup
   * finishes.
   */
  private async remove(row: SnapshotRow): Promise<void> {
    if (!(await this.store.snapshots.claimDelete(row.id, ['ready', 'failed']))) {
      if ((await this.store.snapshots.getById(row.id))?.state === 'deleting') return this.finishDelete(row.id);
      throw new ApiError('SNAPSHOT_IN_USE', `snapshot ${row.id} is still being written`, { snapshot_id: row.id });
    }
    const users = await this.store.bunkers.snapshotUsers(row.id);
    if (users.length > 0) {
      await this.store.snapshots.unclaimDelete(row.id, row.state);
      throw new ApiError('SNAPSHOT_IN_USE', `bunker ${users[0]} needs snapshot ${row.id} (restoring from it, or passivated in it)`, {
        snapshot_id: row.id,
        bunker_ids: users.slice(0, 20),
      });
    }
    await this.finishDelete(row.id);
  }

  private async finishDelete(id: string): Promise<void> {
    await this.blobs.delete(blobKeys.snapshot(id));
    await this.store.snapshots.delete(id);
  }

  /**
   * The cleanup job (every 5 min, one controller): expired snapshots (skipping those a bunker
   * needs: next time), and rows a dead controller left `creating` or `deleting` for longer than
   * `staleMs` (their bunker, if still `snapshotting`, runs on).
   */
  async cleanup(staleMs: number, now = Date.now()): Promise<{ expired: number; stale: number }> {
    let expired = 0;
    for (const row of await this.store.snapshots.listExpired(new Date(now).toISOString(), 500)) {
      if (row.state === 'creating') continue;
      try {
        await this.remove(row);
        expired++;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 'SNAPSHOT_IN_USE')) throw err;
      }
    }
    let stale = 0;
    for (const row of await this.store.snapshots.listStale(new Date(now - staleMs).toISOString(), 500)) {
      if (row.state === 'deleting') await this.finishDelete(row.id);
      else if (
        await this.store.snapshots.markFailed(
          row.id,
          'its controller stopped while the archive was written',
          new Date(now + FAILED_KEPT_MS).toISOString(),
        )
      ) {
        await this.blobs.delete(blobKeys.snapshot(row.id)).catch(() => undefined);
        await this.store.bunkers.transition(row.bunker_id, ['snapshotting'], 'running');
      }
      stale++;
    }
    return { expired, stale };
  }
}
