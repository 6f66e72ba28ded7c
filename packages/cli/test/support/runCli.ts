import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
export const BIN = join(REPO, 'packages/cli/bin/scaibunker.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `scaibunker …` as a real process (no SCAIBUNKER_URL/API_KEY from the test's environment), `input` on its stdin. */
export function runCli(args: string[], input?: string): Promise<CliRun> {
  const env: Record<string, string | undefined> = { ...process.env, SCAIBUNKER_URL: undefined, SCAIBUNKER_API_KEY: undefined };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO,
    env: env as NodeJS.ProcessEnv,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (input !== undefined) child.stdin?.end(input);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * `scaibunker …` as a real process that a test talks to while it runs: `stderrMatches(re)`
 * resolves once its stderr so far matches (or rejects if it exits first), `done` with the run.
 * The caller waits for `done` (or kills the child) before it returns.
 */
export function startCli(args: string[]): {
  stderrMatches(re: RegExp): Promise<string>;
  done: Promise<CliRun>;
  kill(): void;
} {
  const env: Record<string, string | undefined> = { ...process.env, SCAIBUNKER_URL: undefined, SCAIBUNKER_API_KEY: undefined };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
    for (const w of watchers) w();
  });
  const done = new Promise<CliRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      for (const w of watchers) w();
      resolve({ code, stdout, stderr });
    });
  });
  return {
    done,
    kill: () => child.kill('SIGKILL'),
    stderrMatches: (re) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (re.test(stderr)) {
            watchers.delete(check);
            resolve(stderr);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            watchers.delete(check);
            reject(new Error(`exited before stderr matched ${re}: ${stderr}`));
          }
        };
        watchers.add(check);
        check();
      }),
  };
}
