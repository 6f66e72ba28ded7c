/**
 * bakeImage end to end with real tools and no internet: images built with umoci, pushed with
 * skopeo to Debian's docker-registry on 127.0.0.1, exported as docker-archive; ext4 results read
 * back with debugfs. Bearer/Basic auth and manifest lists are served by a small in-test HTTP
 * server speaking the distribution API (docker-registry's token auth would need TLS certs).
 * Every bake gets a fresh workDir that must be empty afterwards, success or failure.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createReadStream, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BakeError, type BakeOptions, type BakeResult, bakeImage, type ImageSource, parseImageRef } from '../../src/images/bake/index.js';
import { parseWwwAuthenticate } from '../../src/images/bake/registryAuth.js';
import {
  buildTestLayout,
  ext4Cat,
  ext4Ls,
  ext4Readlink,
  ext4Stat,
  layoutManifest,
  makeTar,
  run,
  sha256File,
  startRegistry,
  writeBlob,
} from './bakeFixtures.js';

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;

let root: string;
let agent: string;
let layout: string;
let registry: Awaited<ReturnType<typeof startRegistry>> | undefined;
let dockerArchive: string;
let rootfsTarGz: string;
let outputDir: string;
let dirCounter = 0;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'bake-test-'));
  agent = join(root, 'agent');
  await copyFile('/bin/true', agent);
  outputDir = join(root, 'out');
  ({ layout } = await buildTestLayout(join(root, 'image')));
  registry = await startRegistry(join(root, 'registry'));
  await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${registry.host}/test/img:v1`]);
  dockerArchive = join(root, 'image.docker.tar');
  await run('skopeo', ['copy', `oci:${layout}:v1`, `docker-archive:${dockerArchive}:test/img:v1`]);
  // The flattened final rootfs of the image, as a plain rootfs tarball.
  const flat = join(root, 'flat');
  await run('umoci', ['unpack', '--image', `${layout}:v1`, flat]);
  rootfsTarGz = join(root, 'rootfs.tar.gz');
  await run('tar', ['--numeric-owner', '-C', join(flat, 'rootfs'), '-czf', rootfsTarGz, '.']);
  await rm(flat, { recursive: true, force: true });
});

after(async () => {
  await registry?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const dir = join(root, `${name}-${++dirCounter}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Bakes into a fresh workDir and checks that the bake left nothing behind but the result. */
async function bake(source: ImageSource, extra: Partial<BakeOptions> = {}): Promise<BakeResult> {
  const workDir = await freshDir('work');
  const out = extra.outputDir ?? outputDir;
  try {
    const result = await bakeImage({ source, workDir, outputDir: out, agentBinary: agent, label: 'test-image', ...extra });
    assert.equal(result.ext4Path, join(out, `${result.sha256}.ext4`));
    assert.equal(await sha256File(result.ext4Path), result.sha256, 'the name is the sha256 of the file');
    assert.equal((await stat(result.ext4Path)).size, result.sizeBytes);
    return result;
  } finally {
    assert.deepEqual(await readdir(workDir), [], 'workDir is left empty');
    assert.deepEqual(
      (await readdir(out).catch(() => [])).filter((f) => !/^[a-f0-9]{64}\.ext4$/.test(f)),
      [],
      'no temporary files in outputDir',
    );
  }
}

