/**
 * The latency bench's per-phase breakdown: the `[trace]` lines a server started with
 * SCAIBUNKER_TRACE_SPAWN=1 writes (PhaseTrace) and the bench's own marks, merged per bunker on
 * one clock. Each phase is the time from the mark before it to its own mark.
 */
export type Mark = [phase: string, atMs: number];

/** Every mark the server wrote, by subject (bunker id). */
export function traceMarks(serverOutput: string): Map<string, Mark[]> {
  const out = new Map<string, Mark[]>();
  for (const line of serverOutput.split('\n')) {
    const at = line.indexOf('[trace] ');
    if (at < 0) continue;
    const t = JSON.parse(line.slice(at + 8)) as { subject: string; marks: Mark[] };
    const list = out.get(t.subject) ?? [];
    list.push(...t.marks);
    out.set(t.subject, list);
  }
  return out;
}

/**
 * One operation's phases: its marks in time order, each named by the mark that ends it and
 * prefixed by the client step it falls in (`create/…` until the client has its create answer,
 * then `exec/…`), with the time since the mark before.
 */
export function phasesOf(marks: Mark[]): Array<[string, number]> {
  const sorted = [...marks].sort((a, b) => a[1] - b[1]);
  const out: Array<[string, number]> = [];
  let step = 'create';
  for (let i = 1; i < sorted.length; i++) {
    const [name, at] = sorted[i] as Mark;
    out.push([`${step}/${name}`, at - (sorted[i - 1] as Mark)[1]]);
    if (name === 'client.created') step = 'exec';
  }
  return out;
}

/** The median of each phase over many operations, in the order phases first appear. */
export function medianPhases(operations: Array<Array<[string, number]>>): Record<string, number> {
  const samples = new Map<string, number[]>();
  for (const phases of operations)
    for (const [name, ms] of phases) {
      const list = samples.get(name) ?? [];
      list.push(ms);
      samples.set(name, list);
    }
  const out: Record<string, number> = {};
  for (const [name, list] of samples) {
    const s = [...list].sort((a, b) => a - b);
    out[name] = Number((s[Math.floor(s.length / 2)] as number).toFixed(2));
  }
  return out;
}
