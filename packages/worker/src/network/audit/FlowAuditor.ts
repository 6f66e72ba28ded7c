import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { type FlowLine, parseFlowLine } from './flowLine.js';

/** One NDJSON line of an audit batch. */
export interface FlowRecord extends FlowLine {
  bunker_id: string;
  /** What the bunker's DNS lookups last resolved to `dst`, or null when nothing did. */
  hostname: string | null;
}

/** Lifecycle of the flowlog child, for metrics and tests. */
export type FlowlogChildEvent =
  | { type: 'ready'; pid: number }
  | { type: 'exit'; pid: number | undefined; code: number | null; signal: NodeJS.Signals | null };

export interface FlowAuditorOptions {
  /** Path of the `scaibunker-flowlog` binary (packages/worker/native/flowlog/build/). */
  binary: string;
  /** Source prefixes handed to the binary as `--src`, so other flows never reach Node. */
  srcPrefixes?: readonly string[];
  /**
   * The bunker owning a private source address when the flow ran (an address is reused once its
   * bunker is gone), or undefined (the flow is counted, not kept).
   */
  bunkerFor(srcIp: string, flow: FlowLine): string | undefined;
  /** The hostname the bunker resolved for a remote address (`HostnameLog.lookup`). */
  hostnameFor(bunkerId: string, dstIp: string): string | undefined;
  /**
   * Stores one batch. A rejection is retried with backoff under the same name, so the sink must
   * treat a repeated name as an overwrite (a blob put does).
   */
  sink(bunkerId: string, batchName: string, ndjson: Buffer): Promise<void>;
  /** A bunker's batch is sealed at this many records (default 1000)... */
  batchRecords?: number;
  /** ...or this long after its first record (default 5000 ms). */
  batchMs?: number;
  /** Most records held across all bunkers (open and unsent batches; default 200000). */
  maxPendingRecords?: number;
  /** First retry delay after a sink failure (default 250 ms), doubling up to retryMaxMs. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How long close() keeps trying to deliver before dropping what is left (default 10000 ms). */
  closeTimeoutMs?: number;
  /** Delay before restarting a dead child (default 500 ms), doubling up to 30 s while it keeps dying. */
  restartDelayMs?: number;
  log?: (line: string) => void;
  onChild?: (event: FlowlogChildEvent) => void;
}

/** Counters; recorded == sent + dropped + pending at all times. */
export interface FlowAuditorStats {
  /** Flows attributed to a bunker. */
  recorded: number;
  /** Records a sink call accepted. */
  sent: number;
  /** `{"lost":true}` lines: the kernel overflowed the socket and an unknown number of flows is missing. */
  lost: number;
  /** Records given up (buffer cap, or still undelivered when close() timed out); each is logged. */
  dropped: number;
  /** Records waiting in open or unsent batches. */
  pending: number;
  /** Flows passing the prefix filter whose source is no bunker (e.g. one already deleted). */
  unattributed: number;
  /** Times the child died and was restarted; flows ending while it was down are not recorded. */
  restarts: number;
}

interface Batch {
  seq: number;
  name: string;
  data: Buffer;
  lines: string[];
}

