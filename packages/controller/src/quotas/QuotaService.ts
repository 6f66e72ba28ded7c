import {
  ApiError,
  type BunkerState,
  QUOTA_RESOURCES,
  type QuotaPolicy,
  type QuotaResource,
  type schemas,
  TERMINAL_STATES,
} from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import type { OutputStorage } from '../bunkers/OutputStorage.js';
import type { Store } from '../store/Store.js';
import type { QuotaAssignmentRow, QuotaProfileRow } from '../store/schema.js';
import { isTenantAdmin, resolveTenant } from './access.js';
import { type BucketRef, bucketFor, bucketIdentity, bucketKey, bucketToApi, parseBucketKey } from './buckets.js';
import type { ChargeSet, QuotaCharge, QuotaCounters } from './QuotaCounters.js';

/**
 * One bucket's use of one capped resource, for `/metrics`. `bucket` is `user:<id>`,
 * `group:<name>` or `group_per_user:<name>` (then `current` is the fullest user's bucket, so
 * the series count stays one per assignment, not one per user).
 */
export interface QuotaGauge {
  tenantId: string;
  bucket: string;
  resource: QuotaResource;
  current: number;
  cap: number;
}

/** What a create asks for, as quotas see it. */
export interface QuotaRequest {
  lifecycle: string;
  image: string;
  networkProfile: string;
  amounts: Record<QuotaResource, number>;
}

/** One counter a create will be charged, with where its cap came from. */
export interface PlannedCharge extends QuotaCharge {
  bucket: BucketRef;
  resource: QuotaResource;
  /** The profile whose cap is the strictest (null: no profile caps this resource). */
  profileId: string | null;
}

const CAP_COLUMN: Record<QuotaResource, keyof QuotaProfileRow> = {
  bunkers: 'max_bunkers',
  cpu_millicores: 'max_cpu_millicores',
  memory_mb: 'max_memory_mb',
  disk_mb: 'max_disk_mb',
  gpu_count: 'max_gpu_count',
};
const POLICY_COLUMN: Record<QuotaPolicy, keyof QuotaProfileRow> = {
  lifecycle: 'allowed_lifecycles',
  image: 'allowed_images',
  network_profile: 'allowed_network_profiles',
};
/** How often a charge retries when the counters vanish under it (a wipe between rebuild and charge). */
const MAX_CHARGE_ATTEMPTS = 5;

type Caps = Record<QuotaResource, { cap: number; profileId: string } | null>;

/** The strictest cap of each resource over several profiles. */
function strictest(profiles: readonly QuotaProfileRow[]): Caps {
  const caps = Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, null])) as Caps;
  for (const p of profiles) {
    for (const r of QUOTA_RESOURCES) {
      const cap = p[CAP_COLUMN[r]] as number | null;
      const held = caps[r];
      if (cap !== null && (held === null || cap < held.cap)) caps[r] = { cap: Number(cap), profileId: p.id };
    }
  }
  return caps;
}

/**
 * Admission by quota. At create every profile assigned to the caller (as a user, through its
 * groups, or per user within its groups) is evaluated: allow-lists first, then each bucket's
 * strictest caps, charged atomically over all buckets. Release on any end of a bunker; counters
 * rebuilt from active rows when they are gone.
 */
export class QuotaService {
  /** Bunkers whose release failed (counters unreachable): retried before the next quota operation. */
  private readonly unreleased = new Set<string>();

  constructor(
    private readonly store: Store,
    readonly counters: QuotaCounters,
    private readonly log: (msg: string) => void = (m) => console.error(m),
    /** The tenant's stored exec output, reported beside its buckets. */
    private readonly outputs?: Pick<OutputStorage, 'usage'>,
  ) {}

  /** The charges a create would make, or QUOTA_EXCEEDED when a profile does not allow it at all. */
  /**
   * The strictest `max_snapshot_bytes` of the profiles that apply to the caller (null: none).
   * It caps the tenant's stored snapshot bytes as a whole (snapshots are the tenant's, not a bucket's).
   */
  async snapshotCap(principal: Principal): Promise<{ cap: number; profileId: string } | null> {
    let best: { cap: number; profileId: string } | null = null;
    for (const { profile } of await this.store.quotas.applicable(principal.tenantId, principal.userId, principal.groups)) {
      const cap = profile.max_snapshot_bytes === null ? null : Number(profile.max_snapshot_bytes);
      if (cap !== null && (best === null || cap < best.cap)) best = { cap, profileId: profile.id };
    }
    return best;
  }

