import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { ApiError, SHA256_HEX } from '@scaibunker/core';
import { type BlobInfo, type BlobStore, checkBlobKey, checkBlobPrefix } from '../blobs/BlobStore.js';
import { type CapabilityTokens, MAX_CAPABILITY_TTL_S, type StorageVerb } from './CapabilityTokens.js';
import { STORAGE_ROOT, type StorageGrant } from './StorageGrant.js';

export interface ObjectRead {
  body: Readable;
  info: BlobInfo;
  /** Present when a range was served (206). */
  range?: { start: number; end: number };
}

/**
 * The storage proxy's rules: keys under `scaibunker/`, what each caller's grant allows, byte
 * ranges, and checksums verified on the way in. Bytes stream through; no object is ever held
 * whole in memory.
 */
export class StorageService {
  constructor(
    private readonly blobs: BlobStore,
    private readonly capabilities: CapabilityTokens,
  ) {}

  async read(grant: StorageGrant, key: string, rangeHeader: string | undefined): Promise<ObjectRead> {
    this.check(grant, 'get', key);
    // A whole read is one open (which knows the size); a range needs the size first.
    if (rangeHeader === undefined) {
      const whole = await this.blobs.open(key);
      if (!whole) throw notFound(key);
      return whole;
    }
    const info = await this.blobs.stat(key);
    if (!info) throw notFound(key);
    const range = parseRange(rangeHeader, info.size);
    const opened = await this.blobs.open(key, range);
    if (!opened) throw notFound(key);
    return range ? { body: opened.body, info: opened.info, range } : { body: opened.body, info: opened.info };
  }

  async stat(grant: StorageGrant, key: string): Promise<BlobInfo> {
    this.check(grant, 'get', key);
    const info = await this.blobs.stat(key);
    if (!info) throw notFound(key);
    return info;
  }

  /**
   * Streams `body` to `key`, hashing on the way. With `declaredSha256`, a mismatch fails the
   * put before the object becomes visible (CHECKSUM_MISMATCH) and the old object stays.
   */
  async write(
    grant: StorageGrant,
    key: string,
    body: Readable,
    declaredSha256: string | undefined,
  ): Promise<{ key: string; bytes: number; sha256: string }> {
    this.check(grant, 'put', key);
    if (declaredSha256 !== undefined && !SHA256_HEX.test(declaredSha256)) {
      throw new ApiError('VALIDATION_FAILED', 'x-scaibunker-sha256 must be 64 lowercase hex digits', { field: 'x-scaibunker-sha256' });
    }
    const hash = createHash('sha256');
    let sha256 = '';
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
      flush(done) {
        sha256 = hash.digest('hex');
        // Failing the stream here aborts the put in every backend: nothing is committed.
        if (declaredSha256 !== undefined && sha256 !== declaredSha256) {
          done(new ApiError('CHECKSUM_MISMATCH', `the body's sha256 is ${sha256}, not the declared ${declaredSha256}`));
        } else done();
      },
    });
    body.on('error', (err) => hashing.destroy(err));
    // A small body can end (and fail its checksum) before the backend starts reading; the
    // backend's pipeline still sees the stored error, this only keeps it from being "unhandled".
    hashing.on('error', () => {});
    const { bytes } = await this.blobs.put(key, body.pipe(hashing), declaredSha256 ? { sha256: declaredSha256 } : {});
    return { key, bytes, sha256 };
  }

  async remove(grant: StorageGrant, key: string): Promise<void> {
    this.check(grant, 'delete', key);
    await this.blobs.delete(key);
  }

  async list(
    grant: StorageGrant,
    prefix: string,
    opts: { startAfter?: string; limit: number },
  ): Promise<{ items: Array<{ key: string; bytes: number }>; next_start_after: string | null }> {
    try {
      checkBlobPrefix(prefix);
    } catch {
      throw new ApiError('VALIDATION_FAILED', `invalid prefix ${JSON.stringify(prefix)}: a key ending with /`, { field: 'prefix' });
    }
    if (!grant.allows('list', prefix)) throw denied('list', prefix);
    const page = await this.blobs.list(prefix, opts);
    return { items: page.items, next_start_after: page.more ? (page.items.at(-1)?.key ?? null) : null };
  }

  issueCapability(req: { prefix: string; verbs: StorageVerb[]; ttl_s: number }): {
    token: string;
    prefix: string;
    verbs: StorageVerb[];
    expires_at: string;
  } {
    try {
      checkBlobPrefix(req.prefix);
    } catch {
      throw new ApiError('VALIDATION_FAILED', `invalid prefix ${JSON.stringify(req.prefix)}: a key ending with /`, { field: 'prefix' });
    }
    if (!req.prefix.startsWith(STORAGE_ROOT)) {
      throw new ApiError('VALIDATION_FAILED', `the prefix must start with ${STORAGE_ROOT}`, { field: 'prefix' });
    }
    const ttlS = Math.min(req.ttl_s, MAX_CAPABILITY_TTL_S);
    const { token, capability } = this.capabilities.issue({ prefix: req.prefix, verbs: req.verbs, ttlS });
    return {
      token,
      prefix: capability.prefix,
      verbs: capability.verbs,
      expires_at: new Date(capability.expiresAt * 1000).toISOString(),
    };
  }

  private check(grant: StorageGrant, verb: StorageVerb, key: string): void {
    try {
      checkBlobKey(key);
    } catch {
      throw new ApiError('VALIDATION_FAILED', `invalid storage key ${JSON.stringify(key)}`, { field: 'key' });
    }
    if (!grant.allows(verb, key)) throw denied(verb, key);
  }
}

function notFound(key: string): ApiError {
  return new ApiError('BLOB_NOT_FOUND', `no object ${key}`);
}

function denied(verb: StorageVerb, key: string): ApiError {
  return new ApiError('PERMISSION_DENIED', `these credentials may not ${verb} ${key}`, { verb });
}

/**
 * One `bytes=` range of RFC 9110: `N-`, `N-M` or `-SUFFIX`. Several ranges are answered whole
 * (a server may ignore Range); one past the end is RANGE_NOT_SATISFIABLE.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) {
    if (/^bytes=[\d\s,-]+$/.test(header.trim())) return undefined;
    throw new ApiError('VALIDATION_FAILED', `malformed Range header ${JSON.stringify(header)}`, { field: 'range' });
  }
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') throw new ApiError('VALIDATION_FAILED', `malformed Range header ${JSON.stringify(header)}`, { field: 'range' });
  let start: number;
  let end: number;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) throw unsatisfiable(header, size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== '' && Number(b) < start)
      throw new ApiError('VALIDATION_FAILED', `malformed Range header ${JSON.stringify(header)}`, { field: 'range' });
  }
  if (start >= size) throw unsatisfiable(header, size);
  return { start, end };
}

function unsatisfiable(header: string, size: number): ApiError {
  return new ApiError('RANGE_NOT_SATISFIABLE', `range ${header} is outside the object (${size} bytes)`, { size });
}