interface Waiter {
  /** Resolves once batches up to this seq are done... */
  seq: number;
  /** ...and rejects if one after this seq (not yet done at the call) was dropped. */
  fromSeq: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

interface BunkerQueue {
  id: string;
  open: string[];
  timer: NodeJS.Timeout | undefined;
  sealed: Batch[];
  nextSeq: number;
  /** Highest seq delivered or given up; batches go out in order, one sink call at a time. */
  doneSeq: number;
  /** Highest seq given up (0: none). */
  failedSeq: number;
  inFlight: Batch | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  attempt: number;
  waiters: Waiter[];
}

type Child = ChildProcessByStdio<null, Readable, Readable>;

/** Longest flowlog output kept without a newline; real lines are a few hundred bytes. */
const MAX_LINE = 1 << 20;

/**
 * Per-flow egress audit for `unrestricted` bunkers: runs `scaibunker-flowlog` (conntrack DESTROY
 * events from a raw netlink socket, see flowlog.c for why not `conntrack -E`), attributes each
 * flow to a bunker by its original source address, adds the hostname the bunker resolved, and
 * writes per-bunker NDJSON batches named `{ts_us}-{worker_pid}.ndjson` through the sink.
 *
 * Nothing is lost silently: a failing sink is retried with backoff while the records stay in
 * memory; past the memory cap new records are dropped *and logged in full*; kernel overflows
 * and child restarts are counted and logged as gaps. Records arrive 10–60 s after a flow ends
 * (conntrack reaps in batches), so flushBunker() at bunker deletion does not see the last flows;
 * later ones still go out in new batches as long as bunkerFor knows the address.
 */
export class FlowAuditor {
  private readonly opts: FlowAuditorOptions;
  private readonly batchRecords: number;
  private readonly batchMs: number;
  private readonly maxPending: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;
  private readonly log: (line: string) => void;
  private readonly queues = new Map<string, BunkerQueue>();
  private readonly counters: FlowAuditorStats = {
    recorded: 0,
    sent: 0,
    lost: 0,
    dropped: 0,
    pending: 0,
    unattributed: 0,
    restarts: 0,
  };
  private child: Child | undefined;
  private childExited: Promise<void> | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private failuresInRow = 0;
  private lastTsUs = 0;
  private started = false;
  private closing = false;
  private drainWaiters: (() => void)[] = [];

  constructor(opts: FlowAuditorOptions) {
    this.opts = opts;
    this.batchRecords = opts.batchRecords ?? 1000;
    this.batchMs = opts.batchMs ?? 5000;
    this.maxPending = opts.maxPendingRecords ?? 200_000;
    this.retryMinMs = opts.retryMinMs ?? 250;
    this.retryMaxMs = opts.retryMaxMs ?? 30_000;
    this.log = opts.log ?? (() => {});
  }

  /**
   * Starts the child and resolves once its socket is subscribed (flows ending before that are
   * not seen). Rejects when the first child cannot start (missing binary, no CAP_NET_ADMIN):
   * that is a deployment error, not a gap to paper over with restarts.
   */
  async start(): Promise<void> {
    if (this.started) throw new Error('FlowAuditor already started');
    this.started = true;
    await new Promise<void>((resolve, reject) => this.spawnChild({ resolve, reject }));
  }

  /** pid of the running child, if any. */
  childPid(): number | undefined {
    return this.child?.pid;
  }

  stats(): FlowAuditorStats {
    return { ...this.counters };
  }

  /**
   * Seals the bunker's open batch and resolves once every batch sealed so far for it has been
   * delivered (retrying through sink failures); rejects if close() gives up on one of them.
   */
  flushBunker(bunkerId: string): Promise<void> {
    const q = this.queues.get(bunkerId);
    if (!q) return Promise.resolve();
    this.seal(q);
    const target = q.nextSeq - 1;
    if (q.doneSeq >= target) return Promise.resolve();
    const fromSeq = q.doneSeq;
    return new Promise((resolve, reject) => q.waiters.push({ seq: target, fromSeq, resolve, reject }));
  }

