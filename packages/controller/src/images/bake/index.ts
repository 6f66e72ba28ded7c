/** Image baking: an OCI image, docker archive or rootfs tar in, one ext4 file named by its sha256 out. */
export { BakeError, type BakeErrorReason } from './BakeError.js';
export { bakeImage } from './bakeImage.js';
export { type ParsedImageRef, parseImageRef } from './parseImageRef.js';
export type { BakeOptions, BakePhase, BakeProgress, BakeResult, ImageRunConfig, ImageSource, RegistryCredentials } from './types.js';
