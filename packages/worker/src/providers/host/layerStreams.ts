/**
 * Moving a writable layer archive into the stream a snapshot is written to: the caller owns
 * that stream (it ends it, and only on success), so these never end it and fail loudly when
 * it goes away.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';

/**
 * Pipes `src` into `out` without ending `out`; resolves once `src` ended (every chunk handed to
 * `out`), rejects when either errors or `out` closes first. On failure `src` is destroyed.
 */
export function copyInto(src: Readable, out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const cleanup = () => {
      out.off('close', onOutClose);
      out.off('error', onOutError);
      src.off('error', onSrcError);
      src.off('end', onEnd);
    };
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      if (!err) return resolve();
      src.unpipe(out);
      src.destroy();
      reject(err);
    };
    const onOutClose = () => finish(new Error('the archive stream closed before the layer was written'));
    const onOutError = (err: Error) => finish(err);
    const onSrcError = (err: Error) => finish(err);
    const onEnd = () => finish();
    if (out.destroyed || out.writableEnded) return finish(new Error('the archive stream is already closed'));
    out.on('close', onOutClose);
    out.on('error', onOutError);
    src.on('error', onSrcError);
    src.on('end', onEnd);
    src.pipe(out, { end: false });
  });
}

/** Streams a file into `out` (not ending it). */
export function copyFileInto(path: string, out: Writable): Promise<void> {
  return copyInto(createReadStream(path, { highWaterMark: 1024 * 1024 }), out);
}

/**
 * Runs a command whose stdout is the archive and copies it into `out` (not ending it). Rejects
 * with the command's stderr when it exits non-zero or by a signal; when `out` goes away first
 * the command is killed (and awaited) before this rejects.
 */
export async function commandInto(cmd: string, args: readonly string[], out: Writable, what: string): Promise<void> {
  // A pipe to another process (a compressor's stdin) is handed to the command as its stdout:
  // the bytes go from one process to the other without passing through this one.
  if (out instanceof Socket && !out.destroyed && !out.writableEnded) return commandToPipe(cmd, args, out, what);
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', (err) => {
      stderr += err.message;
      resolve({ code: null, signal: null });
    });
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  try {
    await copyInto(child.stdout, out);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  const { code, signal } = await exited;
  if (code !== 0)
    throw new Error(
      `${what} failed (${signal ? `signal ${signal}` : `exit ${code}`})${stderr.trim() ? `: ${stderr.trim().slice(-2000)}` : ''}`,
    );
}

/** commandInto with `out` (a pipe) as the command's own stdout; rejects with its stderr when it fails. */
async function commandToPipe(cmd: string, args: readonly string[], out: Socket, what: string): Promise<void> {
  const child = spawn(cmd, args, { stdio: ['ignore', out, 'pipe'] });
  const onOutClose = () => child.kill('SIGKILL');
  out.once('close', onOutClose);
  try {
    const { code, signal, stderr } = await exitOf(child);
    if (code !== 0)
      throw new Error(
        `${what} failed (${signal ? `signal ${signal}` : `exit ${code}`})${stderr.trim() ? `: ${stderr.trim().slice(-2000)}` : ''}`,
      );
  } finally {
    out.off('close', onOutClose);
  }
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  return new Promise((resolve) => {
    child.once('error', (err) => resolve({ code: null, signal: null, stderr: stderr + err.message }));
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}
