/** What a quota profile caps: counted per bucket, charged at create, released when a bunker ends. */
export const QUOTA_RESOURCES = ['bunkers', 'cpu_millicores', 'memory_mb', 'disk_mb', 'gpu_count'] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];

/** What a quota profile may restrict to a list; a create outside the list is QUOTA_EXCEEDED naming it. */
export const QUOTA_POLICIES = ['lifecycle', 'image', 'network_profile'] as const;
export type QuotaPolicy = (typeof QUOTA_POLICIES)[number];

/**
 * Who a profile applies to, and so which bucket is counted:
 * `user` — one user, its own bucket; `group` — every member of a group, one bucket they share;
 * `group_per_user` — every member of a group, each with a bucket of its own.
 */
export const QUOTA_ASSIGNMENT_KINDS = ['user', 'group', 'group_per_user'] as const;
export type QuotaAssignmentKind = (typeof QUOTA_ASSIGNMENT_KINDS)[number];

/** The network profiles of DESIGN.md; a quota profile may list any of them ahead of their implementation. */
export const NETWORK_PROFILE_NAMES = ['isolated', 'registry', 'allowlisted', 'unrestricted', 'transit'] as const;

export const GPU_COUNT_MAX = 16;
