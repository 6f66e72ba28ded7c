# GENERATED from packages/core/src/errors/codes.ts and packages/sdk/src/errors.ts
# by packages/sdk-python/scripts/generate-error-codes.ts — do not edit.
# Regenerate with: npm run generate
"""The API's error table: code -> HTTP status, the SDK exception class name, description."""

from __future__ import annotations

from typing import NamedTuple


class ErrorCodeInfo(NamedTuple):
    status: int
    error_class: str
    description: str


ERROR_CODES: dict[str, ErrorCodeInfo] = {
    "VALIDATION_FAILED": ErrorCodeInfo(400, "ValidationError", "The request is malformed: bad JSON, unknown field, value out of range."),
    "UNAUTHENTICATED": ErrorCodeInfo(401, "AuthError", "No credentials, or credentials that are unknown, revoked or expired."),
    "PERMISSION_DENIED": ErrorCodeInfo(403, "AuthError", "The caller lacks the permission this route declares."),
    "NETWORK_PROFILE_DENIED": ErrorCodeInfo(403, "AuthError", "The caller lacks the permission for the requested network profile."),
    "BUNKER_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No bunker with that id in the caller's tenant."),
    "IMAGE_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No image with that name visible to the caller."),
    "TENANT_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No tenant with that id."),
    "WORKER_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No worker with that id."),
    "API_KEY_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No API key with that id in that tenant."),
    "FILE_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No file or directory at that path inside the bunker."),
    "OUTPUT_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No stored exec output with that reference."),
    "EXEC_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No exec with that id in the bunker."),
    "AUDIT_BATCH_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No flow-audit batch with that name for the bunker."),
    "BRIDGE_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No ready bridge with that id in the caller's tenant."),
    "QUOTA_PROFILE_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No quota profile (or assignment of it) with that id in the caller's scope."),
    "AVAILABILITY_GROUP_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No availability group with that id (or no such member in it)."),
    "BLOB_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No stored object with that key."),
    "NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No such route."),
    "BUNKER_INVALID_TRANSITION": ErrorCodeInfo(409, "ConflictError", "The bunker's state does not allow this lifecycle move."),
    "BUNKER_NOT_RUNNING": ErrorCodeInfo(409, "ConflictError", "The operation needs a running bunker."),
    "EXEC_CONFLICT": ErrorCodeInfo(409, "ConflictError", "The exec has ended, its stdin is closed, or it has no terminal to resize."),
    "IMAGE_NOT_READY": ErrorCodeInfo(409, "ConflictError", "The image exists but is not baked yet."),
    "AVAILABILITY_GROUP_CONFLICT": ErrorCodeInfo(409, "ConflictError", "An availability group of that name already exists."),
    "AVAILABILITY_GROUP_LIMIT": ErrorCodeInfo(409, "ConflictError", "The tenant has as many availability groups as it may (10), or the group as many images (20); delete one first."),
    "IMAGE_CONFLICT": ErrorCodeInfo(409, "ConflictError", "An image of that name already exists in that scope."),
    "IMAGE_IN_USE": ErrorCodeInfo(409, "ConflictError", "Bunkers that have not ended use the image; it cannot be deleted."),
    "PREVIEWS_DISABLED": ErrorCodeInfo(409, "ConflictError", "This deployment serves no host-based previews (the controller runs without --preview-domain)."),
    "FILE_PERMISSION_DENIED": ErrorCodeInfo(403, "AuthError", "Inside the bunker, the file permissions forbid this operation."),
    "FILE_CONFLICT": ErrorCodeInfo(409, "ConflictError", "The path exists with the wrong type (e.g. a directory where a file is expected) or is not empty."),
    "QUOTA_PROFILE_CONFLICT": ErrorCodeInfo(409, "ConflictError", "A quota profile with that name already exists in the tenant, or the profile already has that assignment."),
    "BRIDGE_CONFLICT": ErrorCodeInfo(409, "ConflictError", "The tenant already has a bridge of that name, or a bunker that has not ended is attached to the bridge."),
    "PREVIEW_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No preview with that id for the bunker."),
    "CODE_CONTEXT_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No running code context with that id in the bunker."),
    "KERNEL_UNAVAILABLE": ErrorCodeInfo(409, "ConflictError", "The bunker cannot run a code context's kernel (its image has no python3, or the kernel did not start); the message says why."),
    "SNAPSHOT_NOT_FOUND": ErrorCodeInfo(404, "NotFoundError", "No snapshot with that id in the caller's tenant."),
    "SNAPSHOT_NOT_READY": ErrorCodeInfo(409, "ConflictError", "The snapshot is still being written, or it failed; only a `ready` snapshot restores."),
    "SNAPSHOT_IN_USE": ErrorCodeInfo(409, "ConflictError", "A bunker is being restored from the snapshot, or a passivated bunker keeps its files in it; it cannot be deleted now."),
    "SNAPSHOT_CORRUPT": ErrorCodeInfo(422, "ConflictError", "The snapshot's stored archive does not match its sha256 or does not unpack; the restore failed and left nothing."),
    "SNAPSHOT_FAILED": ErrorCodeInfo(502, "UnavailableError", "The worker could not write the snapshot (the reason is in the message); nothing was stored and the bunker runs on."),
    "TUNNEL_LIMIT": ErrorCodeInfo(429, "QuotaError", "The bunker already has as many open port connections as a controller allows (or its worker: 256); retry when one ends."),
    "PAYLOAD_TOO_LARGE": ErrorCodeInfo(413, "PayloadTooLargeError", "The request body or upload exceeds its cap."),
    "CHECKSUM_MISMATCH": ErrorCodeInfo(400, "ValidationError", "The uploaded bytes' sha256 differs from the one declared; nothing was stored."),
    "RANGE_NOT_SATISFIABLE": ErrorCodeInfo(416, "ValidationError", "The requested byte range starts past the end of the object."),
    "QUOTA_EXCEEDED": ErrorCodeInfo(429, "QuotaError", "Creating this bunker would exceed a quota bucket, or a quota profile does not allow its lifecycle, image or network profile; `details` name the bucket and the resource."),
    "DISK_FULL": ErrorCodeInfo(507, "DiskFullError", "The bunker's disk (disk_mb) is full."),
    "INSUFFICIENT_STORAGE": ErrorCodeInfo(507, "DiskFullError", "The platform's own storage is full or under its reserve (a controller's or worker's data disk); nothing partial was stored (a create refused this way leaves a failed bunker row saying why). Retry later."),
    "INTERNAL": ErrorCodeInfo(500, "InternalError", "An unexpected fault; the request id is in the details."),
    "BRIDGE_REJECTED": ErrorCodeInfo(502, "UnavailableError", "The worker refused to create the bridge; nothing was kept."),
    "PORT_NOT_LISTENING": ErrorCodeInfo(502, "UnavailableError", "Nothing listens on that port inside the bunker."),
    "PORT_TIMEOUT": ErrorCodeInfo(504, "UnavailableError", "The service on that port inside the bunker sent nothing for longer than the idle timeout before answering."),
    "WORKER_UNAVAILABLE": ErrorCodeInfo(503, "UnavailableError", "The bunker's worker cannot be reached."),
    "NO_SUITABLE_WORKER": ErrorCodeInfo(503, "UnavailableError", "No online worker has the capacity or features the bunker needs."),
    "STORE_UNAVAILABLE": ErrorCodeInfo(503, "UnavailableError", "The database cannot be reached right now; retry after `Retry-After` seconds."),
    "LIVE_STATE_UNAVAILABLE": ErrorCodeInfo(503, "UnavailableError", "The live-state store (Redis: quota counters, heartbeats) cannot be reached right now; retry after `Retry-After` seconds."),
    "BLOB_STORE_UNAVAILABLE": ErrorCodeInfo(503, "UnavailableError", "The blob store cannot be reached right now; retry after `Retry-After` seconds."),
}

# Codes the SDK itself produces when there is no API error body to read.
SDK_ERROR_CODES: dict[str, int] = {
    "CONNECTION_FAILED": 503,
    "UNEXPECTED_RESPONSE": 502,
}

# Not HTTP errors: values that appear inside successful results.
RESULT_CODES: dict[str, str] = {
    "EXEC_TIMEOUT": "The command ran past timeout_s; its process group was killed (exec result `timed_out: true`).",
}
