import type { Readable } from 'node:stream';
import { ApiError, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import { type BlobStore, blobKeys, checkBlobKey } from '../blobs/BlobStore.js';
import type { BunkerService } from './BunkerService.js';

const BATCH_NAME = /^[0-9]{16}-[0-9]{1,10}\.ndjson$/;

/**
 * Flow-audit batches of `unrestricted` bunkers: NDJSON files a worker writes through the storage
 * proxy (`scaibunker/audit/{bunker_id}/{ts_us}-{worker_pid}.ndjson`), listed and read by the
 * bunker's tenant. Names sort by time (16-digit µs), so a listing is a key range; any other
 * object under the prefix is not a batch and is left out.
 */
export class FlowAuditService {
  constructor(
    private readonly bunkers: BunkerService,
    private readonly blobs: BlobStore,
  ) {}

  async list(principal: Principal, bunkerId: string, q: schemas.AuditBatchQuery): Promise<schemas.AuditBatchPageT> {
    await this.bunkers.get(principal, bunkerId);
    const prefix = blobKeys.auditBatches(bunkerId);
    // Every name with ts_us >= since sorts after the bare 16-digit prefix of `since`.
    const bounds = [
      q.since_us !== undefined ? prefix + q.since_us.padStart(16, '0') : undefined,
      q.continuation_token ? decodeToken(prefix, q.continuation_token) : undefined,
    ];
    const startAfter = bounds
      .filter((b): b is string => b !== undefined)
      .sort()
      .pop();
    const page = await this.blobs.list(prefix, { ...(startAfter ? { startAfter } : {}), limit: q.limit ?? 100 });
    const items = page.items.flatMap(({ key, bytes }) => {
      const name = key.slice(prefix.length);
      return BATCH_NAME.test(name) ? [{ name, ts_us: String(Number.parseInt(name.slice(0, 16), 10)), bytes }] : [];
    });
    const last = page.items.at(-1);
    return {
      items,
      next_continuation_token: page.more && last ? Buffer.from(last.key.slice(prefix.length)).toString('base64url') : null,
    };
  }

  async get(principal: Principal, bunkerId: string, name: string): Promise<Readable> {
    await this.bunkers.get(principal, bunkerId);
    const stream = await this.blobs.get(blobKeys.auditBatch(bunkerId, name));
    if (!stream) throw new ApiError('AUDIT_BATCH_NOT_FOUND', `bunker ${bunkerId} has no audit batch ${name}`);
    return stream;
  }
}

function decodeToken(prefix: string, token: string): string {
  const name = Buffer.from(token, 'base64url').toString();
  try {
    if (name.includes('/')) throw new Error('not a name');
    return checkBlobKey(prefix + name);
  } catch {
    throw new ApiError('VALIDATION_FAILED', 'invalid continuation_token', { field: 'querystring/continuation_token' });
  }
}
