import { type Bunker, DASHBOARD_BUNKERS, ENDED_STATES, type Image, M, type Page } from '../api.js';
import { act, type Ctx, problem } from '../app.js';
import { fmtAge, h, poll, replace, stateBadge, table } from '../dom.js';

const STATES = ['', 'pending', 'provisioning', 'running', 'paused', 'snapshotting', 'terminated', 'failed'];

/** The tenant's bunkers, live (polling the dashboard list), with filters, a create dialog and terminate. */
export function bunkersPage(ctx: Ctx, root: HTMLElement): void {
  const state = h(
    'select',
    { id: 'filter-state', 'aria-label': 'state' },
    ...STATES.map((s) => h('option', { value: s }, s || 'any state')),
  );
  const label = h('input', { id: 'filter-label', placeholder: 'label: key=value', 'aria-label': 'label filter' });
  const text = h('input', { id: 'filter-text', placeholder: 'id or image contains…', 'aria-label': 'text filter' });
  const showEnded = h('input', { id: 'filter-ended', type: 'checkbox' });
  const status = h('div', { class: 'status' });
  const list = h('div', { id: 'bunker-list' });
  const actions = h('div');
  const createButton = h(
    'button',
    { id: 'create-bunker', class: 'primary', onclick: () => openCreate(ctx, () => void refresh()) },
    'Create bunker…',
  );

  root.append(
    h('div', { class: 'toolbar' }, h('h1', 'Bunkers'), h('span', { class: 'spacer' }), createButton),
    h(
      'div',
      { class: 'filters' },
      state,
      label,
      text,
      h('label', showEnded, ' show ended'),
      h('span', { class: 'muted' }, 'live: refreshed every 2 s'),
    ),
    actions,
    status,
    list,
  );

  let bunkers: Bunker[] = [];
  const draw = () => {
    const t = text.value.trim().toLowerCase();
    const now = Date.now();
    const shown = bunkers.filter(
      (b) =>
        (showEnded.checked || state.value !== '' || !ENDED_STATES.includes(b.state)) &&
        (!t || b.id.toLowerCase().includes(t) || b.image.toLowerCase().includes(t)),
    );
    replace(
      list,
      table(
        ['id', 'state', 'image', 'isolation', 'age', 'labels', ''],
        shown.map((b) => [
          h('a', { href: `#/bunkers/${b.id}`, class: 'mono' }, b.id),
          [stateBadge(b.state), b.worker_reachable ? null : h('span', { class: 'warn', title: 'its worker is unreachable' }, ' ⚠')],
          b.image,
          b.isolation,
          h('span', { title: b.created_at }, fmtAge(b.created_at, now)),
          Object.entries(b.metadata).map(([k, v]) => h('span', { class: 'label' }, `${k}=${v}`)),
          ENDED_STATES.includes(b.state)
            ? null
            : h(
                'button',
                {
                  class: 'danger small',
                  'data-terminate': b.id,
                  onclick: (e: Event) => {
                    if (!confirm(`Terminate ${b.id}?`)) return;
                    void act(e.currentTarget as HTMLButtonElement, actions, `terminate ${b.id}`, async () => {
                      await ctx.api.del(`${M}/bunkers/${b.id}`);
                      await refresh();
                    });
                  },
                },
                'Terminate',
              ),
        ]),
        { id: 'bunkers-table' },
      ),
    );
  };
  const refresh = async () => {
    const labelFilter = label.value.trim();
    try {
      const page = await ctx.api.get<Page<Bunker>>(DASHBOARD_BUNKERS, {
        limit: 200,
        state: state.value || undefined,
        label: labelFilter ? [labelFilter] : undefined,
      });
      bunkers = page.items;
      status.replaceChildren();
      draw();
    } catch (err) {
      bunkers = [];
      list.replaceChildren();
      replace(status, problem(err, 'list the bunkers'));
    }
  };
  for (const el of [state, label, showEnded]) el.addEventListener('change', () => void refresh());
  text.addEventListener('input', draw);
  ctx.onLeave(poll(2000, refresh));
}

/** The create dialog: the common fields of `POST /bunkers`; the API's refusal is shown in it. */
function openCreate(ctx: Ctx, created: () => void): void {
  const image = h('input', { id: 'create-image', name: 'image', list: 'create-images', value: 'minimal', required: true });
  const images = h('datalist', { id: 'create-images' });
  void ctx.api
    .get<{ items: Image[] }>(`${M}/images`)
    .then((r) => replace(images, ...r.items.filter((i) => i.state === 'ready').map((i) => h('option', { value: i.name }))))
    .catch(() => undefined);
  const select = (id: string, values: string[]) => h('select', { id }, ...values.map((v) => h('option', { value: v }, v)));
  const isolation = select('create-isolation', ['container', 'microvm']);
  const lifecycle = select('create-lifecycle', ['ephemeral', 'session', 'persistent']);
  const network = select('create-network', ['isolated', 'registry', 'unrestricted']);
  const num = (id: string, value: number, min: number) => h('input', { id, type: 'number', value: String(value), min: String(min) });
  const cpu = num('create-cpu', 1000, 100);
  const memory = num('create-memory', 512, 32);
  const disk = num('create-disk', 1024, 16);
  const labels = h('textarea', { id: 'create-labels', rows: '2', placeholder: 'key=value, one a line' });
  const error = h('div', { id: 'create-error' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create');
  const row = (text: string, input: HTMLElement) => h('label', { class: 'row' }, h('span', text), input);
  const form = h(
    'form',
    { method: 'dialog' },
    h('h2', 'Create a bunker'),
    row('image', image),
    images,
    row('isolation', isolation),
    row('lifecycle', lifecycle),
    row('network', network),
    row('CPU (millicores)', cpu),
    row('memory (MB)', memory),
    row('disk (MB)', disk),
    row('labels', labels),
    error,
    h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), submit),
  );
  const dialog = h('dialog', { id: 'create-dialog' }, form);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const metadata: Record<string, string> = {};
    for (const line of labels.value.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) metadata[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    void act(submit, error, 'create the bunker', async () => {
      submit.textContent = 'Creating…';
      try {
        const b = await ctx.api.post<Bunker>(`${M}/bunkers`, {
          image: image.value.trim(),
          isolation: isolation.value,
          lifecycle: lifecycle.value,
          network_profile: network.value,
          cpu_millicores: Number(cpu.value),
          memory_mb: Number(memory.value),
          disk_mb: Number(disk.value),
          ...(Object.keys(metadata).length ? { metadata } : {}),
        });
        dialog.close();
        created();
        ctx.go(`#/bunkers/${b.id}`);
      } finally {
        submit.textContent = 'Create';
      }
    });
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