async function bakeFails(
  source: ImageSource,
  reason: BakeError['reason'],
  extra: Partial<BakeOptions> = {},
  message?: RegExp,
): Promise<BakeError> {
  let caught: unknown;
  await bake(source, extra).catch((err) => {
    caught = err;
  });
  assert.ok(caught instanceof BakeError, `expected a BakeError(${reason}), got ${caught}`);
  assert.equal(caught.reason, reason, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** The final content of the test image (see buildTestLayout), the agent and the user. */
async function assertTestImage(image: string): Promise<void> {
  const data = await ext4Ls(image, '/data');
  assert.deepEqual([...data.keys()].sort(), ['keep-link', 'keep.txt'], 'whiteout removed remove-me.txt from the lower layer');
  assert.equal(data.get('keep-link')!.inode, data.get('keep.txt')!.inode, 'hard link kept');
  assert.equal(await ext4Cat(image, '/data/keep.txt'), 'kept\n');
  assert.deepEqual([...(await ext4Ls(image, '/opq')).keys()], ['upper.txt'], 'opaque dir dropped lower.txt, kept its own entry');
  assert.deepEqual(await ext4Stat(image, '/owned'), {
    inode: (await ext4Stat(image, '/owned'))!.inode,
    mode: S_IFREG | 0o4755,
    uid: 1234,
    gid: 5678,
    size: 6,
  });
  assert.equal(await ext4Readlink(image, '/bin/sh'), 'busybox');
  await assertAgentAndUser(image);
}

async function assertAgentAndUser(image: string): Promise<void> {
  const agentStat = await ext4Stat(image, '/.scaibunker/agent');
  assert.equal(agentStat?.mode, S_IFREG | 0o755);
  assert.equal(agentStat?.size, (await stat(agent)).size);
  assert.equal((await ext4Stat(image, '/.scaibunker'))?.mode, S_IFDIR | 0o755);
  assert.deepEqual(
    { ...(await ext4Stat(image, '/.scaibunker/run')), inode: 0, size: 0 },
    { inode: 0, mode: S_IFDIR | 0o700, uid: 0, gid: 0, size: 0 },
  );
  assert.deepEqual([...(await ext4Ls(image, '/.scaibunker/run')).keys()], []);
  const home = await ext4Stat(image, '/home/user');
  assert.deepEqual([home?.mode, home?.uid, home?.gid], [S_IFDIR | 0o755, 1000, 1000]);
  assert.match(
    await ext4Cat(image, '/etc/passwd'),
    /^root:x:0:0:root:\/root:\/bin\/sh\n(?:.*\n)*user:x:1000:1000:user:\/home\/user:\/bin\/sh\n$/,
  );
  assert.match(await ext4Cat(image, '/etc/group'), /^root:x:0:\n(?:.*\n)*user:x:1000:\n$/);
}

describe('sources', () => {
  let layoutSha: string;
  let manifestDigest: string;

  test('local OCI layout by tag: whiteouts, opaque dirs, owners, modes, links, agent, user, config', async () => {
    const progress: string[] = [];
    const r = await bake({ type: 'oci', ref: `oci:${layout}:v1` }, { onProgress: (p) => progress.push(p.phase) });
    await assertTestImage(r.ext4Path);
    assert.deepEqual(r.config.cmd, ['/bin/sh']);
    assert.ok(r.config.env.includes('FOO=bar'));
    assert.equal(r.config.workingDir, '/data');
    const { desc } = await layoutManifest(layout, 'v1');
    assert.equal(r.manifestDigest, desc.digest);
    for (const phase of ['resolving', 'pulling', 'applying', 'injecting', 'mkfs', 'hashing']) assert.ok(progress.includes(phase), phase);
    layoutSha = r.sha256;
    manifestDigest = desc.digest;
  });

  test('identical input baked twice gives the same bytes; another label gives another image', async () => {
    const again = await bake({ type: 'oci', ref: `oci:${layout}:v1` }, { outputDir: await freshDir('out') });
    assert.equal(again.sha256, layoutSha);
    const relabelled = await bake({ type: 'oci', ref: `oci:${layout}:v1` }, { outputDir: await freshDir('out'), label: 'other' });
    assert.notEqual(relabelled.sha256, layoutSha);
  });

  test('registry by tag, over plain http for an insecure registry', async () => {
    const pulled: number[] = [];
    const r = await bake(
      { type: 'oci', ref: `${registry!.host}/test/img:v1` },
      { insecureRegistries: [registry!.host], onProgress: (p) => p.phase === 'pulling' && pulled.push(p.done ?? 0) },
    );
    assert.equal(r.manifestDigest, manifestDigest);
    assert.equal(r.sha256, layoutSha, 'same layers as the layout, same image');
    assert.ok(
      pulled.some((d) => d > 0),
      'byte progress reported while pulling',
    );
  });

  test('registry pinned by digest', async () => {
    const r = await bake({ type: 'oci', ref: `${registry!.host}/test/img@${manifestDigest}` }, { insecureRegistries: [registry!.host] });
    assert.equal(r.manifestDigest, manifestDigest);
    assert.equal(r.sha256, layoutSha);
  });

  test('registry: unknown tag is SOURCE_NOT_FOUND, https to a plain-http registry is REGISTRY_UNREACHABLE', async () => {
    await bakeFails({ type: 'oci', ref: `${registry!.host}/test/img:nope` }, 'SOURCE_NOT_FOUND', { insecureRegistries: [registry!.host] });
    await bakeFails({ type: 'oci', ref: `${registry!.host}/test/img:v1` }, 'REGISTRY_UNREACHABLE');
  });

  test('docker-archive (skopeo docker-archive, uncompressed layers checked against diff_ids)', async () => {
    const r = await bake({ type: 'oci', ref: `docker-archive:${dockerArchive}` });
    await assertTestImage(r.ext4Path);
    assert.equal(r.sha256, layoutSha, 'same layers as the layout, same image');
    assert.deepEqual(r.config.cmd, ['/bin/sh']);
    assert.equal(r.manifestDigest, undefined);
  });

  test('rootfs tarball (gzip), applied as one layer', async () => {
    const r = await bake({ type: 'tar', path: rootfsTarGz });
    await assertTestImage(r.ext4Path);
    assert.deepEqual(r.config, { env: [] });
  });

  test('an image without /etc/passwd gets one with root and user; devices and fifos are made with mknod', async () => {
    const tarPath = join(await freshDir('tar'), 'tiny.tar');
    await writeFile(
      tarPath,
      await makeTar([
        { name: 'hello', content: 'hi\n', uid: 7, gid: 8, mode: 0o600 },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660, gid: 6 },
        { name: 'pipe', type: 'fifo', mode: 0o640, uid: 5 },
      ]),
    );
    const r = await bake({ type: 'tar', path: tarPath });
    assert.equal(await ext4Cat(r.ext4Path, '/hello'), 'hi\n');
    const hello = await ext4Stat(r.ext4Path, '/hello');
    assert.deepEqual([hello?.uid, hello?.gid, hello?.mode], [7, 8, S_IFREG | 0o600]);
    assert.equal((await ext4Stat(r.ext4Path, '/dev/null'))?.mode, 0o020666);
    assert.deepEqual([(await ext4Stat(r.ext4Path, '/dev/loop9'))?.mode, (await ext4Stat(r.ext4Path, '/dev/loop9'))?.gid], [0o060660, 6]);
    assert.deepEqual([(await ext4Stat(r.ext4Path, '/pipe'))?.mode, (await ext4Stat(r.ext4Path, '/pipe'))?.uid], [0o010640, 5]);
    assert.match(await run('debugfs', ['-R', 'stat /dev/null', r.ext4Path]), /Device major\/minor number: 01:03/);
    await assertAgentAndUser(r.ext4Path);
  });
});

describe('failures', () => {
  async function layoutCopy(): Promise<string> {
    const dir = join(await freshDir('layout'), 'layout');
    await run('cp', ['-a', layout, dir]);
    return dir;
  }

  test('a manifest list in a local layout: linux/amd64 is picked, none is PLATFORM_MISSING', async () => {
    const copy = await layoutCopy();
    const { index, desc } = await layoutManifest(copy, 'v1');
    const image = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    const arm = { ...image, platform: { os: 'linux', architecture: 'arm64' } };
    const list = (manifests: unknown[]) =>
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
    const withAmd64 = await writeBlob(copy, list([arm, { ...image, platform: { os: 'linux', architecture: 'amd64' } }]));
    const withoutAmd64 = await writeBlob(copy, list([arm, { ...image, platform: { os: 'linux', architecture: 's390x' } }]));
    const ann = (name: string) => ({ 'org.opencontainers.image.ref.name': name });
    index.manifests.push(
      { mediaType: 'application/vnd.oci.image.index.v1+json', ...withAmd64, annotations: ann('multi') },
      { mediaType: 'application/vnd.oci.image.index.v1+json', ...withoutAmd64, annotations: ann('noamd64') },
    );
    await writeFile(join(copy, 'index.json'), JSON.stringify(index));
    const r = await bake({ type: 'oci', ref: `oci:${copy}:multi` });
    assert.equal(r.manifestDigest, desc.digest);
    await bakeFails({ type: 'oci', ref: `oci:${copy}:noamd64` }, 'PLATFORM_MISSING', {}, /linux\/arm64, linux\/s390x/);
    await bakeFails({ type: 'oci', ref: `oci:${copy}:missing` }, 'SOURCE_NOT_FOUND');
  });

  test('a corrupted layer blob is DIGEST_MISMATCH', async () => {
    const copy = await layoutCopy();
    const { manifest } = await layoutManifest(copy, 'v1');
    const biggest = [...manifest.layers].sort((a: any, b: any) => b.size - a.size)[0];
    const fh = await open(join(copy, 'blobs/sha256', biggest.digest.slice(7)), 'r+');
    const byte = Buffer.alloc(1);
    await fh.read(byte, 0, 1, 1000);
    byte[0] = byte[0]! ^ 0xff;
    await fh.write(byte, 0, 1, 1000);
    await fh.close();
    await bakeFails({ type: 'oci', ref: `oci:${copy}:v1` }, 'DIGEST_MISMATCH', {}, new RegExp(biggest.digest));
  });

  test('a corrupted config blob is DIGEST_MISMATCH', async () => {
    const copy = await layoutCopy();
    const { manifest } = await layoutManifest(copy, 'v1');
    const path = join(copy, 'blobs/sha256', manifest.config.digest.slice(7));
    await writeFile(path, (await readFile(path, 'utf8')).replace('FOO=bar', 'FOO=baz'));
    await bakeFails({ type: 'oci', ref: `oci:${copy}:v1` }, 'DIGEST_MISMATCH');
  });

  test('a truncated layer is LAYER_INVALID (gzip and plain tar)', async () => {
    const dir = await freshDir('trunc');
    const gz = join(dir, 'rootfs.tar.gz');
    await copyFile(rootfsTarGz, gz);
    await truncate(gz, Math.floor((await stat(gz)).size / 2));
    await bakeFails({ type: 'tar', path: gz }, 'LAYER_INVALID');
    const plain = join(dir, 'rootfs.tar');
    const bytes = await makeTar([{ name: 'big', content: 'x'.repeat(10_000) }]);
    await writeFile(plain, bytes.subarray(0, 4096));
    await bakeFails({ type: 'tar', path: plain }, 'LAYER_INVALID');
  });

  test('a zstd layer is LAYER_INVALID with a clear message', async () => {
    const path = join(await freshDir('zstd'), 'layer.tar.zst');
    await writeFile(path, Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]));
    await bakeFails({ type: 'tar', path }, 'LAYER_INVALID', {}, /zstd layers are not supported/);
  });

  test('malicious tars cannot write or link outside the rootfs', async () => {
    const dir = await freshDir('evil');
    const outside = join(dir, 'outside');
    await mkdir(outside);
    await writeFile(join(outside, 'secret'), 'host secret\n');
    const untouched = async () => {
      assert.deepEqual(await readdir(outside), ['secret']);
      assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'host secret\n');
      assert.equal((await stat(join(outside, 'secret'))).nlink, 1);
    };
    const deep = '../'.repeat(20);
    // Symlinks to the outside (absolute and relative) are resolved inside the image: the writes land in the image.
    const throughLinks = join(dir, 'links.tar');
    await writeFile(
      throughLinks,
      await makeTar([
        { name: 'abs', type: 'symlink', linkname: outside },
        { name: 'abs/pwned', content: 'nope\n' },
        { name: 'rel', type: 'symlink', linkname: `${deep}${outside.slice(1)}` },
        { name: 'rel/pwned2', content: 'nope2\n' },
        { name: 'abs', type: 'file', content: 'replaced the symlink\n' },
      ]),
    );
    const r = await bake({ type: 'tar', path: throughLinks });
    await untouched();
    assert.equal(await ext4Cat(r.ext4Path, `${outside}/pwned`), 'nope\n', 'landed inside the image');
    assert.equal(await ext4Cat(r.ext4Path, `${outside}/pwned2`), 'nope2\n');
    assert.equal(await ext4Cat(r.ext4Path, '/abs'), 'replaced the symlink\n');

    const cases: Array<[string, Parameters<typeof makeTar>[0]]> = [
      ['dot-dot entry', [{ name: `${deep}${outside.slice(1)}/escape`, content: 'x' }]],
      ['dot-dot in the middle', [{ name: 'a/../../escape', content: 'x' }]],
      ['hard link to a host file', [{ name: 'stolen', type: 'link', linkname: `${deep}${outside.slice(1)}/secret` }]],
      [
        'hard link through a symlink to a host file',
        [
          { name: 'abs', type: 'symlink', linkname: outside },
          { name: 'stolen', type: 'link', linkname: 'abs/secret' },
        ],
      ],
    ];
    for (const [name, entries] of cases) {
      const path = join(dir, `${name.replaceAll(' ', '-')}.tar`);
      await writeFile(path, await makeTar(entries));
      await bakeFails({ type: 'tar', path }, 'LAYER_INVALID');
      await untouched();
    }
  });

  test('agent injection does not follow the image symlinks out of the rootfs', async () => {
    const dir = await freshDir('evil-etc');
    const outside = join(dir, 'etc');
    await mkdir(outside);
    const path = join(dir, 'etc-link.tar');
    await writeFile(
      path,
      await makeTar([
        { name: 'etc', type: 'symlink', linkname: outside },
        { name: 'home', type: 'symlink', linkname: outside },
        { name: '.scaibunker', type: 'symlink', linkname: outside },
      ]),
    );
    const r = await bake({ type: 'tar', path });
    assert.deepEqual(await readdir(outside), []);
    assert.match(await ext4Cat(r.ext4Path, `${outside}/passwd`), /^root:x:0:0:.*\nuser:x:1000:/);
    assert.equal((await ext4Stat(r.ext4Path, '/.scaibunker'))?.mode, S_IFDIR | 0o755, 'the planted symlink was replaced by a directory');
  });

  test('abort stops the bake and cleans up', async () => {
    const ac = new AbortController();
    const out = await freshDir('out');
    await assert.rejects(
      bake(
        { type: 'oci', ref: `oci:${layout}:v1` },
        { outputDir: out, signal: ac.signal, onProgress: (p) => p.phase === 'applying' && ac.abort() },
      ),
      (err: Error) => err.name === 'AbortError',
    );
    assert.deepEqual(await readdir(out), []);
  });

  test('invalid sources', async () => {
    await bakeFails({ type: 'oci', ref: 'oci:relative/dir' }, 'INVALID_SOURCE');
    await bakeFails({ type: 'oci', ref: 'https://example.com/x' }, 'INVALID_SOURCE');
    await bakeFails({ type: 'oci', ref: 'example.com/UPPER:tag' }, 'INVALID_SOURCE');
    await bakeFails({ type: 'oci', ref: 'example.com/x@sha256:abc' }, 'INVALID_SOURCE');
    await bakeFails({ type: 'tar', path: '/nonexistent/rootfs.tar' }, 'SOURCE_NOT_FOUND');
    await bakeFails({ type: 'oci', ref: 'docker-archive:/nonexistent.tar' }, 'SOURCE_NOT_FOUND');
  });
});

