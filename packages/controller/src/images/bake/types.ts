/** Where an image comes from. `oci` refs: `HOST[:PORT]/REPO[:TAG|@sha256:HEX]`, `oci:/abs/dir[:TAG]`, `docker-archive:/abs/file.tar`. */
export type ImageSource = { type: 'oci'; ref: string } | { type: 'tar'; path: string };

export type BakePhase = 'resolving' | 'pulling' | 'applying' | 'injecting' | 'mkfs' | 'hashing';

/** One progress report; `done`/`total` are bytes where a phase moves bytes (pulling, applying, hashing). */
export interface BakeProgress {
  phase: BakePhase;
  done?: number;
  total?: number;
  detail?: string;
}

/** The parts of the image config a bunker needs to run the image's process the way docker would. */
export interface ImageRunConfig {
  env: string[];
  cmd?: string[];
  entrypoint?: string[];
  workingDir?: string;
  user?: string;
}

export interface BakeResult {
  /** `<outputDir>/<sha256>.ext4` */
  ext4Path: string;
  /** sha256 (hex) of the ext4 file */
  sha256: string;
  sizeBytes: number;
  /** `sha256:…` of the image manifest, for OCI sources (registry and local layout) */
  manifestDigest?: string;
  config: ImageRunConfig;
}

export type RegistryCredentials = { username: string; password: string };

export interface BakeOptions {
  source: ImageSource;
  /** Scratch space; the bake makes one private subdirectory in it and removes it when done. */
  workDir: string;
  /** The result goes to `<outputDir>/<sha256>.ext4`, written atomically (tmp file + rename). */
  outputDir: string;
  /** Copied into the image as `/.scaibunker/agent`. */
  agentBinary: string;
  /** ext4 volume label (at most 16 bytes are kept); also seeds the filesystem UUID. */
  label: string;
  /** `host:port` (or `host` when the ref has no port) of registries allowed over plain http. */
  insecureRegistries?: string[];
  /** Called once per bake with the registry as written in the ref (`docker.io` for Docker Hub, else host[:port]). */
  credentials?: (registryHost: string) => RegistryCredentials | undefined;
  onProgress?: (p: BakeProgress) => void;
  signal?: AbortSignal;
  /** Timestamp pinned into the filesystem so identical inputs give identical bytes (default: $SOURCE_DATE_EPOCH or 1700000000). */
  sourceDateEpoch?: number;
}
