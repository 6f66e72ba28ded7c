import { type AuditEvent, type Bunker, ENDED_STATES, type ExecLog, type FileStat, M, type Page, type Snapshot } from '../api.js';
import { act, type Ctx, problem } from '../app.js';
import { fmtAge, fmtBytes, fmtTime, h, poll, replace, stateBadge, table } from '../dom.js';
import { openTerminal, type TerminalSession, terminalMount } from '../terminal.js';

const TABS: Array<[string, string]> = [
  ['files', 'Files'],
  ['terminal', 'Terminal'],
  ['exec-log', 'Exec log'],
  ['snapshots', 'Snapshots'],
  ['audit', 'Audit events'],
];

/** One bunker: its properties (live), and a tab for its files, a terminal, exec log, snapshots, audit events. */
export async function bunkerPage(ctx: Ctx, root: HTMLElement, params: string[]): Promise<void> {
  const id = params[0] as string;
  const tab = TABS.some(([t]) => t === params[1]) ? (params[1] as string) : 'files';
  const props = h('div', { id: 'bunker-props' });
  const actions = h('div');
  const body = h('div', { id: `tab-${tab}`, class: 'tab-body' });
  const terminate = h('button', { id: 'terminate', class: 'danger' }, 'Terminate');
  root.append(
    h(
      'div',
      { class: 'toolbar' },
      h('a', { href: '#/bunkers' }, '← Bunkers'),
      h('h1', { class: 'mono' }, id),
      h('span', { class: 'spacer' }),
      terminate,
    ),
    actions,
    props,
    h(
      'div',
      { class: 'tabs', role: 'tablist' },
      ...TABS.map(([t, label]) =>
        h('a', { href: `#/bunkers/${id}/${t}`, class: t === tab ? 'active' : '', role: 'tab', 'data-tab': t }, label),
      ),
    ),
    body,
  );

  let bunker: Bunker | undefined;
  let terminal: TerminalSession | undefined;
  const load = async () => {
    try {
      bunker = await ctx.api.get<Bunker>(`${M}/bunkers/${id}`);
      drawProps(props, bunker);
      terminate.hidden = ENDED_STATES.includes(bunker.state);
      if (ENDED_STATES.includes(bunker.state)) terminal?.bunkerEnded(bunker.state);
    } catch (err) {
      replace(props, problem(err, 'see this bunker'));
    }
  };
  terminate.addEventListener('click', () => {
    if (!confirm(`Terminate ${id}?`)) return;
    void act(terminate, actions, 'terminate this bunker', async () => {
      bunker = await ctx.api.del<Bunker>(`${M}/bunkers/${id}`);
      drawProps(props, bunker);
      terminate.hidden = true;
      terminal?.bunkerEnded(bunker.state);
    });
  });
  ctx.onLeave(poll(3000, load));

  if (tab === 'files') filesTab(ctx, id, body);
  else if (tab === 'terminal') {
    const { mount, status, box } = terminalMount();
    body.append(
      h('p', { class: 'muted' }, 'A login shell in the bunker. It closes when you leave this tab; the shell is killed a minute later.'),
      box,
    );
    const session = await openTerminal(ctx, id, mount, status, async () => {
      const b = await ctx.api.get<Bunker>(`${M}/bunkers/${id}`);
      return ENDED_STATES.includes(b.state) ? b.state : null;
    });
    terminal = session;
    ctx.onLeave(() => session.dispose());
    if (bunker && ENDED_STATES.includes(bunker.state)) session.bunkerEnded(bunker.state);
  } else if (tab === 'exec-log') execLogTab(ctx, id, body);
  else if (tab === 'snapshots') snapshotsTab(ctx, id, body);
  else auditTab(ctx, id, body);
}

function drawProps(el: HTMLElement, b: Bunker): void {
  const row = (k: string, v: unknown) => [h('dt', k), h('dd', v as Node | string)];
  replace(
    el,
    h(
      'dl',
      { class: 'props' },
      row('state', h('span', stateBadge(b.state), b.termination_reason ? ` ${b.termination_reason}` : '')),
      row('image', b.image),
      row('isolation', b.isolation),
      row('lifecycle', b.lifecycle),
      row('network', b.network_profile),
      row('CPU', `${b.cpu_millicores} m`),
      row('memory', `${b.memory_mb} MB`),
      row('disk', `${b.disk_mb} MB`),
      row('worker', b.worker_id ? `${b.worker_id}${b.worker_reachable ? '' : ' (unreachable)'}` : '—'),
      row('created', `${fmtTime(b.created_at)} (${fmtAge(b.created_at)} ago)`),
      row('last activity', fmtTime(b.last_activity_at)),
      row('ended', fmtTime(b.ended_at)),
      row('labels', Object.entries(b.metadata).map(([k, v]) => h('span', { class: 'label' }, `${k}=${v}`)) as unknown as Node),
      b.snapshot_id ? row('from snapshot', b.snapshot_id) : null,
    ),
  );
}

