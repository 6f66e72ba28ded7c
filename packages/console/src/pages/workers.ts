import { type Bunker, DASHBOARD_BUNKERS, ENDED_STATES, M, type Page, type Worker } from '../api.js';
import { act, type Ctx, problem } from '../app.js';
import { bar, fmtAge, h, poll, replace, stateBadge, table } from '../dom.js';

/** Workers (platform admins: `scaibunker:admin`): capacity against allocation, bunkers, drain and resume. */
export function workersPage(ctx: Ctx, root: HTMLElement): void {
  const status = h('div');
  const list = h('div', { id: 'worker-list' });
  root.append(
    h('div', { class: 'toolbar' }, h('h1', 'Workers')),
    h('p', { class: 'muted' }, 'Platform admins only. A drained worker keeps its bunkers but takes no new ones.'),
    status,
    list,
  );
  const load = async () => {
    let workers: Worker[];
    try {
      workers = (await ctx.api.get<{ items: Worker[] }>(`${M}/workers`)).items;
    } catch (err) {
      list.replaceChildren();
      replace(status, problem(err, 'see the workers'));
      return;
    }
    // The bunkers this key can see, by worker (a platform admin's own tenant; the count covers every tenant).
    const mine = new Map<string, string[]>();
    try {
      const page = await ctx.api.get<Page<Bunker>>(DASHBOARD_BUNKERS, { limit: 200 });
      for (const b of page.items) {
        if (!b.worker_id || ENDED_STATES.includes(b.state)) continue;
        mine.set(b.worker_id, [...(mine.get(b.worker_id) ?? []), b.id]);
      }
    } catch {
      // the list is a convenience here
    }
    const n = (x: number) => x.toLocaleString();
    replace(
      list,
      table(
        ['worker', 'state', 'CPU', 'memory', 'disk', 'bunkers', 'isolations', 'heartbeat', ''],
        workers.map((w) => [
          h('div', h('strong', w.name), h('div', { class: 'mono muted' }, w.id)),
          stateBadge(w.state),
          bar(
            w.allocated.cpu_millicores,
            w.capacity.cpu_millicores,
            `${n(w.allocated.cpu_millicores)} / ${n(w.capacity.cpu_millicores)} m`,
          ),
          bar(w.allocated.memory_mb, w.capacity.memory_mb, `${n(w.allocated.memory_mb)} / ${n(w.capacity.memory_mb)} MB`),
          bar(w.allocated.disk_mb, w.capacity.disk_mb, `${n(w.allocated.disk_mb)} / ${n(w.capacity.disk_mb)} MB`),
          h(
            'div',
            String(w.bunker_count),
            ...(mine.get(w.id) ?? []).map((id) => h('div', h('a', { href: `#/bunkers/${id}`, class: 'mono small' }, id))),
          ),
          `${w.isolations.join(', ')} · ${w.network_profiles.join(', ')}`,
          w.last_heartbeat_at ? `${fmtAge(w.last_heartbeat_at)} ago` : '—',
          w.state === 'draining'
            ? h(
                'button',
                {
                  'data-resume': w.id,
                  onclick: (e: Event) =>
                    void act(e.currentTarget as HTMLButtonElement, status, `resume ${w.name}`, async () => {
                      await ctx.api.post(`${M}/workers/${w.id}/resume`);
                      await load();
                    }),
                },
                'Resume',
              )
            : w.state === 'online'
              ? h(
                  'button',
                  {
                    'data-drain': w.id,
                    onclick: (e: Event) => {
                      if (!confirm(`Drain ${w.name}? It takes no new bunkers until resumed.`)) return;
                      void act(e.currentTarget as HTMLButtonElement, status, `drain ${w.name}`, async () => {
                        await ctx.api.post(`${M}/workers/${w.id}/drain`);
                        await load();
                      });
                    },
                  },
                  'Drain',
                )
              : null,
        ]),
        { id: 'workers-table' },
      ),
    );
  };
  ctx.onLeave(poll(5000, load));
}
