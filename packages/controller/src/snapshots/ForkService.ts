import { ApiError, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { BunkerRow } from '../store/schema.js';
import type { SnapshotService } from './SnapshotService.js';

/** How long a fork's snapshot is kept after the fork (its bunkers no longer need it once they run). */
const FORK_SNAPSHOT_TTL_S = 3600;

/**
 * `POST /bunkers/{id}/fork {count}`: one fresh snapshot of the bunker, then `count` creates
 * from it, in parallel, each an ordinary create (permissions, quotas, placement). All or
 * nothing: if one fails, the others are terminated and its error is the answer.
 */
export class ForkService {
  constructor(
    private readonly bunkers: BunkerService,
    private readonly snapshots: SnapshotService,
  ) {}

  async fork(principal: Principal, id: string, count: number): Promise<{ snapshotId: string; bunkers: BunkerRow[] }> {
    const source = await this.bunkers.get(principal, id);
    if (source.network_profile === 'transit') {
      // Its interfaces' MACs and bridges are the bunker's own; copies would collide on the wire.
      throw new ApiError('VALIDATION_FAILED', 'a transit bunker cannot be forked (its interfaces are its own)', { field: 'params/id' });
    }
    const { row, done } = await this.snapshots.create(principal, id, { expires_in_s: FORK_SNAPSHOT_TTL_S }, 'fork');
    await done;
    const body: schemas.CreateBunkerBody = {
      snapshot_id: row.id,
      lifecycle: source.lifecycle,
      cpu_millicores: source.cpu_millicores,
      memory_mb: source.memory_mb,
      disk_mb: source.disk_mb,
      network_profile: source.network_profile as schemas.CreateBunkerBody['network_profile'] & string,
      ...(source.network_allowlist ? { network_allowlist: JSON.parse(source.network_allowlist) as string[] } : {}),
      ...(source.bandwidth_mbit !== null ? { bandwidth_mbit: source.bandwidth_mbit } : {}),
      idle_timeout_s: source.idle_timeout_s,
      ...(source.max_lifetime_s !== null ? { max_lifetime_s: source.max_lifetime_s } : {}),
      env: JSON.parse(source.env) as Record<string, string>,
      metadata: JSON.parse(source.metadata) as Record<string, string>,
      ...(Number(source.auto_resume) === 1 ? { auto_resume: true } : {}),
    };
    const results = await Promise.allSettled(Array.from({ length: count }, () => this.bunkers.create(principal, body)));
    const made = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(made.map((b) => this.bunkers.terminate(principal, b.id).catch(() => undefined)));
      throw failed.reason;
    }
    return { snapshotId: row.id, bunkers: made };
  }
}