  async plan(principal: Principal, req: QuotaRequest): Promise<PlannedCharge[]> {
    const applicable = await this.store.quotas.applicable(principal.tenantId, principal.userId, principal.groups);
    if (applicable.length === 0) return [];
    const requested: Record<QuotaPolicy, string> = { lifecycle: req.lifecycle, image: req.image, network_profile: req.networkProfile };
    const buckets = new Map<string, { bucket: BucketRef; profiles: QuotaProfileRow[] }>();
    for (const { assignment, profile } of applicable) {
      const bucket = bucketFor(assignment, principal.userId);
      for (const policy of Object.keys(POLICY_COLUMN) as QuotaPolicy[]) {
        const json = profile[POLICY_COLUMN[policy]] as string | null;
        if (json === null) continue;
        const allowed = JSON.parse(json) as string[];
        if (!allowed.includes(requested[policy])) {
          throw new ApiError(
            'QUOTA_EXCEEDED',
            `quota profile ${profile.name} (${bucket.kind} bucket ${bucketToApi(bucket).id}) does not allow ${policy} ${requested[policy]}`,
            {
              bucket: bucketToApi(bucket),
              resource: policy,
              current: null,
              cap: null,
              requested: requested[policy],
              allowed,
              profile_id: profile.id,
            },
          );
        }
      }
      const id = bucketIdentity(bucket);
      const entry = buckets.get(id) ?? { bucket, profiles: [] };
      entry.profiles.push(profile);
      buckets.set(id, entry);
    }
    const charges: PlannedCharge[] = [];
    for (const { bucket, profiles } of buckets.values()) {
      const caps = strictest(profiles);
      for (const resource of QUOTA_RESOURCES) {
        const amount = req.amounts[resource];
        if (amount <= 0) continue;
        const cap = caps[resource];
        charges.push({
          key: bucketKey(bucket, resource),
          amount,
          cap: cap?.cap ?? null,
          bucket,
          resource,
          profileId: cap?.profileId ?? null,
        });
      }
    }
    return charges;
  }

  /**
   * Charges the planned counters for the bunker (its row must exist) and records the set on the
   * row; QUOTA_EXCEEDED naming the first bucket and resource that would overflow.
   */
  async charge(bunkerId: string, charges: readonly PlannedCharge[]): Promise<void> {
    if (charges.length === 0) return;
    await this.retryReleases();
    for (let attempt = 1; ; attempt++) {
      await this.ensureReady();
      const r = await this.counters.tryCharge(bunkerId, charges);
      if (r.status === 'ok') break;
      if (r.status === 'exceeded') {
        const c = charges[r.index] as PlannedCharge;
        const b = bucketToApi(c.bucket);
        throw new ApiError(
          'QUOTA_EXCEEDED',
          `quota exceeded: ${b.kind} bucket ${b.id} has ${r.current} of ${c.cap} ${c.resource} in use; this bunker needs ${c.amount}`,
          { bucket: b, resource: c.resource, current: r.current, cap: c.cap, requested: c.amount, profile_id: c.profileId },
        );
      }
      if (attempt >= MAX_CHARGE_ATTEMPTS) throw new Error('quota counters keep disappearing (is Redis being flushed?)');
    }
    const set: ChargeSet['charges'] = charges.map((c) => ({ key: c.key, amount: c.amount }));
    await this.store.bunkers.update(bunkerId, { quota_charges: JSON.stringify(set) });
  }

  /**
   * Gives back what the bunker was charged (idempotent). A failure is logged, not thrown, and
   * the release is retried before this controller's next quota operation.
   */
  async release(bunkerId: string): Promise<void> {
    try {
      await this.retryReleases();
      await this.counters.release(bunkerId);
      this.unreleased.delete(bunkerId);
    } catch (err) {
      this.unreleased.add(bunkerId);
      this.log(`[quota] release of ${bunkerId} failed (retried later): ${(err as Error).message}`);
    }
  }

