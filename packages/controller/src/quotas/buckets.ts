import type { QuotaAssignmentKind, QuotaResource, schemas } from '@scaibunker/core';
import { QUOTA_ASSIGNMENT_KINDS, QUOTA_RESOURCES } from '@scaibunker/core';

/**
 * A quota bucket: one set of counters, shared by whoever it applies to. Always scoped by its
 * tenant, so two tenants' users or groups of the same name never share a counter.
 */
export interface BucketRef {
  kind: QuotaAssignmentKind;
  tenantId: string;
  /** `user` and `group_per_user` buckets. */
  userId: string | null;
  /** `group` and `group_per_user` buckets. */
  group: string | null;
}

export const BUCKET_KEY_PREFIX = 'quota:bucket:';

/** The bucket's id within its tenant: `<user>`, `<group>` or `<group>:<user>`, each part URI-encoded (so `:` never collides). */
export function bucketId(b: BucketRef): string {
  if (b.kind === 'user') return encodeURIComponent(b.userId ?? '');
  if (b.kind === 'group') return encodeURIComponent(b.group ?? '');
  return `${encodeURIComponent(b.group ?? '')}:${encodeURIComponent(b.userId ?? '')}`;
}

/** `quota:bucket:{kind}:{tenant}:{id}:{resource}`: one counter. */
export function bucketKey(b: BucketRef, resource: QuotaResource): string {
  return `${BUCKET_KEY_PREFIX}${b.kind}:${b.tenantId}:${bucketId(b)}:${resource}`;
}

/** Inverse of bucketKey; undefined for anything else. */
export function parseBucketKey(key: string): { bucket: BucketRef; resource: QuotaResource } | undefined {
  if (!key.startsWith(BUCKET_KEY_PREFIX)) return undefined;
  const parts = key.slice(BUCKET_KEY_PREFIX.length).split(':');
  const kind = parts[0] as QuotaAssignmentKind;
  const tenantId = parts[1];
  const resource = parts[parts.length - 1] as QuotaResource;
  if (!QUOTA_ASSIGNMENT_KINDS.includes(kind) || !tenantId || !QUOTA_RESOURCES.includes(resource)) return undefined;
  const id = parts.slice(2, -1);
  try {
    if (kind === 'group_per_user' && id.length === 2) {
      return {
        bucket: { kind, tenantId, group: decodeURIComponent(id[0] as string), userId: decodeURIComponent(id[1] as string) },
        resource,
      };
    }
    if (id.length !== 1) return undefined;
    const value = decodeURIComponent(id[0] as string);
    return { bucket: { kind, tenantId, userId: kind === 'user' ? value : null, group: kind === 'group' ? value : null }, resource };
  } catch {
    return undefined;
  }
}

/** One string per bucket, for maps and sets. */
export function bucketIdentity(b: BucketRef): string {
  return `${b.kind}:${b.tenantId}:${bucketId(b)}`;
}

export function bucketToApi(b: BucketRef): schemas.QuotaBucket {
  return { kind: b.kind, id: bucketId(b), user_id: b.userId, group: b.group };
}

/** The bucket an assignment gives a user: the user's own, the group's shared one, or the user's one within the group. */
export function bucketFor(assignment: { tenant_id: string; kind: QuotaAssignmentKind; subject: string }, userId: string): BucketRef {
  const tenantId = assignment.tenant_id;
  if (assignment.kind === 'user') return { kind: 'user', tenantId, userId: assignment.subject, group: null };
  if (assignment.kind === 'group') return { kind: 'group', tenantId, userId: null, group: assignment.subject };
  return { kind: 'group_per_user', tenantId, userId, group: assignment.subject };
}