  /**
   * Stops the child (SIGTERM: it flushes its buffered lines first), seals every batch and tries
   * to deliver all of them for up to closeTimeoutMs; whatever is still undelivered then is
   * counted as dropped and logged record by record.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (child && this.childExited) {
      const exited = this.childExited;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    }
    for (const q of this.queues.values()) this.seal(q);
    if (this.counters.pending > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.drainWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.opts.closeTimeoutMs ?? 10_000);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const q of this.queues.values()) {
      if (q.retryTimer) clearTimeout(q.retryTimer);
      q.retryTimer = undefined;
      const left = q.sealed.splice(0);
      for (const b of left) this.dropBatch(q, b, 'undelivered at close');
      if (left.length > 0) q.doneSeq = left[left.length - 1]!.seq;
      const err = new Error(`flow audit closed before ${q.id}'s batches were delivered`);
      for (const w of q.waiters.splice(0)) w.reject(err);
    }
    this.queues.clear();
  }

  private spawnChild(first?: { resolve: () => void; reject: (err: Error) => void }): void {
    const args = (this.opts.srcPrefixes ?? []).flatMap((p) => ['--src', p]);
    const child: Child = spawn(this.opts.binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let ready = false;
    let gone = false;
    let resolveExited!: () => void;
    this.childExited = new Promise((resolve) => {
      resolveExited = resolve;
    });
    let buf = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE && buf.indexOf('\n') < 0) {
        this.log(`flow audit: discarding ${buf.length} bytes of flowlog output without a newline`);
        buf = '';
        return;
      }
      let start = 0;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n', start)) {
        const line = buf.slice(start, nl);
        start = nl + 1;
        const parsed = parseFlowLine(line);
        if (parsed.kind === 'flow') this.onFlow(parsed.flow);
        else if (parsed.kind === 'lost') {
          this.counters.lost++;
          this.log('flow audit: the kernel dropped conntrack events (socket buffer overflow); flow records are missing');
        } else if (parsed.kind === 'ready' && !ready) {
          ready = true;
          this.failuresInRow = 0;
          this.opts.onChild?.({ type: 'ready', pid: child.pid ?? 0 });
          first?.resolve();
        } else if (parsed.kind === 'invalid') this.log(`flow audit: unparsable flowlog line: ${line.slice(0, 200)}`);
      }
      buf = buf.slice(start);
    });
    let errLine = '';
    let errTail = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      errTail = (errTail + d).slice(-1024);
      errLine = (errLine + d).slice(-4096);
      let nl = errLine.indexOf('\n');
      while (nl >= 0) {
        this.log(`flow audit: ${errLine.slice(0, nl)}`);
        errLine = errLine.slice(nl + 1);
        nl = errLine.indexOf('\n');
      }
    });
    const onGone = (code: number | null, signal: NodeJS.Signals | null, err?: Error) => {
      if (gone) return;
      gone = true;
      if (this.child === child) this.child = undefined;
      resolveExited();
      this.opts.onChild?.({ type: 'exit', pid: child.pid, code, signal });
      const why = err ? err.message : `exited with ${signal ?? code}`;
      if (!ready && first) {
        first.reject(new Error(`flowlog ${this.opts.binary} failed to start: ${why} ${errTail.trim()}`.trim()));
        return;
      }
      if (this.closing) return;
      this.counters.restarts++;
      this.failuresInRow++;
      const delay = Math.min(30_000, (this.opts.restartDelayMs ?? 500) * 2 ** Math.min(this.failuresInRow - 1, 16));
      this.log(`flow audit: flowlog ${why}; flows ending until it is back (${delay} ms) are not recorded`);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = undefined;
        if (!this.closing) this.spawnChild();
      }, delay);
    };
    child.on('error', (err) => onGone(null, null, err));
    // 'close' (not 'exit'): fires after stdout ended, so every line the child wrote was handled.
    child.on('close', (code, signal) => onGone(code, signal));
  }

  private onFlow(flow: FlowLine): void {
    let bunkerId: string | undefined;
    let hostname: string | undefined;
    try {
      bunkerId = this.opts.bunkerFor(flow.src, flow);
      if (bunkerId !== undefined) hostname = this.opts.hostnameFor(bunkerId, flow.dst);
    } catch (e) {
      this.log(`flow audit: attributing ${flow.src}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (bunkerId === undefined) {
      this.counters.unattributed++;
      return;
    }
    const record: FlowRecord = { bunker_id: bunkerId, ...flow, hostname: hostname ?? null };
    const line = JSON.stringify(record);
    this.counters.recorded++;
    if (this.counters.pending >= this.maxPending) {
      this.counters.dropped++;
      this.log(`flow audit: dropped (buffer full, ${this.counters.pending} pending): ${line}`);
      return;
    }
    this.counters.pending++;
    let q = this.queues.get(bunkerId);
    if (!q) {
      q = {
        id: bunkerId,
        open: [],
        timer: undefined,
        sealed: [],
        nextSeq: 1,
        doneSeq: 0,
        failedSeq: 0,
        inFlight: undefined,
        retryTimer: undefined,
        attempt: 0,
        waiters: [],
      };
      this.queues.set(bunkerId, q);
    }
    q.open.push(line);
    if (q.open.length >= this.batchRecords) this.seal(q);
    else if (!q.timer) {
      const queue = q;
      q.timer = setTimeout(() => {
        queue.timer = undefined;
        this.seal(queue);
      }, this.batchMs);
    }
  }

  /** Turns the open records into a named batch and starts delivery. */
  private seal(q: BunkerQueue): void {
    if (q.timer) clearTimeout(q.timer);
    q.timer = undefined;
    if (q.open.length === 0) return;
    const lines = q.open;
    q.open = [];
    const tsUs = Math.max(Date.now() * 1000, this.lastTsUs + 1);
    this.lastTsUs = tsUs;
    q.sealed.push({
      seq: q.nextSeq++,
      name: `${String(tsUs).padStart(16, '0')}-${process.pid}.ndjson`,
      data: Buffer.from(`${lines.join('\n')}\n`),
      lines,
    });
    this.pump(q);
  }

