import { ApiError } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { Store } from '../store/Store.js';
import type { BunkerRow } from '../store/schema.js';
import type { SnapshotService } from './SnapshotService.js';

/**
 * Passivation: a `persistent` bunker is snapshotted and its worker resources released (state
 * `paused`, `passivated: true`, no worker, no usage ticks); resuming restores it from that
 * snapshot on whichever worker takes it. Asked for by `pause {passivate: true}`, done by the
 * sweeper to idle persistent bunkers, and undone by `resume` or — with `auto_resume` — by
 * the first call that needs the bunker running.
 */
export class Passivation {
  /** Resumes in flight on this controller, by bunker: concurrent callers share one. */
  private readonly resuming = new Map<string, Promise<BunkerRow>>();

  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly snapshots: SnapshotService,
    private readonly audit?: AuditTrail,
  ) {
    bunkers.onAutoResume((row) => this.resume(row));
  }

  /** `POST /bunkers/{id}/pause {passivate: true}`: answers once the bunker is passivated. */
  async passivateFor(principal: Principal, id: string): Promise<BunkerRow> {
    const row = await this.bunkers.get(principal, id);
    const done = await this.passivate(row, principal.actor);
    this.audit?.record(principal, { action: 'bunker.passivate', target: { type: 'bunker', id }, bunkerId: id, details: {} });
    return done;
  }

  async passivate(row: BunkerRow, by: string): Promise<BunkerRow> {
    if (row.lifecycle !== 'persistent') {
      throw new ApiError('BUNKER_INVALID_TRANSITION', `bunker ${row.id} is ${row.lifecycle}: only persistent bunkers are passivated`, {
        lifecycle: row.lifecycle,
      });
    }
    if (row.state !== 'running') {
      throw new ApiError('BUNKER_INVALID_TRANSITION', `bunker ${row.id} is ${row.state}; only a running bunker is passivated`, {
        state: row.state,
      });
    }
    const { done } = await this.snapshots.take(row, { source: 'passivation', createdBy: by, afterwards: 'passivated' });
    await done;
    return (await this.store.bunkers.getById(row.id)) as BunkerRow;
  }

  /** Restores a passivated bunker (resume, or auto-resume); one resume per bunker at a time here. */
  resume(row: BunkerRow): Promise<BunkerRow> {
    const inFlight = this.resuming.get(row.id);
    if (inFlight) return inFlight;
    const run = this.bunkers.resumePassivated(row).finally(() => this.resuming.delete(row.id));
    this.resuming.set(row.id, run);
    return run;
  }
}
