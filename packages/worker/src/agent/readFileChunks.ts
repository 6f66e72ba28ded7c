/** The read verb: a file's content as chunks the caller pulls, credit granted as it pulls. */
import type { AgentConnection } from './AgentConnection.js';

/**
 * Streams a file in chunks of up to 64 KiB. Errors (NOT_FOUND, IS_A_DIRECTORY, ...) are
 * thrown by the first iteration step, before any chunk. Credit is granted as the caller
 * pulls chunks; breaking out of the loop cancels the read.
 */
export async function* readFileChunks(conn: AgentConnection, path: string): AsyncIterable<Buffer> {
  const ready: Array<{ chunk: Buffer; done: () => void }> = [];
  let notify: (() => void) | null = null;
  const wake = () => {
    const n = notify;
    notify = null;
    n?.();
  };
  const st = conn.open({ op: 'read', path }, (_type, chunk) => {
    return new Promise<void>((done) => {
      ready.push({ chunk, done });
      wake();
    });
  });
  let settled = false;
  st.result.then(
    () => {
      settled = true;
      wake();
    },
    () => {
      settled = true;
      wake();
    },
  );
  try {
    for (;;) {
      const next = ready.shift();
      if (next) {
        // the consumer's promise resolves (granting credit) when the caller asks for more
        try {
          yield next.chunk;
        } finally {
          next.done();
        }
        continue;
      }
      if (settled) {
        await st.result; // throws the AgentError, if any
        return;
      }
      await new Promise<void>((r) => {
        notify = r;
      });
    }
  } finally {
    if (!st.finished) {
      st.discard = true;
      st.cancel();
    }
    for (const r of ready.splice(0)) r.done();
  }
}
