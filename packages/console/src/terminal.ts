import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import { M } from './api.js';
import type { Ctx } from './app.js';
import { h } from './dom.js';

export interface TerminalSession {
  /** The page saw the bunker end: say so and close. */
  bunkerEnded(state: string): void;
  /** The page is left: close and free the terminal. */
  dispose(): void;
}

/**
 * xterm.js over the shell WebSocket (`GET …/shell`): browsers cannot put the key in a WebSocket's
 * headers, so a single-use 30 s ticket from `POST …/shell-tickets` goes in the query instead.
 * Binary frames both ways carry the terminal's bytes; text frames are JSON control (ready,
 * resize, exit, error). When the shell or its bunker ends the terminal says so and stops.
 */
export async function openTerminal(
  ctx: Ctx,
  bunkerId: string,
  mount: HTMLElement,
  status: HTMLElement,
  /** Asked when the socket closes: the bunker's state if it has ended, else null. */
  bunkerEnded: () => Promise<string | null>,
): Promise<TerminalSession> {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    scrollback: 5000,
    theme: { background: '#10141a' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(mount);
  fit.fit();
  const setStatus = (cls: string, text: string) => {
    status.className = `term-status ${cls}`;
    status.textContent = text;
  };
  setStatus('connecting', 'connecting…');

  let ended = false;
  let socket: WebSocket | undefined;
  const onWindowResize = () => fit.fit();
  window.addEventListener('resize', onWindowResize);
  const finish = (cls: string, text: string) => {
    if (ended) return;
    ended = true;
    setStatus(cls, text);
    term.write(`\r\n\x1b[2m[${text}]\x1b[0m\r\n`);
    term.options.disableStdin = true;
    term.options.cursorBlink = false;
    window.removeEventListener('resize', onWindowResize);
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'closed by the console');
  };

  try {
    const { ticket } = await ctx.api.post<{ ticket: string }>(`${M}/bunkers/${bunkerId}/shell-tickets`);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const query = new URLSearchParams({ ticket, cols: String(term.cols), rows: String(term.rows) });
    socket = new WebSocket(`${scheme}//${location.host}${M}/bunkers/${bunkerId}/shell?${query}`);
  } catch (err) {
    finish('failed', `could not open a shell: ${(err as Error).message}`);
    return { bunkerEnded: () => undefined, dispose: () => term.dispose() };
  }
  const ws = socket;
  ws.binaryType = 'arraybuffer';
  const encoder = new TextEncoder();
  let exitNote: string | undefined;
  let errorNote: string | undefined;
  let ready = false;

  ws.addEventListener('message', (e) => {
    if (typeof e.data !== 'string') {
      term.write(new Uint8Array(e.data as ArrayBuffer));
      return;
    }
    let msg: {
      type?: string;
      exec_id?: string;
      exit_code?: number | null;
      signal?: string | null;
      state?: string;
      code?: string;
      message?: string;
    };
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (msg.type === 'ready') {
      ready = true;
      setStatus('open', `connected · ${msg.exec_id ?? ''}`);
      term.focus();
    } else if (msg.type === 'exit') {
      exitNote =
        msg.exit_code !== null && msg.exit_code !== undefined
          ? `the shell exited with code ${msg.exit_code}`
          : `the shell ended (${msg.state ?? 'ended'}${msg.signal ? `, ${msg.signal}` : ''})`;
    } else if (msg.type === 'error') {
      errorNote = `${msg.code}: ${msg.message}`;
    }
  });
  ws.addEventListener('close', () => {
    void (async () => {
      const state = await bunkerEnded().catch(() => null);
      if (state) finish('bunker-ended', `the bunker ended (${state}): terminal closed`);
      else if (errorNote) finish('failed', `terminal closed: ${errorNote}`);
      else if (exitNote) finish('closed', `${exitNote}: terminal closed`);
      else finish('failed', ready ? 'the connection was lost: terminal closed' : 'the server refused the shell: terminal closed');
    })();
  });
  term.onData((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
  });
  term.onBinary((d) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0)));
  });
  term.onResize(({ cols, rows }) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  });
  return {
    bunkerEnded: (state) => finish('bunker-ended', `the bunker ended (${state}): terminal closed`),
    dispose: () => {
      finish('closed', 'terminal closed');
      term.dispose();
    },
  };
}

export function terminalMount(): { mount: HTMLElement; status: HTMLElement; box: HTMLElement } {
  const mount = h('div', { id: 'terminal', class: 'terminal' });
  const status = h('div', { id: 'terminal-status', class: 'term-status' });
  return { mount, status, box: h('div', status, mount) };
}
