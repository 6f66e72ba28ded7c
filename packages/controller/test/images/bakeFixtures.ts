/**
 * Real parts for the bake tests: a Debian docker-registry process, OCI layouts built with umoci,
 * archives made with skopeo, hand-made tars, and ext4 inspection with debugfs (no mounting).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { chmod, chown, link, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

const execFileAsync = promisify(execFile);

export async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Debian's distribution v2 registry on 127.0.0.1 with filesystem storage under `dir`. */
export async function startRegistry(dir: string): Promise<{ host: string; storage: string; stop(): Promise<void> }> {
  const port = await freePort();
  const storage = join(dir, 'storage');
  await mkdir(storage, { recursive: true });
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
  };
  // Poll /v2/ until it answers (bounded): the registry prints nothing reliable when it is ready.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      await res.body?.cancel();
      if (res.status === 200) break;
    } catch {}
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer within 15 s: ${stderr}`);
    }
    await delay(50);
  }
  return { host: `127.0.0.1:${port}`, storage, stop };
}

/** Entries of one directory of an ext4 image, via `debugfs ls -p` (/inode/mode/uid/gid/name/size/). */
export interface Ext4Entry {
  inode: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

export async function ext4Ls(image: string, dir: string): Promise<Map<string, Ext4Entry>> {
  const out = await run('debugfs', ['-R', `ls -p "${dir}"`, image]);
  const entries = new Map<string, Ext4Entry>();
  for (const line of out.split('\n')) {
    const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line.trim());
    if (!m || m[5] === '.' || m[5] === '..') continue;
    entries.set(m[5]!, {
      inode: Number(m[1]),
      mode: Number.parseInt(m[2]!, 8),
      uid: Number(m[3]),
      gid: Number(m[4]),
      size: Number(m[6] || 0),
    });
  }
  return entries;
}

/** One path's inode, mode (with type bits), owner, via the parent's listing. */
export async function ext4Stat(image: string, path: string) {
  const i = path.lastIndexOf('/');
  const dir = path.slice(0, i) || '/';
  return (await ext4Ls(image, dir)).get(path.slice(i + 1));
}

export async function ext4Cat(image: string, path: string): Promise<string> {
  return run('debugfs', ['-R', `cat "${path}"`, image]);
}

export async function ext4Readlink(image: string, path: string): Promise<string> {
  const out = await run('debugfs', ['-R', `stat "${path}"`, image]);
  return /Fast link dest: "(.*)"/.exec(out)?.[1] ?? '';
}

export interface TarEntrySpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  devmajor?: number;
  devminor?: number;
}

/** A tar (optionally gzipped) from entry specs, for hand-made layers and hostile tars. */
export async function makeTar(entries: TarEntrySpec[], opts: { gzip?: boolean } = {}): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: new Date(1_600_000_000_000),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor, devminor: e.devminor ?? 0 } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      pack.entry(header, type === 'file' ? (e.content ?? '') : '', (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await collected;
  const buf = Buffer.concat(chunks);
  return opts.gzip ? gzipSync(buf) : buf;
}

/**
 * The test image, an OCI layout at `<dir>/layout` tagged v1, built with umoci in three layers:
 *   1. busybox rootfs: /bin/busybox + sh symlink, /etc/passwd+group (root only), /data/keep.txt,
 *      /data/keep-link (hard link), /data/remove-me.txt, /opq/lower.txt, /owned (1234:5678, 4755)
 *   2. umoci repack after deleting /data/remove-me.txt → a `.wh.remove-me.txt` whiteout
 *   3. a raw layer: /opq/.wh..wh..opq (opaque) + /opq/upper.txt
 * Config: Cmd ["/bin/sh"], Env FOO=bar, WorkingDir /data.
 */
export async function buildTestLayout(dir: string): Promise<{ layout: string; bundle: string }> {
  const layout = join(dir, 'layout');
  const bundle = join(dir, 'bundle');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:v1`]);
  await run('umoci', [
    'config',
    '--image',
    `${layout}:v1`,
    '--config.cmd',
    '/bin/sh',
    '--config.env',
    'FOO=bar',
    '--config.workingdir',
    '/data',
  ]);
  await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  const r = join(bundle, 'rootfs');
  await mkdir(join(r, 'bin'), { recursive: true });
  await run('cp', ['/bin/busybox', join(r, 'bin/busybox')]);
  await symlink('busybox', join(r, 'bin/sh'));
  await mkdir(join(r, 'etc'));
  await writeFile(join(r, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(r, 'etc/group'), 'root:x:0:\n');
  await mkdir(join(r, 'data'));
  await writeFile(join(r, 'data/keep.txt'), 'kept\n');
  await link(join(r, 'data/keep.txt'), join(r, 'data/keep-link'));
  await writeFile(join(r, 'data/remove-me.txt'), 'doomed\n');
  await mkdir(join(r, 'opq'));
  await writeFile(join(r, 'opq/lower.txt'), 'lower\n');
  await writeFile(join(r, 'owned'), 'owned\n');
  await chown(join(r, 'owned'), 1234, 5678);
  await chmod(join(r, 'owned'), 0o4755);
  await run('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
  // A repack diffs against the unpack it came from: unpack again so the next layer is only the deletion.
  await rm(bundle, { recursive: true });
  await run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
  await rm(join(r, 'data/remove-me.txt'));
  await run('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
  const opaqueLayer = join(dir, 'opaque-layer.tar');
  await writeFile(
    opaqueLayer,
    await makeTar([{ name: 'opq/', type: 'directory' }, { name: 'opq/.wh..wh..opq' }, { name: 'opq/upper.txt', content: 'upper\n' }]),
  );
  await run('umoci', ['raw', 'add-layer', '--image', `${layout}:v1`, opaqueLayer]);
  return { layout, bundle };
}

/** Reads a layout's index.json and the manifest it tags `tag`. */
export async function layoutManifest(layout: string, tag: string) {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8'));
  const desc = index.manifests.find((m: any) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  const manifest = JSON.parse(await readFile(join(layout, 'blobs/sha256', desc.digest.slice(7)), 'utf8'));
  return { index, desc, manifest };
}

/** Writes `data` as a blob of `layout`; returns its descriptor fields. */
export async function writeBlob(layout: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(data);
  const hex = createHash('sha256').update(buf).digest('hex');
  await writeFile(join(layout, 'blobs/sha256', hex), buf);
  return { digest: `sha256:${hex}`, size: buf.length };
}
