import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { SHA256_HEX_BODY } from '@scaibunker/core';
import * as tar from 'tar-stream';
import { BakeError, isAbortError } from './BakeError.js';
import { HashingCounter, throttledBytes, verifyBytes } from './digest.js';
import { chunksOf } from './LayerApplier.js';
import { MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, parseImageConfig } from './manifest.js';
import { readLimited } from './OciContentStore.js';
import { type LayerFile, type PreparedImage, withDiffIds } from './PreparedImage.js';
import type { DockerArchiveRef } from './parseImageRef.js';
import { cleanEntryPath } from './rootfsPaths.js';
import type { BakeProgress } from './types.js';

interface ArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** A blob name that carries its own sha256: `blobs/sha256/<hex>` (docker ≥ 25) or `<hex>.json` (configs). */
const DIGEST_NAME_RE = new RegExp(`^(?:blobs/sha256/(${SHA256_HEX_BODY})|(${SHA256_HEX_BODY})\\.json)$`);

/**
 * A `docker save` tarball (plain or gzip). A tar cannot be read out of order, so its files are
 * first streamed to scratch files (never memory); manifest.json then says which are the config
 * and the layers. Names that encode a digest are verified; layers are checked against the
 * config's diff_ids while they are applied.
 */
export async function prepareDockerArchive(
  ref: DockerArchiveRef,
  scratch: string,
  onProgress: (p: BakeProgress) => void,
  signal?: AbortSignal,
): Promise<PreparedImage> {
  const st = await stat(ref.path).catch(() => undefined);
  if (!st?.isFile()) throw new BakeError('SOURCE_NOT_FOUND', `docker archive ${ref.path} does not exist`);
  const files = await extractArchive(ref.path, st.size, scratch, onProgress, signal);

  const manifestPath = files.lookup('manifest.json');
  if (!manifestPath) throw new BakeError('INVALID_SOURCE', `${ref.path} has no manifest.json (not a docker save archive)`);
  const entries = parseArchiveManifest(await readLimited(createReadStream(manifestPath), MAX_MANIFEST_BYTES, 'manifest.json'), ref.path);
  const entry = pickEntry(entries, ref);

  const configPath = files.lookup(entry.Config);
  if (!configPath) throw new BakeError('INVALID_SOURCE', `${ref.path}: config ${entry.Config} named in manifest.json is missing`);
  const configBytes = await readLimited(createReadStream(configPath), MAX_CONFIG_BYTES, `config ${entry.Config}`);
  const configDigest = digestInName(entry.Config);
  if (configDigest) verifyBytes(configBytes, configDigest, `${ref.path} config ${entry.Config}`);
  const config = parseImageConfig(configBytes, `${ref.path} config`);

  const layers: LayerFile[] = [];
  for (const [i, name] of entry.Layers.entries()) {
    const path = files.lookup(name);
    if (!path) throw new BakeError('INVALID_SOURCE', `${ref.path}: layer ${name} named in manifest.json is missing`);
    const digest = digestInName(name);
    layers.push({
      path,
      size: (await stat(path)).size,
      label: `layer ${i + 1}/${entry.Layers.length} (${name})`,
      ...(digest ? { digest } : {}),
    });
  }
  return { config: config.run, layers: withDiffIds(layers, config.diffIds) };
}

function digestInName(name: string): string | undefined {
  const m = DIGEST_NAME_RE.exec(posix.normalize(name));
  const hex = m?.[1] ?? m?.[2];
  return hex ? `sha256:${hex}` : undefined;
}

function parseArchiveManifest(bytes: Buffer, path: string): ArchiveManifestEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BakeError('INVALID_SOURCE', `${path}: manifest.json is not JSON`);
  }
  const ok =
    Array.isArray(doc) &&
    doc.length > 0 &&
    doc.every((e) => e && typeof e.Config === 'string' && Array.isArray(e.Layers) && e.Layers.every((l: unknown) => typeof l === 'string'));
  if (!ok) throw new BakeError('INVALID_SOURCE', `${path}: manifest.json is not a list of {Config, Layers}`);
  return doc as ArchiveManifestEntry[];
}

