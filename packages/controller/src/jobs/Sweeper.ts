import type { BunkerService } from '../bunkers/BunkerService.js';
import type { Passivation } from '../snapshots/Passivation.js';
import type { Store } from '../store/Store.js';

/** Why a create still pending or provisioning after `stuckCreateMs` is failed. */
export const CONTROLLER_LOST = 'provision_failed: controller lost';

/**
 * Ends bunkers past their lifetime cap or idle timeout. Paused bunkers are not idle-swept
 * (they are not doing anything by request) but still end at their lifetime cap. Persistent
 * bunkers have no lifetime cap; idle ones are passivated instead (snapshot, worker resources
 * released; `resume` or an auto-resume call brings them back).
 * Also fails creates stuck in `pending`/`provisioning` for longer than any create takes (their
 * controller died mid-create), which releases their quota charge.
 */
export class Sweeper {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly stuckCreateMs: number,
    private readonly passivation?: Passivation,
  ) {}

  async sweep(now = Date.now()): Promise<Array<{ id: string; reason: string }>> {
    const ended: Array<{ id: string; reason: string }> = [];
    for (const row of await this.store.bunkers.listStuckCreating(new Date(now - this.stuckCreateMs).toISOString())) {
      if (await this.bunkers.end(row, 'failed', CONTROLLER_LOST)) ended.push({ id: row.id, reason: CONTROLLER_LOST });
    }
    for (const row of await this.store.bunkers.listActive()) {
      if (
        this.passivation &&
        row.state === 'running' &&
        row.lifecycle === 'persistent' &&
        now - Date.parse(row.last_activity_at) > row.idle_timeout_s * 1000
      ) {
        try {
          await this.passivation.passivate(row, 'system:idle');
          ended.push({ id: row.id, reason: 'passivated' });
        } catch (err) {
          // It runs on; the next sweep tries again.
          console.error(`[sweeper] passivating idle ${row.id} failed: ${(err as Error).message}`);
        }
        continue;
      }
      let reason: string | undefined;
      if (row.max_lifetime_s !== null && now - Date.parse(row.created_at) > row.max_lifetime_s * 1000) reason = 'max_lifetime';
      else if (
        row.state === 'running' &&
        row.lifecycle !== 'persistent' &&
        now - Date.parse(row.last_activity_at) > row.idle_timeout_s * 1000
      )
        reason = 'idle_timeout';
      if (!reason) continue;
      if (await this.bunkers.end(row, 'terminated', reason)) ended.push({ id: row.id, reason });
    }
    return ended;
  }
}
