import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { BakeError } from './BakeError.js';
import { checkCounted, HashingCounter, sha256Hex, verifyBytes } from './digest.js';
import { type Descriptor, MAX_MANIFEST_BYTES, MediaTypes, type ParsedIndex, parseManifestOrIndex } from './manifest.js';
import { type OciContentStore, readLimited } from './OciContentStore.js';
import type { OciRoot } from './resolveOciImage.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const MAX_TAG_SEARCH_DEPTH = 4;

/** A local OCI image layout directory (oci-layout, index.json, blobs/sha256/…), read in place. */
export class OciLayout implements OciContentStore {
  readonly name: string;

  constructor(
    private readonly dir: string,
    private readonly signal?: AbortSignal,
  ) {
    this.name = `oci:${dir}`;
  }

  private blobPath(digest: string, what: string): string {
    // sha256Hex only lets 64 hex characters through, so the path cannot leave blobs/sha256.
    return join(this.dir, 'blobs', 'sha256', sha256Hex(digest, what));
  }

  private async readSmall(path: string, max: number, what: string): Promise<Buffer> {
    try {
      return await readLimited(createReadStream(path), max, what);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BakeError('SOURCE_NOT_FOUND', `${what} is missing from ${this.name}`);
      throw err;
    }
  }

  /** Picks what to bake: the manifest tagged `tag` (searching nested indexes), or the layout's only image. */
  async root(tag: string | undefined): Promise<OciRoot> {
    const st = await stat(this.dir).catch(() => undefined);
    if (!st?.isDirectory()) throw new BakeError('SOURCE_NOT_FOUND', `OCI layout ${this.dir} does not exist`);
    const layoutFile = await readFile(join(this.dir, 'oci-layout'), 'utf8').catch(() => undefined);
    if (layoutFile === undefined) throw new BakeError('INVALID_SOURCE', `${this.dir} is not an OCI image layout (no oci-layout file)`);
    const bytes = await this.readSmall(join(this.dir, 'index.json'), MAX_MANIFEST_BYTES, 'index.json');
    const index = parseManifestOrIndex(bytes, MediaTypes.ociIndex, `${this.name} index.json`);
    if (index.kind !== 'index') throw new BakeError('INVALID_SOURCE', `${this.name}: index.json is not an image index`);
    if (tag !== undefined) {
      const desc = await this.findTag(index, tag, 0);
      if (!desc) throw new BakeError('SOURCE_NOT_FOUND', `${this.name} has no image tagged "${tag}"`);
      return { kind: 'descriptor', desc };
    }
    if (index.manifests.length === 1) return { kind: 'descriptor', desc: index.manifests[0]! };
    const tags = index.manifests.map((m) => m.annotations?.[REF_NAME]).filter((t) => t !== undefined);
    if (tags.length > 0) {
      throw new BakeError(
        'INVALID_SOURCE',
        `${this.name} holds several images (tags: ${tags.join(', ')}); name one as oci:${this.dir}:TAG`,
      );
    }
    // Several untagged manifests: index.json is itself a multi-platform index.
    return { kind: 'document', bytes, contentType: MediaTypes.ociIndex, what: 'index.json' };
  }

  private async findTag(index: ParsedIndex, tag: string, depth: number): Promise<Descriptor | undefined> {
    const hit = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
    if (hit || depth >= MAX_TAG_SEARCH_DEPTH) return hit;
    for (const m of index.manifests) {
      if (m.mediaType !== MediaTypes.ociIndex && m.mediaType !== MediaTypes.dockerList) continue;
      const { bytes } = await this.fetchManifest(m);
      const nested = parseManifestOrIndex(bytes, m.mediaType, `${this.name} index ${m.digest}`);
      if (nested.kind !== 'index') continue;
      const found = await this.findTag(nested, tag, depth + 1);
      if (found) return found;
    }
    return undefined;
  }

  async fetchManifest(desc: Descriptor): Promise<{ bytes: Buffer; contentType?: string }> {
    const what = `manifest ${desc.digest}`;
    if (desc.size > MAX_MANIFEST_BYTES)
      throw new BakeError('INVALID_SOURCE', `${this.name} ${what} is larger than ${MAX_MANIFEST_BYTES} bytes`);
    const bytes = await this.readSmall(this.blobPath(desc.digest, what), MAX_MANIFEST_BYTES, what);
    verifyBytes(bytes, desc.digest, `${this.name} ${what}`, desc.size);
    return { bytes, ...(desc.mediaType ? { contentType: desc.mediaType } : {}) };
  }

  async fetchSmallBlob(desc: Descriptor, maxBytes: number): Promise<Buffer> {
    const what = `blob ${desc.digest}`;
    if (desc.size > maxBytes) throw new BakeError('INVALID_SOURCE', `${this.name} ${what} is larger than ${maxBytes} bytes`);
    const bytes = await this.readSmall(this.blobPath(desc.digest, what), maxBytes, what);
    verifyBytes(bytes, desc.digest, `${this.name} ${what}`, desc.size);
    return bytes;
  }

  /** Verifies the layer in place (no copy); applying re-hashes it, so a later change is still caught. */
  async fetchLayer(desc: Descriptor, onBytes: (done: number) => void): Promise<string> {
    const what = `${this.name} layer ${desc.digest}`;
    const path = this.blobPath(desc.digest, what);
    const counter = new HashingCounter(onBytes, desc.size, what);
    try {
      await pipeline(
        createReadStream(path, { highWaterMark: 1 << 20 }),
        counter,
        async (src: AsyncIterable<Buffer>) => {
          for await (const _ of src);
        },
        ...(this.signal ? [{ signal: this.signal }] : []),
      );
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BakeError('SOURCE_NOT_FOUND', `${what} is missing`);
      throw err;
    }
    checkCounted(counter, desc.digest, what, desc.size);
    return path;
  }
}
