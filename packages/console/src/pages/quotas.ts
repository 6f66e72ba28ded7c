import { M, type QuotaUsage } from '../api.js';
import { type Ctx, problem } from '../app.js';
import { bar, fmtBytes, h, poll, replace } from '../dom.js';

const RESOURCES: Array<[string, string]> = [
  ['bunkers', 'bunkers'],
  ['cpu_millicores', 'CPU (m)'],
  ['memory_mb', 'memory (MB)'],
  ['disk_mb', 'disk (MB)'],
  ['gpu_count', 'GPUs'],
];

/** The tenant-wide byte counters (stored exec output, snapshots) against their caps. */
function tenantWide(usage: QuotaUsage): HTMLElement | null {
  const rows = (
    [
      ['stored exec output', usage.stored_output_bytes],
      ['snapshots', usage.snapshot_bytes],
    ] as const
  ).filter(([, r]) => r);
  if (rows.length === 0) return null;
  return h(
    'section',
    { class: 'card quota', 'data-bucket': 'tenant' },
    h('h2', 'tenant-wide storage'),
    h(
      'div',
      { class: 'quota-bars' },
      ...rows.map(([label, r]) =>
        h(
          'div',
          { class: 'quota-row' },
          h('span', label),
          bar(
            r?.current ?? 0,
            r?.cap ?? null,
            r?.cap == null ? `${fmtBytes(r?.current)} (no cap)` : `${fmtBytes(r.current)} / ${fmtBytes(r.cap)}`,
          ),
        ),
      ),
    ),
  );
}

/** Quota usage per bucket: current against the strictest cap (`GET /quota-profiles/usage`). */
export function quotasPage(ctx: Ctx, root: HTMLElement): void {
  const list = h('div', { id: 'quota-list' });
  root.append(
    h('div', { class: 'toolbar' }, h('h1', 'Quotas')),
    h(
      'p',
      { class: 'muted' },
      'The buckets that apply to your key (tenant admins: every bucket of the tenant). A bar without a cap is counted but unlimited.',
    ),
    list,
  );
  const load = async () => {
    try {
      const usage = await ctx.api.get<QuotaUsage>(`${M}/quota-profiles/usage`);
      replace(
        list,
        usage.items.length === 0 ? h('p', { class: 'card empty' }, 'No quota profile applies to this key: nothing is counted.') : null,
        ...usage.items.map((item) =>
          h(
            'section',
            { class: 'card quota', 'data-bucket': item.bucket.id },
            h('h2', `${item.bucket.kind} `, h('code', item.bucket.id)),
            h('p', { class: 'muted' }, `profiles: ${item.profile_ids.join(', ') || '—'}`),
            h(
              'div',
              { class: 'quota-bars' },
              ...RESOURCES.map(([key, label]) => {
                const r = item.resources[key];
                if (!r) return null;
                return h(
                  'div',
                  { class: 'quota-row' },
                  h('span', label),
                  bar(r.current, r.cap, r.cap === null ? `${r.current} (no cap)` : `${r.current} / ${r.cap}`),
                );
              }),
            ),
          ),
        ),
        tenantWide(usage),
      );
    } catch (err) {
      replace(list, problem(err, 'see quota usage'));
    }
  };
  ctx.onLeave(poll(5000, load));
}
