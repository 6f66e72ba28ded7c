import '@xterm/xterm/css/xterm.css';
import './console.css';
import { Api, ApiFailure, checkKey } from './api.js';
import type { Ctx, PageFn } from './app.js';
import { h, replace } from './dom.js';
import { auditPage } from './pages/audit.js';
import { bunkerPage } from './pages/bunker.js';
import { bunkersPage } from './pages/bunkers.js';
import { imagesPage } from './pages/images.js';
import { quotasPage } from './pages/quotas.js';
import { usagePage } from './pages/usage.js';
import { workersPage } from './pages/workers.js';

/** The key lives in this tab's sessionStorage only (gone when the tab closes); never in a URL. */
const KEY_SLOT = 'scaibunker.console.key';

const NAV: Array<[string, string]> = [
  ['bunkers', 'Bunkers'],
  ['workers', 'Workers'],
  ['images', 'Images'],
  ['quotas', 'Quotas'],
  ['usage', 'Usage'],
  ['audit', 'Audit'],
];

/** `#/bunkers/bk_…` → the page and its parameters. */
function route(hash: string): { page: PageFn; name: string; params: string[] } {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [name = 'bunkers', ...params] = parts;
  if (name === 'bunkers' && params[0]) return { page: bunkerPage, name, params };
  const pages: Record<string, PageFn> = {
    bunkers: bunkersPage,
    workers: workersPage,
    images: imagesPage,
    quotas: quotasPage,
    usage: usagePage,
    audit: auditPage,
  };
  return { page: pages[name] ?? bunkersPage, name: pages[name] ? name : 'bunkers', params };
}

const app = document.getElementById('app') as HTMLElement;
const leave: Array<() => void> = [];

function leavePage(): void {
  for (const fn of leave.splice(0)) {
    try {
      fn();
    } catch {
      // a page's clean-up never blocks the next page
    }
  }
}

function signOut(reason?: string): void {
  sessionStorage.removeItem(KEY_SLOT);
  leavePage();
  showSignIn(reason);
}

function showSignIn(notice?: string): void {
  document.title = 'Sign in · ScaiBunker console';
  const input = h('input', {
    id: 'api-key',
    name: 'api-key',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'sbk_…',
    required: true,
  });
  const error = h('div', { id: 'signin-error', role: 'alert' });
  if (notice) error.append(h('div', { class: 'problem' }, notice));
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { id: 'signin', class: 'card signin', autocomplete: 'off' },
    h('h1', 'ScaiBunker console'),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    h(
      'p',
      { class: 'muted' },
      'The key stays in this browser tab (session storage) and is sent only as an Authorization header to this server. You see what the key may see.',
    ),
    button,
    error,
  );
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    button.disabled = true;
    error.replaceChildren();
    try {
      await checkKey(key);
      sessionStorage.setItem(KEY_SLOT, key);
      input.value = '';
      if (!location.hash || location.hash === '#/') location.hash = '#/bunkers';
      render();
    } catch (err) {
      const f = err instanceof ApiFailure ? err : undefined;
      error.replaceChildren(
        h(
          'div',
          { class: 'problem', 'data-code': f?.code ?? 'ERROR' },
          f?.status === 401
            ? [
                h('strong', 'That API key was not accepted. '),
                'Check that you pasted the whole key (sbk_…) and that it has not been revoked.',
              ]
            : [h('strong', 'Could not sign in. '), f ? `${f.code}: ${f.message}` : String(err)],
        ),
      );
    } finally {
      button.disabled = false;
    }
  });
  replace(app, h('main', { class: 'center' }, form));
  input.focus();
}

function render(): void {
  const key = sessionStorage.getItem(KEY_SLOT);
  if (!key) {
    showSignIn();
    return;
  }
  leavePage();
  const api = new Api(key, () => signOut('The server no longer accepts this API key (401): sign in again.'));
  const { page, name, params } = route(location.hash);
  const main = h('main', { id: 'page', 'data-page': name });
  const nav = h(
    'nav',
    h('a', { class: 'brand', href: '#/bunkers' }, 'ScaiBunker'),
    ...NAV.map(([id, label]) => h('a', { href: `#/${id}`, class: id === name ? 'active' : '' }, label)),
    h('span', { class: 'spacer' }),
    h('button', { id: 'sign-out', onclick: () => signOut() }, 'Sign out'),
  );
  replace(app, h('header', nav), main);
  const ctx: Ctx = {
    api,
    go: (r) => {
      location.hash = r;
    },
    onLeave: (fn) => leave.push(fn),
  };
  document.title = `${NAV.find(([id]) => id === name)?.[1] ?? 'Bunker'} · ScaiBunker console`;
  Promise.resolve(page(ctx, main, params)).catch((err) => main.append(h('div', { class: 'problem' }, String(err))));
}

window.addEventListener('hashchange', render);
render();