function joinPath(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

/** A directory listing with navigation, upload (streamed PUT), download (fetched with the key) and delete. */
function filesTab(ctx: Ctx, id: string, body: HTMLElement): void {
  let cwd = '/';
  const path = h('input', { id: 'files-path', value: cwd, 'aria-label': 'directory' });
  const upload = h('input', { id: 'files-upload', type: 'file', multiple: true });
  const status = h('div', { id: 'files-status' });
  const list = h('div', { id: 'files-list' });
  const go = (dir: string) => {
    cwd = dir || '/';
    path.value = cwd;
    void load();
  };
  const load = async () => {
    try {
      const r = await ctx.api.get<{ items: FileStat[] }>(`${M}/bunkers/${id}/files/list`, { path: cwd });
      status.replaceChildren();
      const items = [...r.items].sort((a, b) => Number(b.type === 'dir') - Number(a.type === 'dir') || a.name.localeCompare(b.name));
      replace(
        list,
        table(
          ['name', 'size', 'mode', 'modified', ''],
          items.map((f) => [
            f.type === 'dir'
              ? h(
                  'a',
                  { href: '#', 'data-dir': f.name, onclick: (e: Event) => (e.preventDefault(), go(joinPath(cwd, f.name))) },
                  `${f.name}/`,
                )
              : h('span', { 'data-file': f.name }, f.name, f.link_target ? h('span', { class: 'muted' }, ` → ${f.link_target}`) : null),
            f.type === 'dir' ? '' : fmtBytes(f.size),
            h('span', { class: 'mono' }, f.mode),
            fmtTime(f.mtime),
            h(
              'span',
              { class: 'row-actions' },
              f.type === 'file'
                ? h('button', { class: 'small', onclick: () => void download(ctx, id, joinPath(cwd, f.name), f.name, status) }, 'Download')
                : null,
              h(
                'button',
                {
                  class: 'small danger',
                  onclick: (e: Event) => {
                    if (!confirm(`Delete ${joinPath(cwd, f.name)}?`)) return;
                    void act(e.currentTarget as HTMLButtonElement, status, `delete ${f.name}`, async () => {
                      await ctx.api.del(`${M}/bunkers/${id}/files`, {
                        path: joinPath(cwd, f.name),
                        recursive: f.type === 'dir' || undefined,
                      });
                      await load();
                    });
                  },
                },
                'Delete',
              ),
            ),
          ]),
          { id: 'files-table' },
        ),
      );
    } catch (err) {
      list.replaceChildren();
      replace(status, problem(err, `list ${cwd}`));
    }
  };
  upload.addEventListener('change', () => {
    const files = [...(upload.files ?? [])];
    void act(null, status, 'upload', async () => {
      for (const file of files) {
        status.replaceChildren(h('span', { class: 'muted' }, `uploading ${file.name} (${fmtBytes(file.size)})…`));
        await ctx.api.raw('PUT', `${M}/bunkers/${id}/files`, {
          query: { path: joinPath(cwd, file.name) },
          body: file,
          type: 'application/octet-stream',
        });
      }
      upload.value = '';
      status.replaceChildren(h('span', { class: 'ok', id: 'upload-done' }, `uploaded ${files.map((f) => f.name).join(', ')}`));
      await load();
    });
  });
  path.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') go(path.value.trim());
  });
  body.append(
    h(
      'div',
      { class: 'filters' },
      h('button', { onclick: () => go(cwd.replace(/\/[^/]*\/?$/, '') || '/') }, '↑ Up'),
      path,
      h('button', { id: 'files-go', onclick: () => go(path.value.trim()) }, 'Open'),
      h('label', { class: 'upload' }, 'Upload to this directory: ', upload),
    ),
    status,
    list,
  );
  void load();
}

