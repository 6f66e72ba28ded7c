import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { isIPv4, isIPv6 } from 'node:net';

/** One address the DNS responder just handed out, with the TTL it was answered with. */
export interface SetAddress {
  addr: string;
  ttlS: number;
}

export interface NftSetWriterOptions {
  /** The nft binary; `nft` from PATH by default. */
  nft?: string;
  /** Shortest element timeout before the grace is added, seconds (default 60). */
  floorS?: number;
  /** Added to every element timeout so a client that just got the answer can still connect (default 30). */
  graceS?: number;
  /** Longest element timeout, seconds (default 86430; nft itself refuses anything above ~49 days). */
  ceilingS?: number;
  /** One command longer than this kills the nft child and fails (default 5000 ms). */
  commandTimeoutMs?: number;
  log?: (line: string) => void;
}

interface Pending {
  command: string;
  /** Already re-sent once after the child died under it. */
  retried: boolean;
  marker: string;
  errors: string[];
  resolve(): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** Lines nft prints under an error to point at the offending token. */
const CARET_LINE = /^\s*[\^~]+\s*$/;
/** Table names go into nft commands verbatim, so they must be plain identifiers. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Adds addresses to a bunker's `allow4` / `allow6` nft sets through one long-lived `nft -i` child
 * (about 0.6 ms per add here, against ~5 ms for an nft process per answer), because the DNS
 * responder must wait for the insert before it may reply.
 *
 * Completion and errors: every command line is followed by a marker line (`sbmark <n>`) that is a
 * deliberate syntax error. nft handles lines in order and prints errors to stderr unbuffered, so
 * the marker's error closes the command: any other error text before it belongs to the command.
 *
 * Timeouts: an element lives max(TTL, floor) + grace seconds. On this kernel `add element` of an
 * existing element replaces its timeout (it can shorten it), so the writer remembers the expiry it
 * last gave each address and never asks for less; the add itself is always issued, so an element
 * that vanished (table recreated, expired) comes back. Only this writer should fill these sets.
 */
export class NftSetWriter {
  private readonly nft: string;
  private readonly floorS: number;
  private readonly graceS: number;
  private readonly ceilingS: number;
  private readonly commandTimeoutMs: number;
  private readonly log: (line: string) => void;
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly pending: Pending[] = [];
  private stderrBuf = '';
  private seq = 0;
  private closed = false;
  /** `table set addr` → epoch ms the element was last given to expire at. */
  private readonly expiries = new Map<string, number>();
  private lastSweep = Date.now();

  constructor(opts: NftSetWriterOptions = {}) {
    this.nft = opts.nft ?? 'nft';
    this.floorS = opts.floorS ?? 60;
    this.graceS = opts.graceS ?? 30;
    this.ceilingS = opts.ceilingS ?? 86_430;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 5000;
    this.log = opts.log ?? (() => {});
  }

  /**
   * Adds the addresses to `inet <table>` sets `allow4` and `allow6` in one nft transaction and
   * resolves once nft has applied it; rejects on any nft error (nothing is added then).
   */
  add(table: string, family4: readonly SetAddress[], family6: readonly SetAddress[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('NftSetWriter is closed'));
    if (!TABLE_NAME.test(table)) return Promise.reject(new Error(`invalid nft table name '${table}'`));
    for (const a of family4) if (!isIPv4(a.addr)) return Promise.reject(new Error(`not an IPv4 address: '${a.addr}'`));
    for (const a of family6) if (!isIPv6(a.addr)) return Promise.reject(new Error(`not an IPv6 address: '${a.addr}'`));
    const now = Date.now();
    this.sweep(now);
    const commands = [this.elementsCommand(table, 'allow4', family4, now), this.elementsCommand(table, 'allow6', family6, now)].filter(
      (c): c is string => c !== undefined,
    );
    if (commands.length === 0) return Promise.resolve();
    return this.run(commands.join('; '));
  }

  /** Forgets the expiries remembered for `table` (call when its bunker and table are gone). */
  forgetTable(table: string): void {
    const prefix = `${table} `;
    for (const key of this.expiries.keys()) if (key.startsWith(prefix)) this.expiries.delete(key);
  }

  /** The nft child's pid while one runs (for diagnostics; the child is started by the first add). */
  pid(): number | undefined {
    return this.child?.pid;
  }

  /** Ends the nft child; pending and later adds reject. */
  close(): void {
    this.closed = true;
    this.failAll(new Error('NftSetWriter closed'));
    const child = this.child;
    this.child = undefined;
    if (child) child.stdin.end();
  }

