import { type Api, ApiFailure } from './api.js';
import { type Child, h } from './dom.js';

/** What a page gets: the API with the signed-in key, a way to explain failures, navigation, clean-up. */
export interface Ctx {
  api: Api;
  /** Navigate to a page of the console (`#/bunkers/bk_…`). */
  go(route: string): void;
  /** Runs when the page is left (stop polling, close a terminal). */
  onLeave(fn: () => void): void;
}

export type PageFn = (ctx: Ctx, root: HTMLElement, params: string[]) => void | Promise<void>;

/** The permission a refusal names (`details.needed`), or the route's from its message. */
function neededOf(f: ApiFailure): string | undefined {
  const needed = f.details.needed;
  if (typeof needed === 'string') return needed;
  return /needs (\S+)/.exec(f.message)?.[1];
}

/**
 * A failure as a sentence for people (`what`: what was tried, as a verb phrase: 'list the bunkers'): a 403 says which permission the key lacks rather than
 * leaving a blank page.
 */
export function problem(err: unknown, what: string): HTMLElement {
  if (err instanceof ApiFailure && err.status === 403) {
    const needed = neededOf(err);
    return h(
      'div',
      { class: 'problem denied', role: 'alert', 'data-code': err.code },
      h('strong', 'Not allowed. '),
      `The API key you signed in with may not ${what}`,
      needed ? [': that needs the permission ', h('code', needed), '.'] : '.',
      h(
        'p',
        'The console shows only what your key may see. Ask a tenant admin (or a platform admin) for a key that holds it, then sign in again. ',
        h('span', { class: 'muted' }, `(${err.code}: ${err.message})`),
      ),
    );
  }
  if (err instanceof ApiFailure) {
    return h(
      'div',
      { class: 'problem', role: 'alert', 'data-code': err.code },
      h('strong', `Could not ${what}. `),
      h('code', err.code),
      ` ${err.message}`,
    );
  }
  return h('div', { class: 'problem', role: 'alert' }, h('strong', `Could not ${what}. `), String((err as Error)?.message ?? err));
}

/** Runs an action (a button's), showing its failure in `where` (and re-enabling the button). */
export async function act(button: HTMLButtonElement | null, where: HTMLElement, what: string, fn: () => Promise<void>): Promise<void> {
  if (button) button.disabled = true;
  where.replaceChildren();
  try {
    await fn();
  } catch (err) {
    where.replaceChildren(problem(err, what));
  } finally {
    if (button) button.disabled = false;
  }
}

export function section(title: string, ...children: Child[]): HTMLElement {
  return h('section', { class: 'card' }, h('h2', title), ...children);
}
