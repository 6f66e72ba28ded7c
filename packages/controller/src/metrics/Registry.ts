/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text
 * exposition format (version 0.0.4). Written here rather than taken from prom-client: the
 * controller needs a dozen series, no default process collectors, and collectors that may await
 * the store before a scrape.
 */

export type Labels = Record<string, string>;

/** What `GET /metrics` answers with. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Default buckets (seconds): 1 ms … 2 min, for request, exec and create times alike. */
export const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

function labelText(labelNames: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = labelNames.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {
    if (!NAME.test(name)) throw new Error(`bad metric name ${name}`);
  }

  protected key(labels: Labels | undefined): { key: string; values: string[] } {
    const values = this.labelNames.map((n) => {
      const v = labels?.[n];
      if (v === undefined) throw new Error(`metric ${this.name} needs label ${n}`);
      return v;
    });
    return { key: JSON.stringify(values), values };
  }

  abstract samples(): string[];

  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()];
    return `${lines.join('\n')}\n`;
  }
}

export class Counter extends Metric {
  readonly type = 'counter';
  private readonly values = new Map<string, { labels: string[]; value: number }>();

  inc(labels?: Labels, by = 1): void {
    const { key, values } = this.key(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels: values, value: by });
  }

  /** The current value (tests). */
  get(labels?: Labels): number {
    return this.values.get(this.key(labels).key)?.value ?? 0;
  }

  samples(): string[] {
    return [...this.values.values()].map((e) => `${this.name}${labelText(this.labelNames, e.labels)} ${formatValue(e.value)}`);
  }
}

export class Gauge extends Metric {
  readonly type = 'gauge';
  private values = new Map<string, { labels: string[]; value: number }>();

  set(labels: Labels | undefined, value: number): void {
    const { key, values } = this.key(labels);
    this.values.set(key, { labels: values, value });
  }

  /** Drops every series (a collector then sets the ones that exist now). */
  reset(): void {
    this.values = new Map();
  }

  samples(): string[] {
    return [...this.values.values()].map((e) => `${this.name}${labelText(this.labelNames, e.labels)} ${formatValue(e.value)}`);
  }
}

export class Histogram extends Metric {
  readonly type = 'histogram';
  private readonly series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly buckets: readonly number[] = DEFAULT_BUCKETS,
  ) {
    super(name, help, labelNames);
    if (labelNames.includes('le')) throw new Error('a histogram label may not be named le');
  }

  observe(labels: Labels | undefined, value: number): void {
    const { key, values } = this.key(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: values, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= (this.buckets[i] as number)) s.counts[i] = (s.counts[i] as number) + 1;
    s.sum += value;
    s.count++;
  }

  /** Observations so far (tests). */
  count(labels?: Labels): number {
    return this.series.get(this.key(labels).key)?.count ?? 0;
  }

  samples(): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', formatValue(b)])} ${s.counts[i]}`);
      });
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
    return out;
  }
}

/** Metrics in registration order, and collectors that refresh gauges before each scrape (in order). */
export class Registry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: Array<() => Promise<void> | void> = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** Runs before each render; one that fails leaves its gauges as they were (logged by the caller's `onError`). */
  collect(fn: () => Promise<void> | void): void {
    this.collectors.push(fn);
  }

  async render(onError: (err: unknown) => void = () => undefined): Promise<string> {
    // In order: a collector may use what an earlier one read.
    for (const c of this.collectors) {
      try {
        await c();
      } catch (err) {
        onError(err);
      }
    }
    return this.metrics.map((m) => m.render()).join('');
  }

  private add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }
}
