import { BakeError } from './BakeError.js';
import { sha256Hex } from './digest.js';
import type { ImageRunConfig } from './types.js';

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
} as const;

/** What we ask registries for: indexes and manifests in both the OCI and the Docker v2 dialect. */
export const MANIFEST_ACCEPT = [MediaTypes.ociIndex, MediaTypes.ociManifest, MediaTypes.dockerList, MediaTypes.dockerManifest].join(', ');

/** Manifests and configs are small JSON; anything bigger is not an image we want to parse. */
export const MAX_MANIFEST_BYTES = 4 << 20;
export const MAX_CONFIG_BYTES = 8 << 20;

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
  annotations?: Record<string, string>;
}

export type LayerCompression = 'none' | 'gzip' | 'zstd' | 'unknown';

export interface ParsedIndex {
  kind: 'index';
  manifests: Descriptor[];
}

export interface ParsedManifest {
  kind: 'manifest';
  config: Descriptor;
  layers: Descriptor[];
}

function parseDescriptor(v: unknown, what: string): Descriptor {
  const d = v as Partial<Descriptor> | null;
  if (
    !d ||
    typeof d !== 'object' ||
    typeof d.digest !== 'string' ||
    typeof d.size !== 'number' ||
    !Number.isSafeInteger(d.size) ||
    d.size < 0
  ) {
    throw new BakeError('INVALID_SOURCE', `${what}: malformed descriptor ${JSON.stringify(v)?.slice(0, 200)}`);
  }
  sha256Hex(d.digest, what);
  return d as Descriptor;
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString('utf8'));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {}
  throw new BakeError('INVALID_SOURCE', `${what} is not a JSON object`);
}

/** Parses an index/list or an image manifest, deciding by the body's mediaType, then the HTTP Content-Type, then its shape. */
export function parseManifestOrIndex(bytes: Buffer, contentType: string | undefined, what: string): ParsedIndex | ParsedManifest {
  const doc = parseJson(bytes, what);
  const mediaType = (typeof doc.mediaType === 'string' ? doc.mediaType : contentType?.split(';')[0]?.trim()) || '';
  if (doc.schemaVersion === 1 || mediaType.includes('distribution.manifest.v1')) {
    throw new BakeError('INVALID_SOURCE', `${what}: Docker schema 1 manifests are not supported`);
  }
  if (doc.schemaVersion !== 2) throw new BakeError('INVALID_SOURCE', `${what}: schemaVersion must be 2`);
  const isIndex =
    mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerList || (!('layers' in doc) && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw new BakeError('INVALID_SOURCE', `${what}: index without "manifests"`);
    return { kind: 'index', manifests: doc.manifests.map((m, i) => parseDescriptor(m, `${what} manifests[${i}]`)) };
  }
  if (mediaType && mediaType !== MediaTypes.ociManifest && mediaType !== MediaTypes.dockerManifest) {
    throw new BakeError('INVALID_SOURCE', `${what}: unsupported manifest media type ${mediaType}`);
  }
  if (!Array.isArray(doc.layers)) throw new BakeError('INVALID_SOURCE', `${what}: manifest without "layers"`);
  const config = parseDescriptor(doc.config, `${what} config`);
  if (config.mediaType && config.mediaType !== MediaTypes.ociConfig && config.mediaType !== MediaTypes.dockerConfig) {
    throw new BakeError('INVALID_SOURCE', `${what}: not a container image (config media type ${config.mediaType})`);
  }
  return { kind: 'manifest', config, layers: doc.layers.map((l, i) => parseDescriptor(l, `${what} layers[${i}]`)) };
}

/** The layer's compression by media type (docker's rootfs.diff.tar.gzip, OCI's tar / tar+gzip / tar+zstd). */
export function compressionOfMediaType(mediaType: string | undefined): LayerCompression {
  if (!mediaType) return 'unknown';
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.zstd')) return 'zstd';
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.tar.gzip')) return 'gzip';
  if (mediaType.endsWith('.tar') || mediaType.endsWith('.v1.tar')) return 'none';
  return 'unknown';
}

/** Refuses layer media types we cannot apply, before downloading them. */
export function checkLayerMediaType(d: Descriptor, what: string): void {
  const c = compressionOfMediaType(d.mediaType);
  if (c === 'zstd') throw new BakeError('LAYER_INVALID', `${what}: zstd layers are not supported (${d.mediaType})`);
  if (c === 'unknown' && d.mediaType) {
    throw new BakeError('LAYER_INVALID', `${what}: unsupported layer media type ${d.mediaType}`);
  }
}

/**
 * Picks linux/amd64 from an index: an entry without a variant first (amd64 has no common ones),
 * else the first amd64 entry. Attestation manifests (platform unknown/unknown) never match.
 */
export function pickLinuxAmd64(index: ParsedIndex, what: string): Descriptor {
  const amd64 = index.manifests.filter((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
  const pick = amd64.find((m) => !m.platform?.variant || m.platform.variant === 'v1') ?? amd64[0];
  if (!pick) {
    const have = index.manifests.map((m) =>
      m.platform ? `${m.platform.os}/${m.platform.architecture}${m.platform.variant ? `/${m.platform.variant}` : ''}` : '?',
    );
    throw new BakeError('PLATFORM_MISSING', `${what} has no linux/amd64 image (platforms: ${have.join(', ') || 'none'})`);
  }
  return pick;
}

export interface ParsedImageConfig {
  run: ImageRunConfig;
  /** sha256 digests of each uncompressed layer tar, when the config lists them. */
  diffIds?: string[];
  os?: string;
  architecture?: string;
}

function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined;
}

/** Extracts what a bunker needs from an OCI/Docker image config and refuses configs built for another platform. */
export function parseImageConfig(bytes: Buffer, what: string): ParsedImageConfig {
  const doc = parseJson(bytes, what);
  const c = (doc.config && typeof doc.config === 'object' ? doc.config : {}) as Record<string, unknown>;
  const run: ImageRunConfig = { env: stringArray(c.Env) ?? [] };
  const cmd = stringArray(c.Cmd);
  const entrypoint = stringArray(c.Entrypoint);
  if (cmd) run.cmd = cmd;
  if (entrypoint) run.entrypoint = entrypoint;
  if (typeof c.WorkingDir === 'string' && c.WorkingDir) run.workingDir = c.WorkingDir;
  if (typeof c.User === 'string' && c.User) run.user = c.User;
  const rootfs = doc.rootfs as { diff_ids?: unknown } | undefined;
  const diffIds = stringArray(rootfs?.diff_ids);
  const os = typeof doc.os === 'string' ? doc.os : undefined;
  const architecture = typeof doc.architecture === 'string' ? doc.architecture : undefined;
  if ((os && os !== 'linux') || (architecture && architecture !== 'amd64')) {
    throw new BakeError('PLATFORM_MISSING', `${what}: image is built for ${os ?? '?'}/${architecture ?? '?'}, not linux/amd64`);
  }
  return { run, ...(diffIds ? { diffIds } : {}), ...(os ? { os } : {}), ...(architecture ? { architecture } : {}) };
}
