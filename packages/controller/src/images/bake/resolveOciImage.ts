import { BakeError } from './BakeError.js';
import { throttledBytes } from './digest.js';
import {
  checkLayerMediaType,
  type Descriptor,
  MAX_CONFIG_BYTES,
  parseImageConfig,
  parseManifestOrIndex,
  pickLinuxAmd64,
} from './manifest.js';
import type { OciContentStore } from './OciContentStore.js';
import { type LayerFile, type PreparedImage, withDiffIds } from './PreparedImage.js';
import type { BakeProgress } from './types.js';

/** How deep index → index → manifest chains may go before we call the source broken. */
const MAX_INDEX_DEPTH = 4;

export type OciRoot =
  | { kind: 'descriptor'; desc: Descriptor }
  | { kind: 'document'; bytes: Buffer; contentType?: string; digest?: string; what: string };

/**
 * Walks from a root manifest or index down to the linux/amd64 image manifest, then fetches the
 * config and every layer (to disk, verified) from `store`. Shared by registries and OCI layouts.
 */
export async function resolveOciImage(
  store: OciContentStore,
  root: OciRoot,
  onProgress: (p: BakeProgress) => void,
): Promise<PreparedImage> {
  let doc: { bytes: Buffer; contentType?: string };
  let digest: string | undefined;
  let what: string;
  if (root.kind === 'descriptor') {
    doc = await store.fetchManifest(root.desc);
    digest = root.desc.digest;
    what = `manifest ${digest}`;
  } else {
    doc = root;
    digest = root.digest;
    what = root.what;
  }
  let parsed = parseManifestOrIndex(doc.bytes, doc.contentType, `${store.name} ${what}`);
  for (let depth = 0; parsed.kind === 'index'; depth++) {
    if (depth >= MAX_INDEX_DEPTH) throw new BakeError('INVALID_SOURCE', `${store.name}: indexes nested deeper than ${MAX_INDEX_DEPTH}`);
    const desc = pickLinuxAmd64(parsed, `${store.name} ${what}`);
    onProgress({ phase: 'resolving', detail: `linux/amd64 manifest ${desc.digest}` });
    doc = await store.fetchManifest(desc);
    digest = desc.digest;
    what = `manifest ${digest}`;
    parsed = parseManifestOrIndex(doc.bytes, doc.contentType, `${store.name} ${what}`);
  }
  const manifest = parsed;
  manifest.layers.forEach((l, i) => {
    checkLayerMediaType(l, `${store.name} layer ${i + 1} (${l.digest})`);
  });
  const configBytes = await store.fetchSmallBlob(manifest.config, MAX_CONFIG_BYTES);
  const config = parseImageConfig(configBytes, `${store.name} config ${manifest.config.digest}`);

  const layers: LayerFile[] = [];
  const n = manifest.layers.length;
  for (const [i, desc] of manifest.layers.entries()) {
    const label = `layer ${i + 1}/${n} (${desc.digest.slice(0, 19)}…)`;
    onProgress({ phase: 'pulling', done: 0, total: desc.size, detail: label });
    const report = throttledBytes((done) => onProgress({ phase: 'pulling', done, total: desc.size, detail: label }), desc.size);
    const path = await store.fetchLayer(desc, report);
    layers.push({ path, size: desc.size, label, digest: desc.digest });
  }
  return { ...(digest ? { manifestDigest: digest } : {}), config: config.run, layers: withDiffIds(layers, config.diffIds) };
}