function pickEntry(entries: ArchiveManifestEntry[], ref: DockerArchiveRef): ArchiveManifestEntry {
  if (ref.reference !== undefined) {
    const want = ref.reference.includes(':') ? ref.reference : `${ref.reference}:latest`;
    const hit = entries.find((e) => e.RepoTags?.some((t) => t === want || t === `docker.io/${want}` || t === `docker.io/library/${want}`));
    if (!hit) throw new BakeError('SOURCE_NOT_FOUND', `${ref.path} has no image tagged ${want}`);
    return hit;
  }
  if (entries.length === 1) return entries[0]!;
  const tags = entries.flatMap((e) => e.RepoTags ?? []);
  throw new BakeError(
    'INVALID_SOURCE',
    `${ref.path} holds ${entries.length} images (${tags.join(', ')}); name one as docker-archive:PATH:REPO:TAG`,
  );
}

/** The archive's files by name: scratch paths of regular files, symlinks and hard links followed (docker save links repeated layers). */
class ArchiveFiles {
  readonly files = new Map<string, string>();
  readonly symlinks = new Map<string, string>();

  lookup(name: string): string | undefined {
    let key = posix.normalize(name).replace(/^\.?\/+/, '');
    for (let i = 0; i < 16; i++) {
      const file = this.files.get(key);
      if (file) return file;
      const target = this.symlinks.get(key);
      if (target === undefined) return undefined;
      key = target;
    }
    return undefined;
  }
}

async function extractArchive(
  path: string,
  size: number,
  scratch: string,
  onProgress: (p: BakeProgress) => void,
  signal?: AbortSignal,
): Promise<ArchiveFiles> {
  const dir = join(scratch, 'archive');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const out = new ArchiveFiles();
  const what = `docker archive ${path}`;
  const report = throttledBytes((done) => onProgress({ phase: 'pulling', done, total: size, detail: 'reading docker archive' }), size);
  onProgress({ phase: 'pulling', done: 0, total: size, detail: 'reading docker archive' });
  const extract = tar.extract();
  const gzip = await isGzip(path);
  const feeding = pipeline(
    [createReadStream(path, { highWaterMark: 1 << 20 }), new HashingCounter(report), ...(gzip ? [createGunzip()] : []), extract],
    ...(signal ? [{ signal }] : []),
  );
  feeding.catch(() => {});
  let n = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const parts = cleanEntryPath(h.name, what);
      const name = parts.join('/');
      if (h.type === 'file' || h.type === 'contiguous-file') {
        const file = join(dir, `f${n++}`);
        await pipeline(chunksOf(entry as unknown as AsyncIterable<Buffer>), createWriteStream(file, { mode: 0o600 }));
        out.files.set(name, file);
        continue;
      }
      for await (const _ of entry);
      if (h.type === 'symlink' && h.linkname) {
        const target = posix.normalize(posix.join(posix.dirname(name), h.linkname));
        if (!target.startsWith('../') && target !== '..') out.symlinks.set(name, target.replace(/^\/+/, ''));
      } else if (h.type === 'link' && h.linkname) {
        const file = out.files.get(cleanEntryPath(h.linkname, what).join('/'));
        if (file) out.files.set(name, file);
      }
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    await feeding.catch(() => {});
    if (err instanceof BakeError) throw new BakeError('INVALID_SOURCE', err.message, { cause: err });
    if (isAbortError(err)) throw err;
    throw new BakeError('INVALID_SOURCE', `${what} is not a readable tar: ${(err as Error).message}`, { cause: err });
  }
  return out;
}

async function isGzip(path: string): Promise<boolean> {
  const fh = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await fh.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await fh.close();
  }
}