describe('parsing', () => {
  test('WWW-Authenticate challenges', () => {
    assert.deepEqual(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"',
      ),
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull' },
      },
    );
    assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
    assert.equal(parseWwwAuthenticate('Negotiate abc'), undefined);
    assert.equal(parseWwwAuthenticate(null), undefined);
  });

  test('docker.io normalisation, ports, tags, digests, local forms', () => {
    assert.deepEqual(parseImageRef('ubuntu'), {
      kind: 'registry',
      hostKey: 'docker.io',
      host: 'registry-1.docker.io',
      repository: 'library/ubuntu',
      tag: 'latest',
    });
    assert.deepEqual(parseImageRef('docker.io/python:3.12'), {
      kind: 'registry',
      hostKey: 'docker.io',
      host: 'registry-1.docker.io',
      repository: 'library/python',
      tag: '3.12',
    });
    assert.deepEqual(parseImageRef('docker.io/bitnami/redis:7'), {
      kind: 'registry',
      hostKey: 'docker.io',
      host: 'registry-1.docker.io',
      repository: 'bitnami/redis',
      tag: '7',
    });
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseImageRef(`localhost:5000/a/b@${digest}`), {
      kind: 'registry',
      hostKey: 'localhost:5000',
      host: 'localhost:5000',
      repository: 'a/b',
      digest,
    });
    assert.deepEqual(parseImageRef('oci:/srv/layout:v1'), { kind: 'oci-layout', dir: '/srv/layout', tag: 'v1' });
    assert.deepEqual(parseImageRef('oci:/srv/layout'), { kind: 'oci-layout', dir: '/srv/layout' });
    assert.deepEqual(parseImageRef('docker-archive:/x.tar'), { kind: 'docker-archive', path: '/x.tar' });
    for (const bad of ['', 'host.com/UPPER', 'x.com/a//b', 'x.com:99999/a', 'x.com/a:t@sha256:12', 'oci:', 'x.com/a:-bad']) {
      assert.throws(
        () => parseImageRef(bad),
        (e: unknown) => e instanceof BakeError && e.reason === 'INVALID_SOURCE',
        bad,
      );
    }
  });
});

