import { ApiError } from '@scaibunker/core';
import { type BlobStore, checkBlobPrefix } from './BlobStore.js';
import { LocalDirBlobStore } from './LocalDirBlobStore.js';
import type { S3BlobStoreOptions } from './S3BlobStore.js';

const PARAMS = new Set(['endpoint', 'region', 'force_path_style']);

/**
 * The blob store `SCAIBUNKER_BLOB_STORE` names: unset or empty → the local directory `localDir`;
 * `s3://bucket[/prefix]?endpoint=http://…&region=…&force_path_style=1` → S3 (every parameter
 * optional; region defaults to AWS_REGION, then us-east-1). Credentials never come from the URL:
 * the SDK's default chain reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a profile, or IMDS).
 * The AWS SDK (about a second to load) is imported only when S3 is configured.
 */
export async function openBlobStore(spec: string | undefined, localDir: string, env: NodeJS.ProcessEnv = process.env): Promise<BlobStore> {
  if (!spec) return new LocalDirBlobStore(localDir);
  const opts = parseS3BlobStoreUrl(spec, env);
  const { S3BlobStore } = await import('./S3BlobStore.js');
  return new S3BlobStore(opts);
}

/** Parses an `s3://` blob store URL; a malformed one is a VALIDATION_FAILED naming what is wrong. */
export function parseS3BlobStoreUrl(spec: string, env: NodeJS.ProcessEnv = process.env): S3BlobStoreOptions {
  const fail = (why: string): never => {
    throw new ApiError(
      'VALIDATION_FAILED',
      `invalid SCAIBUNKER_BLOB_STORE: ${why} (expected s3://bucket[/prefix]?endpoint=…&region=…&force_path_style=1)`,
      {
        field: 'SCAIBUNKER_BLOB_STORE',
      },
    );
  };
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    return fail('not a URL');
  }
  if (url.protocol !== 's3:') fail(`unsupported scheme ${JSON.stringify(url.protocol.slice(0, -1))}`);
  if (url.username || url.password) fail('credentials do not belong in the URL (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)');
  if (url.port) fail('a port belongs in endpoint=, not after the bucket');
  const bucket = url.hostname;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) fail(`bad bucket name ${JSON.stringify(bucket)}`);
  if (url.hash) fail('unexpected #fragment');
  const path = url.pathname.replace(/^\/+/, '').replace(/\/+$/, '');
  let keyPrefix = '';
  if (path) {
    try {
      keyPrefix = checkBlobPrefix(`${path}/`);
    } catch {
      fail(`bad key prefix ${JSON.stringify(path)}`);
    }
  }
  for (const name of url.searchParams.keys()) {
    if (!PARAMS.has(name)) fail(`unknown parameter ${JSON.stringify(name)} (known: ${[...PARAMS].join(', ')})`);
  }
  const opts: S3BlobStoreOptions = { bucket, region: url.searchParams.get('region') || env.AWS_REGION || 'us-east-1', keyPrefix };
  const endpoint = url.searchParams.get('endpoint');
  if (endpoint !== null) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(endpoint);
    } catch {
      // reported below
    }
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:'))
      fail(`endpoint must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
    opts.endpoint = endpoint;
  }
  const pathStyle = url.searchParams.get('force_path_style');
  if (pathStyle !== null) {
    if (!['1', 'true', '0', 'false'].includes(pathStyle))
      fail(`force_path_style must be 1/true or 0/false, got ${JSON.stringify(pathStyle)}`);
    opts.forcePathStyle = pathStyle === '1' || pathStyle === 'true';
  }
  return opts;
}
