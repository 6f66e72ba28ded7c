import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill the command after this many ms (default 30 s). */
  timeoutMs?: number;
  /** Capture stdout (default true). */
  captureStdout?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Fed on stdin (nft -f -, ip -batch -); without it stdin is /dev/null. */
  input?: string;
}

const MAX_CAPTURE = 256 * 1024;

/**
 * Runs a host command without a shell. stdin is /dev/null or `input`; stdout/stderr are captured (capped),
 * so nothing a child leaves behind can keep them open longer than the command itself runs.
 */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.captureStdout === false ? 'ignore' : 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_CAPTURE) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_CAPTURE) stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
    if (child.stdin) {
      // A child that dies before reading everything makes the pipe emit EPIPE; its exit code tells.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** Like runCommand but throws when the command exits non-zero. */
export async function mustRun(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
  const r = await runCommand(cmd, args, opts);
  if (r.code !== 0) {
    const err = new Error(`${cmd} ${args.join(' ')} exited ${r.code}${r.signal ? ` (${r.signal})` : ''}: ${r.stderr.trim()}`);
    (err as Error & { result?: CommandResult }).result = r;
    throw err;
  }
  return r;
}
