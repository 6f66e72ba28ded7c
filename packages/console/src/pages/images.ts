import { type Image, M } from '../api.js';
import { type Ctx, problem } from '../app.js';
import { bar, fmtBytes, fmtTime, h, poll, replace, stateBadge, table } from '../dom.js';

const SEVERITIES = ['critical', 'high', 'medium', 'low', 'unknown'] as const;

/** Images the tenant can use: bake progress while baking, the scan's findings once scanned. */
export function imagesPage(ctx: Ctx, root: HTMLElement): void {
  const list = h('div', { id: 'image-list' });
  root.append(h('div', { class: 'toolbar' }, h('h1', 'Images')), list);
  const load = async () => {
    try {
      const { items } = await ctx.api.get<{ items: Image[] }>(`${M}/images`);
      replace(
        list,
        table(
          ['name', 'scope', 'state', 'size', 'scan', 'registered'],
          items.map((i) => [
            h('div', h('strong', i.name), h('div', { class: 'mono muted' }, i.id)),
            i.scope,
            h('div', stateBadge(i.state), progressOf(i), i.failure ? h('div', { class: 'problem small' }, i.failure) : null),
            fmtBytes(i.size_bytes),
            scanOf(i),
            fmtTime(i.created_at),
          ]),
          { id: 'images-table' },
        ),
      );
    } catch (err) {
      replace(list, problem(err, 'list the images'));
    }
  };
  ctx.onLeave(poll(3000, load));
}

function progressOf(i: Image): HTMLElement | null {
  const p = i.progress;
  if (!p || (i.state !== 'baking' && i.state !== 'pending')) return null;
  const label = `${p.phase}${p.done !== undefined && p.total ? ` ${fmtBytes(p.done)} / ${fmtBytes(p.total)}` : ''}${p.detail ? ` · ${p.detail}` : ''}`;
  return p.total ? bar(p.done ?? 0, p.total, label) : h('div', { class: 'muted' }, label);
}

function scanOf(i: Image): HTMLElement | string {
  const s = i.scan;
  if (!s) return '—';
  if (s.state !== 'done') return h('span', stateBadge(s.state), s.error ? ` ${s.error}` : '');
  const counts = s.counts;
  const total = counts ? SEVERITIES.reduce((n, k) => n + counts[k], 0) : 0;
  return h(
    'details',
    { class: 'scan' },
    h(
      'summary',
      total === 0
        ? h('span', { class: 'ok' }, 'no findings')
        : SEVERITIES.filter((k) => counts?.[k]).map((k) => h('span', { class: `sev sev-${k}` }, `${counts?.[k]} ${k}`)),
      h('span', { class: 'muted' }, ` · ${s.packages ?? 0} packages · ${s.scanner ?? ''} · ${fmtTime(s.scanned_at)}`),
    ),
    s.note ? h('p', { class: 'muted' }, s.note) : null,
    s.vulnerabilities.length
      ? table(
          ['id', 'package', 'installed', 'fixed', 'severity'],
          s.vulnerabilities.map((v) => [
            h('code', v.id),
            `${v.package} (${v.ecosystem})`,
            v.installed,
            v.fixed ?? '—',
            v.severity ?? 'unknown',
          ]),
        )
      : null,
  );
}
