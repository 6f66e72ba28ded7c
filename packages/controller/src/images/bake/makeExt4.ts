import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { open, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BakeError, isAbortError } from './BakeError.js';
import { sha256Of } from './digest.js';
import type { RootfsSummary } from './pinRootfsTimes.js';

/**
 * Runs a tool with its stdout discarded (debugfs echoes every command: megabytes for a big image)
 * and the tail of its stderr kept for the error message.
 */
async function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv, signal?: AbortSignal): Promise<void> {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-8192);
  });
  const [code, sig] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw Object.assign(new Error(`${cmd} exited with ${code ?? sig}`), { stderr });
}

/** ext4 volume labels hold 16 bytes. */
const MAX_LABEL_BYTES = 16;
const MKFS_ATTEMPTS = 3;

/** A UUID derived from the label (as build-images.sh does), so re-bakes of one image get the same filesystem UUID. */
export function uuidForLabel(label: string): string {
  const h = sha256Of(`scaibunker-${label}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function truncateLabel(label: string): string {
  let out = '';
  for (const ch of label) {
    if (Buffer.byteLength(out + ch) > MAX_LABEL_BYTES) break;
    out += ch;
  }
  return out;
}

/**
 * `mkfs.ext4 -d rootfs` into `tmpPath`, mirroring make_ext4 in scripts/build-images.sh: 4 KiB
 * blocks, no journal, no reserved blocks, root-owned root, label/UUID/hash seed from the label,
 * time pinned via E2FSPROGS_FAKE_TIME. Size = content + 4 KiB per entry + 20% + 16 MiB, doubled
 * on each failed attempt (mkfs says little more than "could not allocate" when too small).
 * Afterwards every inode's ctime and atime are pinned with debugfs (mke2fs 1.47 copies them from
 * the host), so identical inputs give byte-identical files.
 */
export async function makeExt4(opts: {
  rootfs: string;
  summary: RootfsSummary;
  tmpPath: string;
  label: string;
  scratch: string;
  epochSeconds: number;
  signal?: AbortSignal;
}): Promise<void> {
  const { summary, tmpPath } = opts;
  const uuid = uuidForLabel(opts.label);
  const kb = Math.ceil(summary.bytes / 1024);
  let sizeMb = Math.floor(((kb + summary.entries * 4) * 12) / 10 / 1024) + 16;
  const inodes = summary.entries + Math.floor(summary.entries / 5) + 256;
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(opts.epochSeconds), SOURCE_DATE_EPOCH: String(opts.epochSeconds) };
  const exec = (cmd: string, args: string[]) => runTool(cmd, args, env, opts.signal);
  for (let attempt = 1; ; attempt++) {
    await rm(tmpPath, { force: true });
    const fh = await open(tmpPath, 'wx', 0o600);
    await fh.truncate(sizeMb * 1024 * 1024);
    await fh.close();
    try {
      await exec('mkfs.ext4', [
        '-q',
        '-F',
        '-t',
        'ext4',
        '-b',
        '4096',
        '-m',
        '0',
        '-O',
        '^has_journal,^resize_inode',
        '-N',
        String(inodes),
        '-L',
        truncateLabel(opts.label),
        '-U',
        uuid,
        '-E',
        `root_owner=0:0,hash_seed=${uuid},lazy_itable_init=0`,
        '-d',
        opts.rootfs,
        tmpPath,
      ]);
      break;
    } catch (err) {
      if (isAbortError(err) || opts.signal?.aborted) throw err;
      if (attempt >= MKFS_ATTEMPTS) {
        const out = ((err as { stderr?: string }).stderr ?? '').trim();
        throw new BakeError(
          'MKFS_FAILED',
          `mkfs.ext4 failed ${MKFS_ATTEMPTS} times (last size ${sizeMb} MiB): ${out.split('\n').slice(-5).join(' | ') || (err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      sizeMb *= 2;
    }
  }
  // debugfs reads quoted arguments; paths with quotes, backslashes or newlines cannot be expressed and keep their ctime.
  const cmds = summary.paths
    .filter((p) => !/["\\\n]/.test(p))
    .map((p) => `sif "${p}" ctime @${opts.epochSeconds}\nsif "${p}" atime @${opts.epochSeconds}\n`)
    .join('');
  const cmdFile = join(opts.scratch, 'pin-times.debugfs');
  await writeFile(cmdFile, cmds);
  try {
    await exec('debugfs', ['-w', '-f', cmdFile, tmpPath]);
  } catch (err) {
    if (isAbortError(err) || opts.signal?.aborted) throw err;
    throw new BakeError('MKFS_FAILED', `debugfs could not pin inode times: ${(err as Error).message}`, { cause: err });
  } finally {
    await rm(cmdFile, { force: true });
  }
}
