/**
 * zstd for snapshot archives. The host's `zstd` when it has one: multi-threaded (`-T0`), and a
 * provider whose layer comes out of a command (the container's tar) writes straight into its
 * stdin pipe (see layerStreams.commandInto), so the uncompressed bytes never pass through this
 * process. Otherwise Node's zlib zstd. Both write standard zstd frames with a checksum, which
 * the restore side (Node's decompressor) reads either way.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants as fs } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { createZstdCompress, constants as zlib } from 'node:zlib';
import { Coalescer } from '../util/Coalescer.js';

/** zstd level: 3 (zstd's default); higher levels cost more time than they save bytes here. */
const ZSTD_LEVEL = 3;
/**
 * Job size of the multi-threaded zstd: its default at level 3 is several MiB, which it still has
 * to compress after the input ended (~50 ms of a 100 MB snapshot's ~360 ms); 2 MiB jobs leave a
 * ~15 ms tail for archives ~0.3 % bigger.
 */
const ZSTD_JOB_BYTES = 2 * 1024 * 1024;
/** Output chunk of both compressors (Node's zstd: zlib's 16 KiB default costs a thread-pool round trip per 16 KiB). */
export const ZSTD_CHUNK = 1024 * 1024;

export interface Compressor {
  /** Where the uncompressed layer is written (never ended by the writer: see `end`). */
  readonly input: Writable;
  /** The compressed bytes; ends once everything written was compressed, errors if compression failed. */
  readonly output: Readable;
  /** No more input. */
  end(): void;
  /** Stops compressing; `output` errors with `err`. */
  destroy(err: Error): void;
}

let hostZstd: string | null | undefined;

/** The host's zstd binary on PATH (looked up once), or null. */
function findZstd(): string | null {
  if (hostZstd !== undefined) return hostZstd;
  hostZstd = null;
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, 'zstd');
    try {
      accessSync(candidate, fs.X_OK);
      hostZstd = candidate;
      break;
    } catch {
      // not here
    }
  }
  return hostZstd;
}

export function zstdCompressor(): Compressor {
  const bin = findZstd();
  return bin ? processCompressor(bin) : zlibCompressor();
}

function processCompressor(bin: string): Compressor {
  const child = spawn(bin, [`-${ZSTD_LEVEL}`, '-T0', `-B${ZSTD_JOB_BYTES}`, '-q', '-c', '--check'], { stdio: ['pipe', 'pipe', 'pipe'] });
  // zstd's output arrives in 64 KiB pipe reads: hashed and stored in 1 MiB pieces instead
  const output = new Coalescer(ZSTD_CHUNK);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  // A writer that goes on after zstd died gets EPIPE here: the exit below reports the failure.
  child.stdin.on('error', () => {});
  child.stdout.pipe(output, { end: false });
  child.once('error', (err) => output.destroy(err));
  child.once('close', (code, signal) => {
    if (code === 0) output.end();
    else output.destroy(new Error(`zstd failed (${signal ? `signal ${signal}` : `exit ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`));
  });
  return {
    input: child.stdin,
    output,
    end: () => child.stdin.end(),
    destroy: (err) => {
      child.kill('SIGKILL');
      output.destroy(err);
    },
  };
}

function zlibCompressor(): Compressor {
  const zstd = createZstdCompress({
    chunkSize: ZSTD_CHUNK,
    params: { [zlib.ZSTD_c_compressionLevel]: ZSTD_LEVEL, [zlib.ZSTD_c_checksumFlag]: 1 },
  });
  return { input: zstd, output: zstd, end: () => zstd.end(), destroy: (err) => zstd.destroy(err) };
}
