import type { ImageRunConfig } from './types.js';

/** One layer ready to apply: a file on disk plus what to check while applying it. */
export interface LayerFile {
  path: string;
  size: number;
  /** For messages and progress, e.g. "layer 2/3 (sha256:ab12…)". */
  label: string;
  /** sha256 of the file as stored (compressed); re-checked while applying, so what is applied is what was verified. */
  digest?: string;
  /** sha256 of the uncompressed tar (the config's rootfs.diff_ids); checked while applying. */
  diffId?: string;
}

/** An image reduced to what the bake needs: ordered layers on disk and the run config. */
export interface PreparedImage {
  manifestDigest?: string;
  config: ImageRunConfig;
  layers: LayerFile[];
}

/** Attaches the config's diff_ids to the layers when the config lists exactly one per layer. */
export function withDiffIds(layers: LayerFile[], diffIds: string[] | undefined): LayerFile[] {
  if (!diffIds || diffIds.length !== layers.length) return layers;
  return layers.map((l, i) => ({ ...l, diffId: diffIds[i]! }));
}
