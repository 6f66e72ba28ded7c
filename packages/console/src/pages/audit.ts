import { type AuditEvent, M, type Page } from '../api.js';
import { type Ctx, problem } from '../app.js';
import { fmtTime, h, replace, table } from '../dom.js';

/** The tenant's audit trail (`scaibunker:audit:read`), newest first, filtered and paged. */
export function auditPage(ctx: Ctx, root: HTMLElement): void {
  const action = h('input', { id: 'audit-action', placeholder: 'action (exec.run, file.write, …)' });
  const bunker = h('input', { id: 'audit-bunker', placeholder: 'bunker id (bk_…)' });
  const actor = h('input', { id: 'audit-actor', placeholder: 'actor (key:ak_…)' });
  const list = h('div', { id: 'audit-list' });
  const more = h('button', { hidden: true }, 'More');
  let rows: AuditEvent[] = [];
  let cursor: string | null = null;
  const load = async (append = false) => {
    try {
      const page = await ctx.api.get<Page<AuditEvent>>(`${M}/audit-events`, {
        limit: 50,
        action: action.value.trim(),
        bunker_id: bunker.value.trim(),
        actor: actor.value.trim(),
        cursor: append ? cursor : undefined,
      });
      rows = append ? [...rows, ...page.items] : page.items;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      replace(
        list,
        table(
          ['when', 'action', 'actor', 'target', 'bunker', 'details'],
          rows.map((e) => [
            fmtTime(e.created_at),
            h('code', e.action),
            h('span', { class: 'mono' }, e.actor),
            `${e.target_type} ${e.target_id}`,
            e.bunker_id ? h('a', { href: `#/bunkers/${e.bunker_id}`, class: 'mono' }, e.bunker_id) : '—',
            h('code', { class: 'details' }, JSON.stringify(e.details)),
          ]),
          { id: 'audit-table' },
        ),
      );
    } catch (err) {
      more.hidden = true;
      replace(list, problem(err, 'read the audit trail'));
    }
  };
  const form = h('form', { class: 'filters' }, action, bunker, actor, h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void load();
  });
  more.addEventListener('click', () => void load(true));
  root.append(h('div', { class: 'toolbar' }, h('h1', 'Audit events')), form, list, more);
  void load();
}