  /** Bunkers whose release is still owed; the first failure stops the round (the counters are still unreachable). */
  private async retryReleases(): Promise<void> {
    for (const id of [...this.unreleased]) {
      await this.counters.release(id);
      this.unreleased.delete(id);
    }
  }

  /** Rebuilds the counters first if they are gone (a Redis wipe, a fresh embedded process). */
  async ensureReady(): Promise<void> {
    if (await this.counters.isReady()) return;
    await this.counters.withRebuildLock(async () => {
      if (await this.counters.isReady()) return;
      await this.rebuild();
    });
  }

  /**
   * Counters := the charge sets of the active bunker rows. A bunker that ended while the rows
   * were read found nothing to release; it is released once the counters are back.
   */
  private async rebuild(): Promise<void> {
    const rows = await this.store.bunkers.listActiveQuotaCharges();
    const sets: ChargeSet[] = rows.map((r) => ({ bunkerId: r.id, charges: JSON.parse(r.quota_charges) }));
    await this.counters.rebuild(sets);
    const now = new Map((await this.store.bunkers.getByIds(rows.map((r) => r.id))).map((r) => [r.id, r.state]));
    for (const s of sets) {
      const state = now.get(s.bunkerId);
      if (state === undefined || TERMINAL_STATES.has(state as BunkerState)) await this.counters.release(s.bunkerId);
    }
    this.log(`[quota] counters rebuilt from ${sets.length} active bunker(s)`);
  }

  /**
   * Per bucket: current, cap and remaining. Tenant admins see every bucket of the tenant (the
   * per-user buckets of a group: those with bunkers running); other callers the buckets that
   * apply to themselves.
   */
  async usage(principal: Principal, tenantIdParam: string | undefined): Promise<schemas.QuotaUsage> {
    const tenantId = await resolveTenant(this.store, principal, tenantIdParam);
    await this.retryReleases();
    const buckets = new Map<string, BucketRef>();
    const add = (b: BucketRef) => buckets.set(bucketIdentity(b), b);
    let assignments: QuotaAssignmentRow[];
    if (isTenantAdmin(principal)) {
      assignments = await this.store.quotas.listAssignmentsOfTenant(tenantId);
      const perUserGroups = new Set(assignments.filter((a) => a.kind === 'group_per_user').map((a) => a.subject));
      for (const a of assignments) if (a.kind !== 'group_per_user') add(bucketFor(a, ''));
      if (perUserGroups.size > 0) {
        for (const row of await this.store.bunkers.listActiveQuotaCharges(tenantId)) {
          for (const c of JSON.parse(row.quota_charges) as Array<{ key: string }>) {
            const parsed = parseBucketKey(c.key);
            if (parsed?.bucket.kind === 'group_per_user' && perUserGroups.has(parsed.bucket.group as string)) add(parsed.bucket);
          }
        }
      }
    } else {
      assignments = (await this.store.quotas.applicable(tenantId, principal.userId, principal.groups)).map((a) => a.assignment);
    }
    if (tenantId === principal.tenantId) {
      for (const a of assignments) {
        const mine = (a.kind === 'user' && a.subject === principal.userId) || (a.kind !== 'user' && principal.groups.includes(a.subject));
        if (mine) add(bucketFor(a, principal.userId));
      }
    }
    const profiles = new Map(
      (await this.store.quotas.getProfiles([...new Set(assignments.map((a) => a.profile_id))])).map((p) => [p.id, p]),
    );
    await this.ensureReady();
    const keys = [...buckets.values()].flatMap((b) => QUOTA_RESOURCES.map((r) => bucketKey(b, r)));
    const current = await this.counters.usage(keys);
    const items = [...buckets.values()].map((bucket) => {
      const applied = assignments
        .filter(
          (a) =>
            a.kind === bucket.kind &&
            a.subject === (bucket.kind === 'user' ? bucket.userId : bucket.group) &&
            a.tenant_id === bucket.tenantId,
        )
        .flatMap((a) => {
          const p = profiles.get(a.profile_id);
          return p ? [p] : [];
        });
      const caps = strictest(applied);
      const resources = Object.fromEntries(
        QUOTA_RESOURCES.map((r) => {
          const now = current.get(bucketKey(bucket, r)) ?? 0;
          const cap = caps[r]?.cap ?? null;
          return [r, { current: now, cap, remaining: cap === null ? null : Math.max(0, cap - now) }];
        }),
      ) as schemas.QuotaUsage['items'][number]['resources'];
      return { bucket: bucketToApi(bucket), profile_ids: [...new Set(applied.map((p) => p.id))], resources };
    });
    items.sort((a, b) => `${a.bucket.kind}:${a.bucket.id}`.localeCompare(`${b.bucket.kind}:${b.bucket.id}`));
    const snapshotCaps = [...profiles.values()].flatMap((p) => (p.max_snapshot_bytes === null ? [] : [Number(p.max_snapshot_bytes)]));
    const snapshotCap = snapshotCaps.length > 0 ? Math.min(...snapshotCaps) : null;
    const snapshotBytes = await this.store.snapshots.tenantBytes(tenantId);
    const snapshot_bytes = {
      current: snapshotBytes,
      cap: snapshotCap,
      remaining: snapshotCap === null ? null : Math.max(0, snapshotCap - snapshotBytes),
    };
    if (!this.outputs) return { items, snapshot_bytes };
    const stored = await this.outputs.usage(tenantId);
    return { items, stored_output_bytes: { ...stored, remaining: Math.max(0, stored.cap - stored.current) }, snapshot_bytes };
  }

