/**
 * Timestamps of one operation's phases, for the latency bench's per-phase breakdown. On only
 * when the process starts with SCAIBUNKER_TRACE_SPAWN=1: each finished trace is one stderr line
 *
 *   [trace] {"op":"create","subject":"bk_…","marks":[["controller.received",1765060000123.456],…]}
 *
 * Times are epoch milliseconds (performance.timeOrigin + performance.now()), so marks made in
 * the controller, a worker in another process and the bench itself line up on one clock. Off
 * (the default), start() hands out one shared trace whose methods do nothing: production pays
 * a method call per mark and no allocation.
 */
export class PhaseTrace {
  // core is also loaded by the SDK, which may run where there is no `process` (a browser).
  static readonly enabled = globalThis.process?.env?.SCAIBUNKER_TRACE_SPAWN === '1';
  /** The trace every caller gets while tracing is off. */
  static readonly off = new PhaseTrace('off', false);

  /** What the marks are about (a bunker id); a trace without one is dropped at end(). */
  subject: string | undefined;
  private readonly marks: Array<[string, number]> = [];

  private constructor(
    readonly op: string,
    private readonly on: boolean,
  ) {}

  /** A trace of `op` (`create`, `spawn`, …), or the shared no-op one when tracing is off. */
  static start(op: string, subject?: string): PhaseTrace {
    if (!PhaseTrace.enabled) return PhaseTrace.off;
    const t = new PhaseTrace(op, true);
    t.subject = subject;
    return t;
  }

  /** The current time on the shared clock (epoch ms, sub-millisecond). */
  static now(): number {
    return performance.timeOrigin + performance.now();
  }

  /** `phase` ended now (`at`: a time taken earlier with now()). */
  mark(phase: string, at?: number): void {
    if (this.on) this.marks.push([phase, at ?? PhaseTrace.now()]);
  }

  /** Writes the trace (once): the bench reads it from the process's stderr. */
  end(): void {
    if (!this.on || !this.subject || this.marks.length === 0) return;
    process.stderr.write(`[trace] ${JSON.stringify({ op: this.op, subject: this.subject, marks: this.marks })}\n`);
    this.marks.length = 0;
  }
}
