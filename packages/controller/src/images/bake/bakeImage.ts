import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { BakeError } from './BakeError.js';
import { prepareDockerArchive } from './DockerArchive.js';
import { hashFile, throttledBytes } from './digest.js';
import { injectAgent } from './injectAgent.js';
import { LayerApplier } from './LayerApplier.js';
import { makeExt4 } from './makeExt4.js';
import { OciLayout } from './OciLayout.js';
import type { PreparedImage } from './PreparedImage.js';
import { parseImageRef } from './parseImageRef.js';
import { pinRootfsTimes } from './pinRootfsTimes.js';
import { RegistryClient } from './RegistryClient.js';
import { resolveOciImage } from './resolveOciImage.js';
import type { BakeOptions, BakeProgress, BakeResult, ImageSource } from './types.js';

/** build-images.sh's default SOURCE_DATE_EPOCH, so both bakers pin the same time. */
const DEFAULT_EPOCH = 1700000000;

/**
 * Turns an image source into one ext4 file, `<outputDir>/<sha256>.ext4`: fetch and verify the
 * layers, apply them in order into a scratch rootfs, inject the agent and user, mkfs.ext4 -d,
 * hash, rename into place. Fails with a BakeError (by `reason`), with the signal's reason when
 * aborted, or with a TypeError for bad options; either way nothing is left behind in workDir or outputDir.
 */
export async function bakeImage(opts: BakeOptions): Promise<BakeResult> {
  const { signal } = opts;
  signal?.throwIfAborted();
  const epochSeconds = opts.sourceDateEpoch ?? (Number(process.env.SOURCE_DATE_EPOCH) || DEFAULT_EPOCH);
  const epoch = new Date(epochSeconds * 1000);
  const emit = (p: BakeProgress) => {
    try {
      opts.onProgress?.(p);
    } catch {
      // a broken progress listener must not fail the bake
    }
  };
  // Caller mistakes, not source problems: plain errors.
  if (!opts.label) throw new TypeError('bakeImage: label must not be empty');
  const agent = await stat(opts.agentBinary).catch(() => undefined);
  if (!agent?.isFile()) throw new TypeError(`bakeImage: agent binary ${opts.agentBinary} is not a file`);

  await mkdir(opts.workDir, { recursive: true });
  await mkdir(opts.outputDir, { recursive: true });
  // Private (0700): the rootfs may hold setuid binaries and device nodes from the image.
  const scratch = await mkdtemp(join(opts.workDir, 'bake-'));
  const tmpPath = join(opts.outputDir, `.tmp-bake-${randomUUID()}.ext4`);
  try {
    emit({ phase: 'resolving', detail: describe(opts.source) });
    const image = await prepare(opts, scratch, emit);

    const rootfs = join(scratch, 'rootfs');
    await mkdir(rootfs);
    await chmod(rootfs, 0o755);
    const applier = new LayerApplier(rootfs);
    for (const layer of image.layers) {
      signal?.throwIfAborted();
      emit({ phase: 'applying', done: 0, total: layer.size, detail: layer.label });
      const report = throttledBytes((done) => emit({ phase: 'applying', done, total: layer.size, detail: layer.label }), layer.size);
      await applier.apply(layer, report, signal);
    }

    signal?.throwIfAborted();
    emit({ phase: 'injecting' });
    await injectAgent(rootfs, opts.agentBinary, epoch);

    signal?.throwIfAborted();
    emit({ phase: 'mkfs' });
    const summary = await pinRootfsTimes(rootfs, applier.dirMtimes, epoch);
    await makeExt4({ rootfs, summary, tmpPath, label: opts.label, scratch, epochSeconds, ...(signal ? { signal } : {}) });
    await rm(rootfs, { recursive: true, force: true }); // free the space before hashing: the image may be large

    const size = (await stat(tmpPath)).size;
    emit({ phase: 'hashing', done: 0, total: size });
    const report = throttledBytes((done) => emit({ phase: 'hashing', done, total: size }), size);
    const { hex } = await hashFile(tmpPath, { onBytes: report, ...(signal ? { signal } : {}) });
    signal?.throwIfAborted();
    await chmod(tmpPath, 0o444); // images are shared read-only by every bunker that uses them
    const ext4Path = join(opts.outputDir, `${hex}.ext4`);
    await rename(tmpPath, ext4Path);
    return {
      ext4Path,
      sha256: hex,
      sizeBytes: size,
      ...(image.manifestDigest ? { manifestDigest: image.manifestDigest } : {}),
      config: image.config,
    };
  } catch (err) {
    await rm(tmpPath, { force: true });
    if (signal?.aborted) throw signal.reason ?? err;
    throw err;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function describe(source: ImageSource): string {
  return source.type === 'oci' ? source.ref : `tar:${source.path}`;
}

async function prepare(opts: BakeOptions, scratch: string, emit: (p: BakeProgress) => void): Promise<PreparedImage> {
  const { source, signal } = opts;
  if (source?.type === 'tar') {
    if (typeof source.path !== 'string' || !isAbsolute(source.path)) {
      throw new BakeError('INVALID_SOURCE', `tar source path must be absolute, got ${JSON.stringify(source.path)}`);
    }
    const st = await stat(source.path).catch(() => undefined);
    if (!st?.isFile()) throw new BakeError('SOURCE_NOT_FOUND', `rootfs tarball ${source.path} does not exist`);
    return { config: { env: [] }, layers: [{ path: source.path, size: st.size, label: 'rootfs tar' }] };
  }
  if (source?.type !== 'oci')
    throw new BakeError('INVALID_SOURCE', `unknown source type ${JSON.stringify((source as { type?: unknown })?.type)}`);

  const ref = parseImageRef(source.ref);
  switch (ref.kind) {
    case 'docker-archive':
      return prepareDockerArchive(ref, scratch, emit, signal);
    case 'oci-layout': {
      const layout = new OciLayout(ref.dir, signal);
      return resolveOciImage(layout, await layout.root(ref.tag), emit);
    }
    case 'registry': {
      const insecure = new Set(opts.insecureRegistries ?? []);
      const blobDir = join(scratch, 'blobs');
      await mkdir(blobDir);
      const credentials = opts.credentials?.(ref.hostKey);
      const client = new RegistryClient(ref, {
        insecure: insecure.has(ref.hostKey),
        allowHttp: (hostPort) => insecure.has(hostPort),
        blobDir,
        ...(credentials ? { credentials } : {}),
        ...(signal ? { signal } : {}),
      });
      const reference = ref.digest ?? ref.tag!;
      const root = await client.getManifest(reference);
      return resolveOciImage(client, { kind: 'document', ...root, what: `manifest ${reference}` }, emit);
    }
  }
}