/**
 * A minimal distribution API in front of the test layout, for the auth flows and manifest lists:
 * tag v1 (the image manifest), multi (an index with linux/amd64), armonly (an index without it).
 */
async function startAuthRegistry(mode: 'bearer' | 'basic', opts: { corruptLayers?: boolean } = {}) {
  const { desc, manifest } = await layoutManifest(layout, 'v1');
  const manifestBytes = await readFile(join(layout, 'blobs/sha256', desc.digest.slice(7)));
  const index = (arch: string[]) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json',
        manifests: arch.map((a) => ({
          mediaType: desc.mediaType,
          digest: desc.digest,
          size: desc.size,
          platform: { os: 'linux', architecture: a },
        })),
      }),
    );
  const manifests: Record<string, [Buffer, string]> = {
    v1: [manifestBytes, desc.mediaType],
    [desc.digest]: [manifestBytes, desc.mediaType],
    multi: [index(['arm64', 'amd64']), 'application/vnd.docker.distribution.manifest.list.v2+json'],
    armonly: [index(['arm64']), 'application/vnd.docker.distribution.manifest.list.v2+json'],
  };
  const blobs = new Set<string>([manifest.config.digest, ...manifest.layers.map((l: any) => l.digest)]);
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
  const tokenRequests: Array<{ authorization: string | undefined; scope: string | null; service: string | null }> = [];
  let port = 0;
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      tokenRequests.push({
        authorization: req.headers.authorization,
        scope: url.searchParams.get('scope'),
        service: url.searchParams.get('service'),
      });
      if (req.headers.authorization !== basic) return void res.writeHead(401).end();
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
    }
    const expected = mode === 'bearer' ? `Bearer ${token}` : basic;
    if (req.headers.authorization !== expected) {
      const challenge =
        mode === 'bearer'
          ? `Bearer realm="http://127.0.0.1:${port}/token",service="test-registry",scope="repository:auth/img:pull"`
          : 'Basic realm="test"';
      return void res.writeHead(401, { 'www-authenticate': challenge }).end();
    }
    const m = /^\/v2\/auth\/img\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (m?.[1] === 'manifests' && manifests[m[2]!]) {
      const [bytes, type] = manifests[m[2]!]!;
      return void res.writeHead(200, { 'content-type': type }).end(bytes);
    }
    if (m?.[1] === 'blobs' && blobs.has(m[2]!)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      if (opts.corruptLayers && m[2] !== manifest.config.digest) {
        // Same length, one byte flipped past the gzip header: only the digest can tell.
        const bytes = readFileSync(join(layout, 'blobs/sha256', m[2]!.slice(7)));
        bytes[Math.min(100, bytes.length - 1)]! ^= 0xff;
        return void res.end(bytes);
      }
      return void createReadStream(join(layout, 'blobs/sha256', m[2]!.slice(7))).pipe(res);
    }
    res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as { port: number }).port;
  const host = `127.0.0.1:${port}`;
  return {
    host,
    tokenRequests,
    manifestDigest: desc.digest as string,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

describe('registry auth and manifest lists (in-test distribution server)', () => {
  test('Bearer: token fetched with basic credentials, then the pull succeeds', async () => {
    const srv = await startAuthRegistry('bearer');
    try {
      const seen: string[] = [];
      const r = await bake(
        { type: 'oci', ref: `${srv.host}/auth/img:v1` },
        {
          insecureRegistries: [srv.host],
          credentials: (h) => {
            seen.push(h);
            return { username: 'alice', password: 's3cret' };
          },
        },
      );
      assert.deepEqual(seen, [srv.host]);
      assert.equal(r.manifestDigest, srv.manifestDigest);
      assert.ok(srv.tokenRequests.length >= 1);
      assert.deepEqual(srv.tokenRequests[0], {
        authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}`,
        scope: 'repository:auth/img:pull',
        service: 'test-registry',
      });
      await assertTestImage(r.ext4Path);

      await bakeFails({ type: 'oci', ref: `${srv.host}/auth/img:v1` }, 'AUTH_FAILED', {
        insecureRegistries: [srv.host],
        credentials: () => ({ username: 'alice', password: 'wrong' }),
      });
      await bakeFails({ type: 'oci', ref: `${srv.host}/auth/img:v1` }, 'AUTH_FAILED', { insecureRegistries: [srv.host] });
    } finally {
      await srv.close();
    }
  });

  test('Basic challenge: credentials sent as basic auth; none is AUTH_FAILED', async () => {
    const srv = await startAuthRegistry('basic');
    try {
      const creds = { insecureRegistries: [srv.host], credentials: () => ({ username: 'alice', password: 's3cret' }) };
      const r = await bake({ type: 'oci', ref: `${srv.host}/auth/img:v1` }, creds);
      assert.equal(r.manifestDigest, srv.manifestDigest);
      await bakeFails({ type: 'oci', ref: `${srv.host}/auth/img:v1` }, 'AUTH_FAILED', { insecureRegistries: [srv.host] });
    } finally {
      await srv.close();
    }
  });

  test('a registry serving a corrupted layer is DIGEST_MISMATCH (checked while streaming)', async () => {
    const srv = await startAuthRegistry('basic', { corruptLayers: true });
    try {
      const creds = { insecureRegistries: [srv.host], credentials: () => ({ username: 'alice', password: 's3cret' }) };
      await bakeFails({ type: 'oci', ref: `${srv.host}/auth/img:v1` }, 'DIGEST_MISMATCH', creds);
    } finally {
      await srv.close();
    }
  });

  test('Docker manifest list: linux/amd64 picked; a list without it is PLATFORM_MISSING', async () => {
    const srv = await startAuthRegistry('basic');
    try {
      const creds = { insecureRegistries: [srv.host], credentials: () => ({ username: 'alice', password: 's3cret' }) };
      const r = await bake({ type: 'oci', ref: `${srv.host}/auth/img:multi` }, creds);
      assert.equal(r.manifestDigest, srv.manifestDigest);
      await bakeFails({ type: 'oci', ref: `${srv.host}/auth/img:armonly` }, 'PLATFORM_MISSING', creds);
    } finally {
      await srv.close();
    }
  });
});
