import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { type CommandResult, runCommand } from '../host/runCommand.js';
import { shq } from './HostShell.js';

export type RuntimeName = 'crun' | 'runc';

/** Finds an executable on $PATH (plus the sbin dirs a non-login root shell may lack). */
export function findExecutable(name: string): string | undefined {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/local/bin',
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/bin',
  ];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/**
 * A crun or runc binary with a private state dir (`--root`), so this provider never sees or
 * collides with containers of other users of the same runtime.
 */
export class OciRuntime {
  constructor(
    readonly name: RuntimeName,
    readonly bin: string,
    readonly stateRoot: string,
  ) {}

  static locate(name: RuntimeName, stateRoot: string): OciRuntime | undefined {
    const bin = findExecutable(name);
    return bin ? new OciRuntime(name, bin, stateRoot) : undefined;
  }

  private global(logFile?: string): string[] {
    const g = ['--root', this.stateRoot];
    if (logFile && this.name === 'crun') g.push(`--log=file:${logFile}`);
    else if (logFile) g.push('--log', logFile);
    return g;
  }

  /**
   * Shell words for `run --detach` (used through HostShell): the container inherits the
   * runtime's stdio, so stdin is /dev/null and stdout/stderr are appended to `consoleFile`.
   */
  runDetachedScript(id: string, o: { bundle: string; pidFile: string; logFile: string; consoleFile: string }): string {
    const words = [this.bin, ...this.global(o.logFile), 'run', '--detach', '--bundle', o.bundle, '--pid-file', o.pidFile, id]
      .map(shq)
      .join(' ');
    return `${words} </dev/null >>${shq(o.consoleFile)} 2>&1`;
  }

  /** Shell words for `delete --force`. */
  deleteScript(id: string): string {
    return [this.bin, ...this.global(), 'delete', '--force', id].map(shq).join(' ');
  }

  /**
   * `create` (no start), used to probe a runtime. The container's init stays behind waiting
   * for `start` holding the runtime's stdio, so stdio is /dev/null and errors come from `logFile`.
   */
  create(id: string, bundle: string, logFile: string, timeoutMs = 15_000): Promise<{ code: number; error: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.bin, [...this.global(logFile), 'create', '--bundle', bundle, id], { stdio: 'ignore' });
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        let error = '';
        try {
          error = readFileSync(logFile, 'utf8').trim();
        } catch {
          /* no log */
        }
        resolve({ code: code ?? -1, error });
      });
    });
  }

  /** `delete --force`: SIGKILLs whatever still runs and removes state and cgroup. */
  deleteForce(id: string): Promise<CommandResult> {
    return runCommand(this.bin, [...this.global(), 'delete', '--force', id], { timeoutMs: 15_000 });
  }

  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    const r = await runCommand(this.bin, [...this.global(), 'state', id], { timeoutMs: 15_000 });
    if (r.code !== 0) return undefined;
    try {
      const s = JSON.parse(r.stdout) as { status: string; pid: number };
      return { status: s.status, pid: s.pid };
    } catch {
      return undefined;
    }
  }

  async version(): Promise<string> {
    const r = await runCommand(this.bin, ['--version'], { timeoutMs: 5000 });
    return (r.stdout.split('\n')[0] ?? '').trim() || this.name;
  }
}
