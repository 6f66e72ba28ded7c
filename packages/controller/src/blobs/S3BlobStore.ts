import { pipeline, type Readable, Transform } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { type BlobInfo, type BlobStore, checkBlobKey, checkBlobPrefix } from './BlobStore.js';

export interface S3BlobStoreOptions {
  bucket: string;
  region: string;
  /** An S3-compatible server (MinIO, Ceph, s3rver…); AWS when absent. */
  endpoint?: string;
  /** Bucket/key URLs (`http://host/bucket/key`) rather than virtual hosts; usual for `endpoint`. */
  forcePathStyle?: boolean;
  /** Prepended to every key: `''` or a valid key ending with `/`. */
  keyPrefix?: string;
  /** Explicit credentials; otherwise the SDK's default chain (AWS_ACCESS_KEY_ID/…, profile, IMDS). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/**
 * Multipart part size and parts in flight. Each part in flight is held more than once (the
 * chunker's buffer, the SDK's request and checksum): 2 in flight kept a 256 MiB put through the
 * proxy to about 90 MiB of peak RSS on Node 24, where 4 reached 110–130 MiB for no faster upload.
 */
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;
/** ListObjectsV2 returns at most this many entries per request. */
const MAX_LIST_PAGE = 1000;

/**
 * The blob store in an S3 bucket. Puts stream through a multipart upload (a single PutObject
 * when the object fits in one part), which S3 makes visible only when completed; a failed put
 * aborts the upload, so an object appears whole or not at all, like the local backend.
 */
export class S3BlobStore implements BlobStore {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly root: string;

  constructor(opts: S3BlobStoreOptions) {
    const root = opts.keyPrefix ?? '';
    if (root !== '') checkBlobPrefix(root);
    this.root = root;
    this.bucket = opts.bucket;
    this.client = new S3Client({
      region: opts.region,
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      ...(opts.forcePathStyle ? { forcePathStyle: true } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
    });
  }

  async put(key: string, data: Readable | Buffer, opts: { sha256?: string } = {}): Promise<{ bytes: number }> {
    const Key = this.root + checkBlobKey(key);
    // User metadata is fixed when the upload starts, so only a declared checksum can be kept.
    const Metadata = opts.sha256 ? { sha256: opts.sha256 } : undefined;
    if (Buffer.isBuffer(data)) {
      await this.upload(Key, data, Metadata);
      return { bytes: data.length };
    }
    // Count the bytes on their way through; a source error destroys `body`, which fails the upload.
    let bytes = 0;
    const body = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    // The source's own failure (a client gone mid-upload) is what a failed put reports first.
    let sourceError: Error | undefined;
    data.once('error', (err) => {
      sourceError = err;
    });
    pipeline(data, body, () => undefined);
    try {
      await this.upload(Key, body, Metadata);
    } catch (err) {
      body.destroy();
      // When a part fails (S3 gone mid-upload) lib-storage stops reading the body: the reader it
      // tears down destroys the body with a bare stream AbortError, which the pipeline passes
      // back to the source, and which may be what the upload reports too. Nothing of ours aborts
      // an upload, so that AbortError means the connection to S3 was lost; a client gone
      // mid-upload fails the source with its own error (ECONNRESET, "aborted").
      if (sourceError && !isStreamAbort(sourceError)) throw sourceError;
      if (isStreamAbort(err)) {
        throw Object.assign(new Error('the upload to S3 broke off (a part failed)'), { code: 'ECONNRESET', cause: err });
      }
      throw err;
    }
    return { bytes };
  }

  /** One PutObject when the body fits in a part, else a multipart upload, aborted if it fails. */
  private async upload(Key: string, Body: Buffer | Readable, Metadata: Record<string, string> | undefined): Promise<void> {
    await new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key, Body, ...(Metadata ? { Metadata } : {}) },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
    }).done();
  }

  async get(key: string): Promise<Readable | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.root + checkBlobKey(key) }));
      return res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async stat(key: string): Promise<BlobInfo | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.root + checkBlobKey(key) }));
      return infoOf(res.ContentLength ?? 0, res.Metadata);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async open(key: string, range?: { start: number; end?: number }): Promise<{ body: Readable; info: BlobInfo } | undefined> {
    const Range = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.root + checkBlobKey(key), ...(Range ? { Range } : {}) }),
      );
      // Content-Range's total is the object's size when a range was asked for.
      const total = /\/(\d+)$/.exec(res.ContentRange ?? '')?.[1];
      return { body: res.Body as Readable, info: infoOf(total ? Number(total) : (res.ContentLength ?? 0), res.Metadata) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.root + checkBlobKey(key) }));
  }

  async list(
    prefix: string,
    opts: { startAfter?: string; limit: number },
  ): Promise<{ items: Array<{ key: string; bytes: number }>; more: boolean }> {
    const Prefix = this.root + checkBlobPrefix(prefix);
    const items: Array<{ key: string; bytes: number }> = [];
    // With a delimiter, "sub-directories" (CommonPrefixes) count against MaxKeys: page until
    // limit + 1 objects are seen (to know whether there are more) or the listing ends.
    let token: string | undefined;
    for (;;) {
      const res = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix,
          Delimiter: '/',
          MaxKeys: Math.min(MAX_LIST_PAGE, opts.limit + 1 - items.length),
          ...(token ? { ContinuationToken: token } : opts.startAfter !== undefined ? { StartAfter: this.root + opts.startAfter } : {}),
        }),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key !== undefined) items.push({ key: o.Key.slice(this.root.length), bytes: o.Size ?? 0 });
      }
      token = res.NextContinuationToken;
      if (items.length > opts.limit || !res.IsTruncated || !token) break;
    }
    return { items: items.slice(0, opts.limit), more: items.length > opts.limit };
  }

  /** Closes the client's connections. */
  destroy(): void {
    this.client.destroy();
  }
}

function infoOf(size: number, metadata: Record<string, string> | undefined): BlobInfo {
  const sha256 = metadata?.sha256;
  return sha256 ? { size, sha256 } : { size };
}

function isStreamAbort(err: unknown): boolean {
  return (err as { code?: string })?.code === 'ABORT_ERR';
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  // A missing bucket is a configuration error, not an absent object.
  return e?.name === 'NoSuchKey' || (e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket');
}
