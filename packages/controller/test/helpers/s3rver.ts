/**
 * A real s3rver in a child process, for the S3 blob store and the storage proxy tests.
 *
 * s3rver 3.7.1 runs with --openssl-legacy-provider: it encrypts its ListObjectsV2 continuation
 * tokens with DES, which Node 20's OpenSSL 3 refuses otherwise.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs s3rver through its API in a child process; it exits when our end of its stdin closes. */
const S3RVER_MAIN = `
const S3rver = require(process.argv[1]);
new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[2] })
  .run()
  .then((a) => process.stdout.write(JSON.stringify({ port: a.port }) + '\\n'), (e) => { console.error(e); process.exit(1); });
process.stdin.on('end', () => process.exit(0)).resume();
`;

/** A real s3rver on 127.0.0.1 with its data in a new temp directory; `stop` kills it and removes the directory. */
export async function startS3rver(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'blobs-s3rver-'));
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', S3RVER_MAIN, createRequire(import.meta.url).resolve('s3rver'), dir],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill();
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    let out = '';
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve((JSON.parse(out) as { port: number }).port);
      });
      child.on('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening`)));
      child.on('error', reject);
    });
    return { endpoint: `http://127.0.0.1:${port}`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
