import type { Terminal, TerminalExit } from '@scaibunker/sdk';

/** Ctrl-]: the byte that detaches from a raw terminal (as telnet's escape), since Ctrl-C belongs to the remote process. */
export const DETACH_BYTE = 0x1d;

export type TerminalOutcome = { detached: false; exit: TerminalExit } | { detached: true };

export interface TerminalSessionOptions {
  /** Send this process's stdin to the terminal (false: the remote process has no stdin to write to). */
  forwardStdin: boolean;
  /** Called once stdin is set up (raw mode on): input typed from then on reaches the process. */
  onReady?: () => void;
}

/**
 * Connects this process's stdio to a terminal until its process exits or the user detaches.
 * A TTY stdin is put in raw mode (every key goes to the remote, Ctrl-] detaches) and window
 * size changes are forwarded; otherwise stdin is piped through and its end closes the
 * process's stdin. Raw mode and listeners are undone however it ends.
 */
export async function runTerminalSession(terminal: Terminal, opts: TerminalSessionOptions): Promise<TerminalOutcome> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const raw = stdin.isTTY === true;
  let detach!: () => void;
  const detached = new Promise<{ detached: true }>((resolve) => {
    detach = () => resolve({ detached: true });
  });
  // Input may race the connection closing: what cannot be sent any more is dropped, and the
  // session ends through `exited`.
  const send = (fn: () => void) => {
    try {
      fn();
    } catch {}
  };
  const onInput = (chunk: Buffer) => {
    const at = raw ? chunk.indexOf(DETACH_BYTE) : -1;
    const input = at === -1 ? chunk : chunk.subarray(0, at);
    if (opts.forwardStdin && input.length) send(() => terminal.write(input));
    if (at !== -1) detach();
  };
  const onEnd = () => send(() => terminal.closeStdin());
  const onResize = () => send(() => terminal.resize(stdout.columns, stdout.rows));
  const unsubscribe = terminal.onData((chunk) => stdout.write(chunk));
  const stopErrors = terminal.onError((err) => process.stderr.write(`\r\nscaibunker: ${err.code}: ${err.message}\r\n`));
  if (raw) {
    stdin.setRawMode(true);
    stdout.on('resize', onResize);
  }
  if (opts.forwardStdin) {
    if (!raw) stdin.on('end', onEnd);
    stdin.on('data', onInput);
    stdin.resume();
  } else if (raw) {
    // Keys still reach us for the detach key; the rest has nowhere to go.
    stdin.on('data', onInput);
    stdin.resume();
  }
  try {
    opts.onReady?.();
    const ended = terminal.exited.then((exit) => ({ detached: false as const, exit }));
    return await Promise.race([ended, detached]);
  } finally {
    unsubscribe();
    stopErrors();
    stdin.off('data', onInput);
    stdin.off('end', onEnd);
    stdout.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    // A stdin still open (a TTY, or a pipe the process outlived) would keep the CLI running.
    stdin.pause();
    terminal.close();
  }
}