  private pump(q: BunkerQueue): void {
    if (q.inFlight || q.retryTimer) return;
    const batch = q.sealed[0];
    if (!batch) return;
    q.inFlight = batch;
    let result: Promise<void>;
    try {
      result = Promise.resolve(this.opts.sink(q.id, batch.name, batch.data));
    } catch (e) {
      result = Promise.reject(e);
    }
    result.then(
      () => {
        q.inFlight = undefined;
        // close() may have given this batch up meanwhile (it was logged as dropped then).
        if (q.sealed[0] !== batch) return;
        q.sealed.shift();
        q.attempt = 0;
        this.counters.sent += batch.lines.length;
        this.finished(q, batch);
        this.pump(q);
      },
      (e: unknown) => {
        q.inFlight = undefined;
        if (q.sealed[0] !== batch) return;
        q.attempt++;
        const delay = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(q.attempt - 1, 16));
        this.log(
          `flow audit: storing ${q.id}/${batch.name} (${batch.lines.length} records) failed, attempt ${q.attempt}, retry in ${delay} ms: ${e instanceof Error ? e.message : String(e)}`,
        );
        q.retryTimer = setTimeout(() => {
          q.retryTimer = undefined;
          this.pump(q);
        }, delay);
      },
    );
  }

  private dropBatch(q: BunkerQueue, batch: Batch, why: string): void {
    this.counters.dropped += batch.lines.length;
    this.log(`flow audit: dropping ${q.id}/${batch.name} (${batch.lines.length} records, ${why})`);
    for (const line of batch.lines) this.log(`flow audit: dropped (${why}): ${line}`);
    this.finished(q, batch, new Error(`flow audit: ${q.id}/${batch.name} was dropped (${why})`));
  }

  /** Bookkeeping once a batch left memory: delivered, or dropped (`failure`). */
  private finished(q: BunkerQueue, batch: Batch, failure?: Error): void {
    this.counters.pending -= batch.lines.length;
    q.doneSeq = batch.seq;
    // A flushBunker() covering a dropped batch fails: its caller must not assume delivery.
    if (failure) q.failedSeq = batch.seq;
    const still: Waiter[] = [];
    for (const w of q.waiters) {
      if (w.seq > q.doneSeq) still.push(w);
      else if (q.failedSeq > w.fromSeq) w.reject(failure ?? new Error(`flow audit: a batch of ${q.id} was dropped`));
      else w.resolve();
    }
    q.waiters = still;
    if (q.sealed.length === 0 && q.open.length === 0 && !q.inFlight && q.waiters.length === 0 && !this.closing) {
      this.queues.delete(q.id);
    }
    if (this.counters.pending === 0) for (const w of this.drainWaiters.splice(0)) w();
  }
}
