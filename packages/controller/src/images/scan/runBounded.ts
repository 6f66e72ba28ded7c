import { spawn } from 'node:child_process';

export interface BoundedRun {
  stdout: Buffer;
  stderr: string;
  code: number | null;
  /** True when stdout passed `maxStdoutBytes` and the process was killed; `stdout` holds the first bytes. */
  overflowed: boolean;
}

export interface BoundedRunOptions {
  maxStdoutBytes: number;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this user/group (only when we are root): how image extraction drops privileges. */
  uid?: number;
  gid?: number;
  /** File descriptors passed to the child as fd 3, 4, ... */
  extraFds?: number[];
}

const MAX_STDERR_BYTES = 64 * 1024;

/**
 * Runs a program and collects its output without letting it grow without bound: the tools we run
 * (debugfs, trivy) print what a possibly hostile image contains. Past `maxStdoutBytes` the child is
 * killed and the result says `overflowed`; an abort or the timeout kills it and rejects.
 */
export function runBounded(file: string, args: string[], opts: BoundedRunOptions): Promise<BoundedRun> {
  return new Promise((resolve, reject) => {
    opts.signal?.throwIfAborted();
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe', ...(opts.extraFds ?? [])],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
    });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let overflowed = false;
    let failure: unknown;
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const onAbort = () => {
      failure ??= opts.signal?.reason ?? new Error('aborted');
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            failure ??= new Error(`${file} timed out after ${opts.timeoutMs} ms`);
            kill();
          }, opts.timeoutMs);
    child.stdout!.on('data', (chunk: Buffer) => {
      if (overflowed) return;
      const room = opts.maxStdoutBytes - stdoutBytes;
      if (chunk.length > room) {
        stdout.push(chunk.subarray(0, room));
        stdoutBytes += room;
        overflowed = true;
        kill();
        return;
      }
      stdout.push(chunk);
      stdoutBytes += chunk.length;
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < MAX_STDERR_BYTES) stderr += chunk.toString('utf8', 0, MAX_STDERR_BYTES - stderr.length);
    });
    let settled = false;
    const finish = (code: number | null) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure !== undefined) reject(failure);
      else resolve({ stdout: Buffer.concat(stdout), stderr, code, overflowed });
    };
    child.on('error', (err) => {
      failure ??= err;
      // A program that never started (ENOENT, EACCES) may never emit 'close'.
      if (child.pid === undefined) finish(null);
    });
    child.on('close', finish);
  });
}
