/**
 * Shared fixtures for the agent tests: build the C agent, run it as an ordinary child
 * process listening on a temporary Unix socket, and clean up everything afterwards.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const AGENT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../agent');
/** SCAIBUNKER_AGENT_BIN overrides the binary under test (e.g. a sanitizer build). */
export const AGENT_BIN = process.env.SCAIBUNKER_AGENT_BIN || path.join(AGENT_DIR, 'build/scaibunker-agent');

let built = false;

/** Runs `make` in packages/agent; throws with the compiler output if it fails. */
export function buildAgent(): void {
  if (built || process.env.SCAIBUNKER_AGENT_BIN) return;
  try {
    execFileSync('make', ['-C', AGENT_DIR, '-s'], { stdio: 'pipe' });
  } catch (err) {
    const e = err as { stderr?: Buffer; stdout?: Buffer; message: string };
    throw new Error(
      `building the agent failed (make -C ${AGENT_DIR}): ${e.message}\n${e.stdout?.toString() ?? ''}${e.stderr?.toString() ?? ''}`,
    );
  }
  if (!fs.existsSync(AGENT_BIN)) throw new Error(`make did not produce ${AGENT_BIN}`);
  built = true;
}

export interface RunningAgent {
  proc: ChildProcess;
  pid: number;
  dir: string;
  socketPath: string;
  stderr: () => string;
  stop: () => Promise<void>;
}

const running = new Set<RunningAgent>();

// Last resort if a test process exits without its `after` hooks (e.g. a runner timeout):
// never leave agents behind.
process.on('exit', () => {
  for (const a of running) {
    try {
      a.proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Spawns the agent with --listen on a fresh temp dir. Does not wait for the socket. */
export function startAgent(opts: { env?: Record<string, string> } = {}): RunningAgent {
  buildAgent();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-agent-test-'));
  const socketPath = path.join(dir, 'run', 'agent.sock');
  const proc = spawn(AGENT_BIN, ['--listen', socketPath, '--no-init'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: opts.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  if (proc.pid === undefined) throw new Error('failed to spawn the agent');
  const exited = once(proc, 'exit').catch(() => {});
  const agent: RunningAgent = {
    proc,
    pid: proc.pid,
    dir,
    socketPath,
    stderr: () => err,
    stop: async () => {
      running.delete(agent);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(agent);
  return agent;
}

/** Kills every agent still running (use in `after`, runs even when tests failed). */
export async function stopAllAgents(): Promise<void> {
  await Promise.all([...running].map((a) => a.stop()));
}

/** Resident set size of a process in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  if (!m?.[1]) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Process state letter from /proc/<pid>/stat, or null if the process is gone. */
export function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/**
 * A FIFO whose reader sees EOF exactly when the last writer exits. A process started
 * with `cmd >"$FIFO"` (or a shell that did `exec 3>"$FIFO"`) is therefore observable:
 * `closed` resolves when it (and every copy of its fd) is gone — an event, not a poll.
 */
export interface Fifo {
  path: string;
  /** Resolves once a writer has opened the FIFO (the reader's open() returned). */
  opened: Promise<void>;
  /** Resolves with everything read once all writers have closed. */
  closed: Promise<string>;
  /** Unblocks a reader still waiting in open() (cleanup after a failed test). */
  release: () => void;
}

export function makeFifo(dir: string, name = 'fifo'): Fifo {
  const p = path.join(dir, name);
  execFileSync('mkfifo', [p]);
  const rs = fs.createReadStream(p);
  let data = '';
  rs.on('data', (d) => {
    data += d.toString();
  });
  const opened = new Promise<void>((resolve, reject) => {
    rs.once('open', () => resolve());
    rs.once('error', reject);
  });
  opened.catch(() => {});
  const closed = new Promise<string>((resolve, reject) => {
    rs.on('end', () => resolve(data));
    rs.on('error', reject);
  });
  closed.catch(() => {});
  return {
    path: p,
    opened,
    closed,
    release: () => {
      try {
        const fd = fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
        fs.closeSync(fd);
      } catch {
        // no reader waiting
      }
    },
  };
}

/** The home directory of a uid according to /etc/passwd (what the agent uses). */
export function passwdEntry(key: string | number): { name: string; uid: number; gid: number; home: string } | null {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length < 7) continue;
    if (f[0] === String(key) || f[2] === String(key)) {
      return { name: f[0] ?? '', uid: Number(f[2]), gid: Number(f[3]), home: f[5] || '/' };
    }
  }
  return null;
}

/** Collects stdout/stderr of an exec into strings. */
export function collector(): {
  out: () => string;
  err: () => string;
  handlers: { onStdout: (b: Buffer) => void; onStderr: (b: Buffer) => void };
} {
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  return {
    out: () => Buffer.concat(o).toString(),
    err: () => Buffer.concat(e).toString(),
    handlers: { onStdout: (b) => void o.push(Buffer.from(b)), onStderr: (b) => void e.push(Buffer.from(b)) },
  };
}
