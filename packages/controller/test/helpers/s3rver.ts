/**
 * A real s3rver in a child process, for the S3 blob store and the storage proxy tests.
 *
 * s3rver 3.7.1 runs with --openssl-legacy-provider: it encrypts its ListObjectsV2 continuation
 * tokens with DES, which Node 20's OpenSSL 3 refuses otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs s3rver through its API in a child process; it exits when our end of its stdin closes. */
const S3RVER_MAIN = `
const S3rver = require(process.argv[1]);
new S3rver({ address: '127.0.0.1', port: Number(process.argv[3] || 0), silent: true, directory: process.argv[2] })
  .run()
  .then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + '\\n'), (e) => { console.error(e); process.exit(1); });
process.stdin.on('end', () => process.exit(0)).resume();
`;

export interface S3rverServer {
  endpoint: string;
  port: number;
  /** Where s3rver keeps its buckets and objects (`<dir>/<bucket>/<key>._S3rver_object`). */
  dir: string;
  /** Kills s3rver and removes its directory. */
  stop(): Promise<void>;
  /** Kills s3rver (SIGKILL by default: an outage, not a shutdown) and keeps its directory. */
  halt(signal?: NodeJS.Signals): Promise<void>;
  /** Starts s3rver again on the same port over the same directory (after `halt`). */
  restart(): Promise<void>;
}

/** Spawns s3rver on `port` (0: any) over `dir`; resolves once it listens. */
async function spawnS3rver(dir: string, port: number): Promise<{ child: ChildProcess; port: number; exited: Promise<unknown> }> {
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', S3RVER_MAIN, createRequire(import.meta.url).resolve('s3rver'), dir, String(port)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = once(child, 'exit');
  try {
    let out = '';
    const listening = await new Promise<number>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve((JSON.parse(out) as { port: number }).port);
      });
      child.on('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
      child.on('error', reject);
    });
    return { child, port: listening, exited };
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    throw err;
  }
}

/**
 * A real s3rver on 127.0.0.1 with its data in a new temp directory; `stop` kills it and removes
 * the directory. `halt` and `restart` stop it and bring it back on the same port and directory.
 */
export async function startS3rver(): Promise<S3rverServer> {
  const dir = await mkdtemp(join(tmpdir(), 'blobs-s3rver-'));
  let current: { child: ChildProcess; port: number; exited: Promise<unknown> };
  try {
    current = await spawnS3rver(dir, 0);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const port = current.port;
  const halt = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const { child, exited } = current;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      await exited;
    }
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    dir,
    halt,
    async restart() {
      const { child } = current;
      if (child.exitCode === null && child.signalCode === null) throw new Error('s3rver is running');
      current = await spawnS3rver(dir, port);
    },
    async stop() {
      await halt('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
