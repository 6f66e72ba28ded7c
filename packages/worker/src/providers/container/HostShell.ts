import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Quotes one word for a POSIX shell. */
export function shq(s: string | number): string {
  const t = String(s);
  return /^[A-Za-z0-9_./=:,@%+-]+$/.test(t) ? t : `'${t.replace(/'/g, `'\\''`)}'`;
}

export interface ShellResult {
  code: number;
  stderr: string;
}

interface Slot {
  index: number;
  child: ChildProcessWithoutNullStreams;
  busy: boolean;
  buf: string;
  /** The command running, until its `@@done` line (or the shell's exit). */
  pending?: { token: string; resolve: (r: ShellResult) => void; reject: (e: Error) => void } | undefined;
  dead: boolean;
}

/**
 * A small pool of long-lived shells that run the worker's host commands (mounts, the OCI
 * runtime). Launching a process from Node costs ~2–4 ms here (fork of a large process plus
 * child reaping); a resident static busybox `sh` runs `mount`, `mkdir`, `umount` as applets
 * (fork without exec) at ~1 ms each and spawns crun far cheaper. One request = one shell
 * command line run in a subshell; requests on one shell are sequential, the pool grows up
 * to `max` shells for concurrency.
 *
 * Without busybox the pool uses /bin/sh and the system's mount binaries (slower, same result).
 */
export class HostShell {
  private readonly slots: Slot[] = [];
  private readonly queue: Array<() => void> = [];
  private seq = 0;
  private closed = false;
  readonly argv: string[];

  constructor(
    /** Dir for the per-shell stderr files. */
    private readonly tmpDir: string,
    private readonly max = 8,
  ) {
    const forced = process.env.SCAIBUNKER_HOST_SHELL; // e.g. /bin/sh to exercise the no-busybox path
    this.argv = forced ? [forced] : existsSync('/bin/busybox') ? ['/bin/busybox', 'sh'] : ['/bin/sh'];
    mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  }

  /** Runs `script` (one line, already quoted) in a subshell; stdin/stdout are /dev/null. */
  async run(script: string): Promise<ShellResult> {
    if (this.closed) throw new Error('host shell closed');
    const slot = await this.acquire();
    try {
      return await this.exec(slot, script);
    } finally {
      slot.busy = false;
      this.queue.shift()?.();
    }
  }

  /** Like run() but throws with the command's stderr when it fails. */
  async must(script: string, what: string): Promise<void> {
    const r = await this.run(script);
    if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  close(): void {
    this.closed = true;
    for (const s of this.slots) {
      s.dead = true;
      s.child.stdin.end();
      s.child.kill('SIGKILL');
    }
    this.slots.length = 0;
  }

  private acquire(): Promise<Slot> {
    const free = this.slots.find((s) => !s.busy && !s.dead);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    if (this.slots.length < this.max) {
      const s = this.start();
      s.busy = true;
      return Promise.resolve(s);
    }
    return new Promise((resolve) => this.queue.push(() => resolve(this.acquire())));
  }

  private start(): Slot {
    const used = new Set(this.slots.map((s) => s.index));
    let index = 0;
    while (used.has(index)) index++;
    const child = spawn(this.argv[0] as string, this.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const slot: Slot = { index, child, busy: false, buf: '', dead: false };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      slot.buf += d;
      for (;;) {
        const nl = slot.buf.indexOf('\n');
        if (nl < 0) break;
        const line = slot.buf.slice(0, nl);
        slot.buf = slot.buf.slice(nl + 1);
        const m = /^@@done (\S+) (\d+)$/.exec(line);
        const p = slot.pending;
        if (m && p && m[1] === p.token) {
          slot.pending = undefined;
          const code = Number(m[2]);
          p.resolve({ code, stderr: code === 0 ? '' : readErr(this.errFile(slot)) });
        }
      }
    });
    child.stderr.on('data', () => {});
    child.stdin.on('error', () => {});
    const onGone = () => {
      slot.dead = true;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.pending?.reject(new Error('host shell exited'));
      slot.pending = undefined;
    };
    child.on('exit', onGone);
    child.on('error', onGone);
    setRef(child, false);
    this.slots.push(slot);
    return slot;
  }

  private errFile(slot: Slot): string {
    return join(this.tmpDir, `sh${slot.index}.err`);
  }

  private exec(slot: Slot, script: string): Promise<ShellResult> {
    if (script.includes('\n')) throw new Error('host shell scripts must be one line');
    const token = `${process.pid}.${++this.seq}`;
    // keep the event loop alive only while a request is in flight
    setRef(slot.child, true);
    return new Promise<ShellResult>((resolve, reject) => {
      slot.pending = { token, resolve, reject };
      slot.child.stdin.write(`( ${script} ) </dev/null >/dev/null 2>${shq(this.errFile(slot))}; echo "@@done ${token} $?"\n`);
    }).finally(() => setRef(slot.child, false));
  }
}

function setRef(child: ChildProcessWithoutNullStreams, on: boolean): void {
  for (const h of [child, child.stdin, child.stdout, child.stderr] as Array<{ ref?: () => void; unref?: () => void }>) {
    if (on) h.ref?.();
    else h.unref?.();
  }
}

function readErr(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-8000);
  } catch {
    return '';
  }
}
