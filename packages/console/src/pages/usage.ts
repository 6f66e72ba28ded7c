import { M, type UsageItem } from '../api.js';
import { type Ctx, problem } from '../app.js';
import { fmtNumber, h, replace, table } from '../dom.js';

const METRICS: Array<[keyof Omit<UsageItem, 'key'>, string]> = [
  ['cpu_seconds', 'CPU seconds'],
  ['memory_mb_minutes', 'memory MB·minutes'],
  ['disk_mb_minutes', 'disk MB·minutes'],
  ['wall_seconds', 'bunker seconds (wall)'],
];
const RANGES: Record<string, { hours: number; by: 'hour' | 'day'; label: string }> = {
  '24h': { hours: 24, by: 'hour', label: 'last 24 hours, by hour' },
  '7d': { hours: 24 * 7, by: 'day', label: 'last 7 days, by day' },
  '30d': { hours: 24 * 30, by: 'day', label: 'last 30 days, by day' },
};

/** Metered usage of the tenant per hour or day (`GET /usage`), as an SVG bar chart and a table. */
export function usagePage(ctx: Ctx, root: HTMLElement): void {
  const range = h('select', { id: 'usage-range' }, ...Object.entries(RANGES).map(([k, r]) => h('option', { value: k }, r.label)));
  const metric = h('select', { id: 'usage-metric' }, ...METRICS.map(([k, label]) => h('option', { value: k }, label)));
  const out = h('div', { id: 'usage' });
  root.append(h('div', { class: 'toolbar' }, h('h1', 'Usage')), h('div', { class: 'filters' }, range, metric), out);
  let items: UsageItem[] = [];
  let keys: string[] = [];
  const draw = () => {
    const m = metric.value as keyof Omit<UsageItem, 'key'>;
    const byKey = new Map(items.map((i) => [i.key, i]));
    const values = keys.map((k) => byKey.get(k)?.[m] ?? 0);
    const r = RANGES[range.value] as (typeof RANGES)[string];
    replace(
      out,
      h('div', { class: 'card' }, chart(keys, values, r.by, METRICS.find(([k]) => k === m)?.[1] ?? m)),
      table(
        [r.by, ...METRICS.map(([, l]) => l)],
        keys
          .filter((k) => byKey.has(k))
          .reverse()
          .map((k) => [k, ...METRICS.map(([mk]) => fmtNumber(byKey.get(k)?.[mk] ?? 0))]),
        { id: 'usage-table' },
      ),
    );
  };
  const load = async () => {
    const r = RANGES[range.value] as (typeof RANGES)[string];
    const step = r.by === 'hour' ? 3_600_000 : 86_400_000;
    const end = Math.floor(Date.now() / step) * step + step;
    const start = end - Math.ceil((r.hours * 3_600_000) / step) * step;
    keys = [];
    for (let t = start; t < end; t += step) keys.push(r.by === 'hour' ? new Date(t).toISOString() : new Date(t).toISOString().slice(0, 10));
    try {
      const res = await ctx.api.get<{ items: UsageItem[] }>(`${M}/usage`, {
        from: new Date(start).toISOString(),
        to: new Date(end).toISOString(),
        group_by: r.by,
      });
      items = res.items;
      draw();
    } catch (err) {
      replace(out, problem(err, 'see usage'));
    }
  };
  range.addEventListener('change', () => void load());
  metric.addEventListener('change', draw);
  void load();
}

const SVG = 'http://www.w3.org/2000/svg';
function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Bars, one per hour or day, with a y axis of three gridlines and every few x labels. */
function chart(keys: string[], values: number[], by: 'hour' | 'day', unit: string): SVGSVGElement {
  const W = 900;
  const H = 260;
  const pad = { l: 70, r: 10, t: 20, b: 40 };
  const max = Math.max(...values, 0);
  const top = max > 0 ? niceCeil(max) : 1;
  const cw = (W - pad.l - pad.r) / Math.max(keys.length, 1);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${unit} per ${by}` });
  for (let i = 0; i <= 3; i++) {
    const y = pad.t + ((H - pad.t - pad.b) * i) / 3;
    svg.append(s('line', { x1: pad.l, x2: W - pad.r, y1: y, y2: y, class: 'grid' }));
    svg.append(s('text', { x: pad.l - 6, y: y + 4, 'text-anchor': 'end', class: 'axis' }, fmtNumber((top * (3 - i)) / 3)));
  }
  const every = Math.ceil(keys.length / 12);
  keys.forEach((k, i) => {
    const v = values[i] ?? 0;
    const bh = ((H - pad.t - pad.b) * v) / top;
    const x = pad.l + i * cw;
    const rect = s('rect', { x: x + cw * 0.1, y: H - pad.b - bh, width: cw * 0.8, height: Math.max(bh, v > 0 ? 1 : 0), class: 'barv' });
    rect.append(s('title', {}, `${k}: ${fmtNumber(v)} ${unit}`));
    svg.append(rect);
    if (i % every === 0) {
      const label = by === 'hour' ? `${k.slice(11, 13)}h` : k.slice(5);
      svg.append(s('text', { x: x + cw / 2, y: H - pad.b + 16, 'text-anchor': 'middle', class: 'axis' }, label));
    }
  });
  svg.append(s('text', { x: pad.l, y: 12, class: 'axis' }, `${unit} per ${by} (UTC)`));
  return svg;
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
