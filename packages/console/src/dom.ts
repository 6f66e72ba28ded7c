/** A few DOM helpers: elements are built from text nodes, never from HTML strings, so nothing the API answers is parsed as markup. */

export type Child = Node | string | number | null | undefined | false | Child[];
type Props = Record<string, unknown>;

function isProps(x: unknown): x is Props {
  return typeof x === 'object' && x !== null && !(x instanceof Node) && !Array.isArray(x);
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, ...c);
    else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** `h('button', {class: 'x', onclick: fn}, 'text', child…)` */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | Child, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (isProps(props)) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
      else if (k === 'value' || k === 'checked') (el as unknown as Record<string, unknown>)[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  } else {
    append(el, props as Child);
  }
  append(el, ...children);
  return el;
}

export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A table from rows; `head` are the column titles. */
export function table(head: string[], rows: Child[][], attrs: Props = {}): HTMLTableElement {
  return h(
    'table',
    attrs,
    h('thead', h('tr', ...head.map((t) => h('th', t)))),
    h(
      'tbody',
      rows.length === 0 ? h('tr', h('td', { colspan: String(head.length), class: 'empty' }, 'nothing here')) : null,
      ...rows.map((r) => h('tr', ...r.map((c) => h('td', c)))),
    ),
  );
}

/** A horizontal bar: `value` of `max` (null: no cap). */
export function bar(value: number, max: number | null, label: string): HTMLElement {
  const pct = max === null || max <= 0 ? 0 : Math.min(100, (value / max) * 100);
  const over = max !== null && value > max;
  return h(
    'div',
    { class: `bar${over ? ' over' : ''}${max === null ? ' uncapped' : ''}`, title: label },
    h('div', { class: 'fill', style: `width:${pct.toFixed(1)}%` }),
    h('span', label),
  );
}

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function fmtAge(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '—';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString();
}

export function fmtNumber(n: number, digits = 1): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

/** Runs `fn` now and again `ms` after each run ends, until the returned stop is called. */
export function poll(ms: number, fn: () => Promise<void>): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async () => {
    try {
      await fn();
    } finally {
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  void run();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

export function stateBadge(state: string): HTMLElement {
  return h('span', { class: `state state-${state}` }, state);
}
