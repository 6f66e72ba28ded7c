import { BakeError } from './BakeError.js';
import type { Descriptor } from './manifest.js';

/**
 * Content-addressed access to one image's manifests and blobs, from a registry or a local OCI
 * layout. Every method verifies what it returns against the descriptor's sha256 and size.
 */
export interface OciContentStore {
  /** For messages: where the content comes from. */
  readonly name: string;
  /** Manifest or index bytes by digest (small, in memory). */
  fetchManifest(desc: Descriptor): Promise<{ bytes: Buffer; contentType?: string }>;
  /** A small blob (the image config) in memory. */
  fetchSmallBlob(desc: Descriptor, maxBytes: number): Promise<Buffer>;
  /** A layer blob as a file on disk, streamed and verified; reports bytes as they arrive. */
  fetchLayer(desc: Descriptor, onBytes: (done: number) => void): Promise<string>;
}

/** Reads a web stream into memory, refusing more than `maxBytes`. */
export async function readLimited(body: AsyncIterable<Uint8Array> | null, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (body) {
    for await (const chunk of body) {
      total += chunk.length;
      if (total > maxBytes) {
        throw new BakeError('INVALID_SOURCE', `${what} is larger than ${maxBytes} bytes`);
      }
      chunks.push(Buffer.from(chunk));
    }
  }
  return Buffer.concat(chunks);
}
