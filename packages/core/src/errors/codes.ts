/**
 * The one table of API error codes. The OpenAPI document, the SDK's typed errors and
 * docs/API.md are all checked against this table by test/errors.test.ts.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: { status: 400, description: 'The request is malformed: bad JSON, unknown field, value out of range.' },
  UNAUTHENTICATED: { status: 401, description: 'No credentials, or credentials that are unknown, revoked or expired.' },
  PERMISSION_DENIED: { status: 403, description: 'The caller lacks the permission this route declares.' },
  NETWORK_PROFILE_DENIED: { status: 403, description: 'The caller lacks the permission for the requested network profile.' },
  BUNKER_NOT_FOUND: { status: 404, description: "No bunker with that id in the caller's tenant." },
  IMAGE_NOT_FOUND: { status: 404, description: 'No image with that name visible to the caller.' },
  TENANT_NOT_FOUND: { status: 404, description: 'No tenant with that id.' },
  WORKER_NOT_FOUND: { status: 404, description: 'No worker with that id.' },
  API_KEY_NOT_FOUND: { status: 404, description: 'No API key with that id in that tenant.' },
  FILE_NOT_FOUND: { status: 404, description: 'No file or directory at that path inside the bunker.' },
  OUTPUT_NOT_FOUND: { status: 404, description: 'No stored exec output with that reference.' },
  EXEC_NOT_FOUND: { status: 404, description: 'No exec with that id in the bunker.' },
  AUDIT_BATCH_NOT_FOUND: { status: 404, description: 'No flow-audit batch with that name for the bunker.' },
  BRIDGE_NOT_FOUND: { status: 404, description: "No ready bridge with that id in the caller's tenant." },
  QUOTA_PROFILE_NOT_FOUND: { status: 404, description: "No quota profile (or assignment of it) with that id in the caller's scope." },
  AVAILABILITY_GROUP_NOT_FOUND: { status: 404, description: 'No availability group with that id (or no such member in it).' },
  BLOB_NOT_FOUND: { status: 404, description: 'No stored object with that key.' },
  NOT_FOUND: { status: 404, description: 'No such route.' },
  BUNKER_INVALID_TRANSITION: { status: 409, description: "The bunker's state does not allow this lifecycle move." },
  BUNKER_NOT_RUNNING: { status: 409, description: 'The operation needs a running bunker.' },
  EXEC_CONFLICT: { status: 409, description: 'The exec has ended, its stdin is closed, or it has no terminal to resize.' },
  IMAGE_NOT_READY: { status: 409, description: 'The image exists but is not baked yet.' },
  AVAILABILITY_GROUP_CONFLICT: { status: 409, description: 'An availability group of that name already exists.' },
  AVAILABILITY_GROUP_LIMIT: {
    status: 409,
    description: 'The tenant has as many availability groups as it may (10), or the group as many images (20); delete one first.',
  },
  IMAGE_CONFLICT: { status: 409, description: 'An image of that name already exists in that scope.' },
  IMAGE_IN_USE: { status: 409, description: 'Bunkers that have not ended use the image; it cannot be deleted.' },
  PREVIEWS_DISABLED: {
    status: 409,
    description: 'This deployment serves no host-based previews (the controller runs without --preview-domain).',
  },
  FILE_PERMISSION_DENIED: { status: 403, description: 'Inside the bunker, the file permissions forbid this operation.' },
  FILE_CONFLICT: {
    status: 409,
    description: 'The path exists with the wrong type (e.g. a directory where a file is expected) or is not empty.',
  },
  QUOTA_PROFILE_CONFLICT: {
    status: 409,
    description: 'A quota profile with that name already exists in the tenant, or the profile already has that assignment.',
  },
  BRIDGE_CONFLICT: {
    status: 409,
    description: 'The tenant already has a bridge of that name, or a bunker that has not ended is attached to the bridge.',
  },
  PREVIEW_NOT_FOUND: { status: 404, description: 'No preview with that id for the bunker.' },
  CODE_CONTEXT_NOT_FOUND: { status: 404, description: 'No running code context with that id in the bunker.' },
  KERNEL_UNAVAILABLE: {
    status: 409,
    description:
      "The bunker cannot run a code context's kernel (its image has no python3, or the kernel did not start); the message says why.",
  },
  SNAPSHOT_NOT_FOUND: { status: 404, description: "No snapshot with that id in the caller's tenant." },
  SNAPSHOT_NOT_READY: {
    status: 409,
    description: 'The snapshot is still being written, or it failed; only a `ready` snapshot restores.',
  },
  SNAPSHOT_IN_USE: {
    status: 409,
    description: 'A bunker is being restored from the snapshot, or a passivated bunker keeps its files in it; it cannot be deleted now.',
  },
  SNAPSHOT_CORRUPT: {
    status: 422,
    description: "The snapshot's stored archive does not match its sha256 or does not unpack; the restore failed and left nothing.",
  },
  SNAPSHOT_FAILED: {
    status: 502,
    description: 'The worker could not write the snapshot (the reason is in the message); nothing was stored and the bunker runs on.',
  },
  TUNNEL_LIMIT: {
    status: 429,
    description: 'The bunker already has as many open port connections as a controller allows (or its worker: 256); retry when one ends.',
  },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The request body or upload exceeds its cap.' },
  CHECKSUM_MISMATCH: { status: 400, description: "The uploaded bytes' sha256 differs from the one declared; nothing was stored." },
  RANGE_NOT_SATISFIABLE: { status: 416, description: 'The requested byte range starts past the end of the object.' },
  QUOTA_EXCEEDED: {
    status: 429,
    description:
      'Creating this bunker would exceed a quota bucket, or a quota profile does not allow its lifecycle, image or network profile; `details` name the bucket and the resource.',
  },
  DISK_FULL: { status: 507, description: "The bunker's disk (disk_mb) is full." },
  INSUFFICIENT_STORAGE: {
    status: 507,
    description:
      "The platform's own storage is full or under its reserve (a controller's or worker's data disk); nothing partial was stored (a create refused this way leaves a failed bunker row saying why). Retry later.",
  },
  INTERNAL: { status: 500, description: 'An unexpected fault; the request id is in the details.' },
  BRIDGE_REJECTED: { status: 502, description: 'The worker refused to create the bridge; nothing was kept.' },
  PORT_NOT_LISTENING: { status: 502, description: 'Nothing listens on that port inside the bunker.' },
  PORT_TIMEOUT: {
    status: 504,
    description: 'The service on that port inside the bunker sent nothing for longer than the idle timeout before answering.',
  },
  WORKER_UNAVAILABLE: { status: 503, description: "The bunker's worker cannot be reached." },
  NO_SUITABLE_WORKER: { status: 503, description: 'No online worker has the capacity or features the bunker needs.' },
  STORE_UNAVAILABLE: { status: 503, description: 'The database cannot be reached right now; retry after `Retry-After` seconds.' },
  LIVE_STATE_UNAVAILABLE: {
    status: 503,
    description: 'The live-state store (Redis: quota counters, heartbeats) cannot be reached right now; retry after `Retry-After` seconds.',
  },
  BLOB_STORE_UNAVAILABLE: { status: 503, description: 'The blob store cannot be reached right now; retry after `Retry-After` seconds.' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Outages of a backing service: transient, so their answers carry `Retry-After` (seconds). */
export const RETRYABLE_AFTER_S: Partial<Record<ErrorCode, number>> = {
  STORE_UNAVAILABLE: 2,
  LIVE_STATE_UNAVAILABLE: 2,
  BLOB_STORE_UNAVAILABLE: 2,
  INSUFFICIENT_STORAGE: 30,
  TUNNEL_LIMIT: 1,
};

/** Not HTTP errors: values that appear inside successful results. */
export const RESULT_CODES = {
  EXEC_TIMEOUT: 'The command ran past timeout_s; its process group was killed (exec result `timed_out: true`).',
} as const;