  /**
   * Every assignment's bucket, per resource some profile of it caps: the counters' value against
   * the strictest cap (`/metrics`). Uncapped resources are left out: they have no limit to be near.
   */
  async gauges(): Promise<QuotaGauge[]> {
    const assignments = await this.store.quotas.listAllAssignments();
    if (assignments.length === 0) return [];
    const profiles = new Map(
      (await this.store.quotas.getProfiles([...new Set(assignments.map((a) => a.profile_id))])).map((p) => [p.id, p]),
    );
    // One entry per (tenant, kind, subject): its profiles' strictest caps.
    const byBucket = new Map<string, { tenantId: string; kind: string; subject: string; profiles: QuotaProfileRow[] }>();
    for (const a of assignments) {
      const id = `${a.tenant_id}\0${a.kind}\0${a.subject}`;
      const entry = byBucket.get(id) ?? { tenantId: a.tenant_id, kind: a.kind, subject: a.subject, profiles: [] };
      const p = profiles.get(a.profile_id);
      if (p) entry.profiles.push(p);
      byBucket.set(id, entry);
    }
    await this.ensureReady();
    // The per-user buckets of a group exist while its users have bunkers: found on the active rows.
    const perUserKeys = new Map<string, string[]>();
    if (assignments.some((a) => a.kind === 'group_per_user')) {
      for (const row of await this.store.bunkers.listActiveQuotaCharges()) {
        for (const c of JSON.parse(row.quota_charges) as Array<{ key: string }>) {
          const parsed = parseBucketKey(c.key);
          if (parsed?.bucket.kind !== 'group_per_user') continue;
          const id = `${parsed.bucket.tenantId}\0group_per_user\0${parsed.bucket.group}`;
          perUserKeys.set(id, [...(perUserKeys.get(id) ?? []), c.key]);
        }
      }
    }
    const wanted: string[] = [];
    const plans: Array<{
      entry: { tenantId: string; kind: string; subject: string };
      resource: QuotaResource;
      cap: number;
      keys: string[];
    }> = [];
    for (const [id, entry] of byBucket) {
      const caps = strictest(entry.profiles);
      for (const resource of QUOTA_RESOURCES) {
        const cap = caps[resource];
        if (cap === null) continue;
        const keys =
          entry.kind === 'group_per_user'
            ? (perUserKeys.get(id) ?? []).filter((k) => parseBucketKey(k)?.resource === resource)
            : [
                bucketKey(
                  bucketFor({ tenant_id: entry.tenantId, kind: entry.kind as QuotaAssignmentRow['kind'], subject: entry.subject }, ''),
                  resource,
                ),
              ];
        wanted.push(...keys);
        plans.push({ entry, resource, cap: cap.cap, keys });
      }
    }
    const values = await this.counters.usage([...new Set(wanted)]);
    return plans.map(({ entry, resource, cap, keys }) => ({
      tenantId: entry.tenantId,
      bucket: `${entry.kind}:${entry.subject}`,
      resource,
      current: Math.max(0, ...keys.map((k) => values.get(k) ?? 0)),
      cap,
    }));
  }
}