  /** The timeout (seconds) an address answered with `ttlS` gets, never below what it was last given. */
  private elementsCommand(table: string, set: string, addrs: readonly SetAddress[], now: number): string | undefined {
    const wanted = new Map<string, number>();
    for (const { addr, ttlS } of addrs) {
      const ttl = Number.isFinite(ttlS) ? Math.max(0, Math.floor(ttlS)) : 0;
      const timeoutS = Math.min(Math.max(ttl, this.floorS) + this.graceS, this.ceilingS);
      wanted.set(addr, Math.max(wanted.get(addr) ?? 0, timeoutS));
    }
    if (wanted.size === 0) return undefined;
    const elements: string[] = [];
    for (const [addr, timeoutS] of wanted) {
      const key = `${table} ${set} ${addr}`;
      const known = this.expiries.get(key);
      const remainingS = known === undefined ? 0 : Math.ceil((known - now) / 1000);
      const finalS = Math.min(Math.max(timeoutS, remainingS), this.ceilingS);
      this.expiries.set(key, Math.max(known ?? 0, now + finalS * 1000));
      elements.push(`${addr} timeout ${finalS}s`);
    }
    return `add element inet ${table} ${set} { ${elements.join(', ')} }`;
  }

  /** Drops remembered expiries that have passed, at most once a minute. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [key, expiry] of this.expiries) if (expiry <= now) this.expiries.delete(key);
  }

  private run(command: string): Promise<void> {
    return new Promise<void>((resolve, reject) => this.send({ command, retried: false, marker: '', errors: [], resolve, reject }));
  }

  /** Writes a command and its marker to the child (started if needed) and queues it. */
  private send(p: Omit<Pending, 'timer'>): void {
    const child = this.ensureChild();
    const marker = `sbmark ${++this.seq}`;
    const timer = setTimeout(() => {
      this.log(`nft: command timed out after ${this.commandTimeoutMs} ms; restarting nft`);
      this.restart(new Error(`nft command timed out after ${this.commandTimeoutMs} ms`));
    }, this.commandTimeoutMs);
    this.pending.push({ ...p, marker, errors: [], timer });
    child.stdin.write(`${p.command}\n${marker}\n`);
  }

  private ensureChild(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn(this.nft, ['-i'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.stderrBuf = '';
    child.stdout.on('data', (d: Buffer) => this.log(`nft stdout: ${d.toString().trimEnd()}`));
    child.stderr.on('data', (d: Buffer) => this.onStderr(child, d));
    child.stdin.on('error', (e) => this.log(`nft stdin: ${e.message}`));
    child.on('error', (e) => this.onExit(child, `nft failed: ${e.message}`));
    child.on('exit', (code, signal) => this.onExit(child, `nft exited (${signal ?? code})`));
    return child;
  }

  private onStderr(child: ChildProcessWithoutNullStreams, data: Buffer): void {
    if (child !== this.child) return;
    this.stderrBuf += data.toString();
    for (;;) {
      const nl = this.stderrBuf.indexOf('\n');
      if (nl < 0) break;
      const line = this.stderrBuf.slice(0, nl);
      this.stderrBuf = this.stderrBuf.slice(nl + 1);
      this.onLine(line);
    }
  }

  /** One stderr line: the head command's marker echo closes it; anything else is its error text. */
  private onLine(line: string): void {
    const head = this.pending[0];
    if (!head) {
      if (line.trim() !== '' && !CARET_LINE.test(line)) this.log(`nft: ${line}`);
      return;
    }
    if (CARET_LINE.test(line) || line.trim() === '') return;
    if (line === head.marker) {
      this.pending.shift();
      clearTimeout(head.timer);
      head.errors.pop(); // the marker's own "Error: syntax error ..." line
      if (head.errors.length === 0) head.resolve();
      else head.reject(new Error(`nft: ${head.errors.join(' | ')}`));
      return;
    }
    head.errors.push(line);
  }

  /**
   * The child died: commands it had not confirmed go once more to a fresh child (adding an element
   * twice is harmless); a command that already had its second chance fails.
   */
  private onExit(child: ChildProcessWithoutNullStreams, why: string): void {
    if (child !== this.child) return;
    this.child = undefined;
    if (this.closed) {
      this.failAll(new Error(why));
      return;
    }
    this.log(why);
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      if (p.retried) p.reject(new Error(why));
      else this.send({ ...p, retried: true });
    }
  }

  /** Kills the child (its output no longer lines up with our queue) and fails what was pending. */
  private restart(e: Error): void {
    const child = this.child;
    this.child = undefined;
    this.failAll(e);
    child?.kill('SIGKILL');
  }

  private failAll(e: Error): void {
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      p.reject(e);
    }
  }
}