async function download(ctx: Ctx, id: string, path: string, name: string, status: HTMLElement): Promise<void> {
  await act(null, status, `download ${path}`, async () => {
    const res = await ctx.api.raw('GET', `${M}/bunkers/${id}/files`, { query: { path } });
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
}

/** The exec log (newest first, more on demand), and a box to run one command. */
function execLogTab(ctx: Ctx, id: string, body: HTMLElement): void {
  const command = h('input', { id: 'exec-command', placeholder: 'a command, run by /bin/sh -c', class: 'grow' });
  const result = h('div', { id: 'exec-result' });
  const list = h('div', { id: 'exec-log' });
  const more = h('button', { hidden: true }, 'More');
  let rows: ExecLog[] = [];
  let cursor: string | null = null;
  const draw = () =>
    replace(
      list,
      table(
        ['started', 'command', 'exit', 'duration', 'caller', 'output'],
        rows.map((e) => [
          fmtTime(e.started_at),
          h('code', e.command),
          e.timed_out ? 'timed out' : e.signal ? e.signal : e.exit_code === null ? (e.finished_at ? '—' : 'running') : String(e.exit_code),
          e.duration_ms === null ? '—' : `${e.duration_ms} ms`,
          h('span', { class: 'mono' }, e.caller),
          e.stdout_preview || e.stderr_preview
            ? h(
                'details',
                h('summary', 'output'),
                e.stdout_preview ? h('pre', e.stdout_preview) : null,
                e.stderr_preview ? h('pre', { class: 'stderr' }, e.stderr_preview) : null,
                e.truncated ? h('p', { class: 'muted' }, 'truncated: the full output is stored') : null,
              )
            : '',
        ]),
        { id: 'exec-log-table' },
      ),
    );
  const load = async (append = false) => {
    try {
      const page = await ctx.api.get<Page<ExecLog>>(`${M}/bunkers/${id}/exec-logs`, { limit: 50, cursor: append ? cursor : undefined });
      rows = append ? [...rows, ...page.items] : page.items;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      draw();
    } catch (err) {
      replace(list, problem(err, 'read the exec log'));
    }
  };
  more.addEventListener('click', () => void load(true));
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const form = h('form', { class: 'filters' }, command, run);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    void act(run, result, 'run the command', async () => {
      const r = await ctx.api.post<{ exit_code: number | null; stdout: string; stderr: string; duration_ms: number }>(
        `${M}/bunkers/${id}/exec`,
        {
          command: command.value,
        },
      );
      replace(
        result,
        h(
          'div',
          { class: 'card' },
          `exit ${r.exit_code ?? '—'} in ${r.duration_ms} ms`,
          h('pre', r.stdout),
          r.stderr ? h('pre', { class: 'stderr' }, r.stderr) : null,
        ),
      );
      await load();
    });
  });
  body.append(form, result, h('button', { onclick: () => void load() }, 'Refresh'), list, more);
  void load();
}

/** The bunker's snapshots; take one (202, then `creating` until `ready`). */
function snapshotsTab(ctx: Ctx, id: string, body: HTMLElement): void {
  const name = h('input', { id: 'snapshot-name', placeholder: 'name (optional)' });
  const take = h('button', { id: 'take-snapshot', class: 'primary' }, 'Take snapshot');
  const status = h('div');
  const list = h('div', { id: 'snapshot-list' });
  const load = async () => {
    try {
      const page = await ctx.api.get<Page<Snapshot>>(`${M}/snapshots`, { bunker_id: id, limit: 100 });
      replace(
        list,
        table(
          ['id', 'name', 'state', 'source', 'size', 'taken', 'expires'],
          page.items.map((s) => [
            h('span', { class: 'mono' }, s.id),
            s.name ?? '—',
            [stateBadge(s.state), s.error ? h('span', { class: 'muted' }, ` ${s.error}`) : null],
            s.source,
            fmtBytes(s.size_bytes),
            fmtTime(s.created_at),
            fmtTime(s.expires_at),
          ]),
          { id: 'snapshots-table' },
        ),
      );
    } catch (err) {
      replace(list, problem(err, "list this bunker's snapshots"));
    }
  };
  take.addEventListener('click', () => {
    void act(take, status, 'take a snapshot', async () => {
      await ctx.api.post(`${M}/bunkers/${id}/snapshots`, name.value.trim() ? { name: name.value.trim() } : {});
      name.value = '';
      await load();
    });
  });
  body.append(h('div', { class: 'filters' }, name, take), status, list);
  ctx.onLeave(poll(3000, load));
}

/** The audit events of this bunker (needs `scaibunker:audit:read`). */
function auditTab(ctx: Ctx, id: string, body: HTMLElement): void {
  const list = h('div', { id: 'bunker-audit' });
  body.append(list);
  void ctx.api
    .get<Page<AuditEvent>>(`${M}/audit-events`, { bunker_id: id, limit: 100 })
    .then((page) =>
      replace(
        list,
        table(
          ['when', 'action', 'actor', 'target', 'details'],
          page.items.map((e) => [
            fmtTime(e.created_at),
            h('code', e.action),
            h('span', { class: 'mono' }, e.actor),
            `${e.target_type} ${e.target_id}`,
            h('code', { class: 'details' }, JSON.stringify(e.details)),
          ]),
          { id: 'bunker-audit-table' },
        ),
      ),
    )
    .catch((err) => replace(list, problem(err, "read this bunker's audit events")));
}
