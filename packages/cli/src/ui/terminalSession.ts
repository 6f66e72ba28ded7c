import type { Terminal, TerminalExit } from '@scaibunker/sdk';

/** Ctrl-]: the byte that detaches from a raw terminal (as telnet's escape), since Ctrl-C belongs to the remote process. */
export const DETACH_BYTE = 0x1d;

export type TerminalOutcome = { detached: false; exit: TerminalExit } | { detached: true };

/**
 * Connects this process's stdio to a terminal until its process exits or the user detaches.
 * A TTY stdin is put in raw mode (every key goes to the remote, Ctrl-] detaches) and window
 * size changes are forwarded; otherwise stdin is piped through and its end closes the
 * process's stdin. Raw mode and listeners are undone however it ends.
 */
export async function runTerminalSession(terminal: Terminal): Promise<TerminalOutcome> {
  const stdin = process.stdin;
  const stdout = process.stdout;
  const raw = stdin.isTTY === true;
  let detach!: () => void;
  const detached = new Promise<{ detached: true }>((resolve) => {
    detach = () => resolve({ detached: true });
  });
  const onInput = (chunk: Buffer) => {
    if (raw && chunk.includes(DETACH_BYTE)) {
      const before = chunk.subarray(0, chunk.indexOf(DETACH_BYTE));
      if (before.length) terminal.write(before);
      detach();
      return;
    }
    terminal.write(chunk);
  };
  const onEnd = () => terminal.closeStdin();
  const onResize = () => terminal.resize(stdout.columns, stdout.rows);
  const unsubscribe = terminal.onData((chunk) => stdout.write(chunk));
  if (raw) {
    stdin.setRawMode(true);
    stdout.on('resize', onResize);
  } else {
    stdin.on('end', onEnd);
  }
  stdin.on('data', onInput);
  stdin.resume();
  try {
    const ended = terminal.exited.then((exit) => ({ detached: false as const, exit }));
    return await Promise.race([ended, detached]);
  } finally {
    unsubscribe();
    stdin.off('data', onInput);
    stdin.off('end', onEnd);
    stdout.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    // A stdin still open (a TTY, or a pipe the process outlived) would keep the CLI running.
    stdin.pause();
    terminal.close();
  }
}
