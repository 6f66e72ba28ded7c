import { Readable, Transform } from 'node:stream';
import { ApiError, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { Store } from '../store/Store.js';
import type { BunkerService } from './BunkerService.js';

/** Largest batch a worker may upload (a batch is at most a few thousand flow records). */
const MAX_BATCH_BYTES = 64 * 1024 * 1024;
const BATCH_NAME = /^[0-9]{16}-[0-9]{1,10}\.ndjson$/;

/**
 * Flow-audit batches of `unrestricted` bunkers: NDJSON files a worker writes through the storage
 * route (`scaibunker/audit/{bunker_id}/{ts_us}-{worker_pid}.ndjson`), listed and read by the
 * bunker's tenant. Names sort by time (16-digit µs), so a listing is a key range.
 */
export class FlowAuditService {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly blobs: BlobStore,
  ) {}

  /** A worker's upload: the bunker must exist (any tenant, any state: flows end after the bunker). */
  async storeBatch(bunkerId: string, name: string, body: Readable | Buffer): Promise<{ key: string; bytes: number }> {
    // The HTTP route's schema checks these too; an embedded worker calls in directly.
    if (!BATCH_NAME.test(name))
      throw new ApiError('VALIDATION_FAILED', `invalid audit batch name ${JSON.stringify(name)}`, { field: 'params/name' });
    if (!(await this.store.bunkers.getById(bunkerId)))
      throw new ApiError('BUNKER_NOT_FOUND', `no bunker ${bunkerId}`, { bunker_id: bunkerId });
    const key = blobKeys.auditBatch(bunkerId, name);
    const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
    let seen = 0;
    const capped = new Transform({
      transform(chunk: Buffer, _enc, done) {
        seen += chunk.length;
        if (seen > MAX_BATCH_BYTES) done(new ApiError('PAYLOAD_TOO_LARGE', `an audit batch is at most ${MAX_BATCH_BYTES} bytes`));
        else done(null, chunk);
      },
    });
    source.on('error', (err) => capped.destroy(err));
    const { bytes } = await this.blobs.put(key, source.pipe(capped));
    return { key, bytes };
  }

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
    const items = page.items.map(({ key, bytes }) => {
      const name = key.slice(prefix.length);
      return { name, ts_us: String(Number.parseInt(name.slice(0, 16), 10)), bytes };
    });
    const last = items.at(-1);
    return { items, next_continuation_token: page.more && last ? Buffer.from(last.name).toString('base64url') : null };
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
  if (!BATCH_NAME.test(name))
    throw new ApiError('VALIDATION_FAILED', 'invalid continuation_token', { field: 'querystring/continuation_token' });
  return prefix + name;
}
