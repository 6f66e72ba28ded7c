/** The watch verb: a directory's changes as events, credit granted as the handler keeps up. */
import type { AgentConnection } from './AgentConnection.js';
import { AgentError } from './AgentError.js';
import type { AgentStream } from './AgentStream.js';
import type { WatchEvent, WatchHandle } from './agentTypes.js';
import { isPromiseLike } from './payloads.js';

const WATCH_TYPES = new Set(['create', 'write', 'remove', 'rename', 'chmod', 'overflow']);

/**
 * Watches a directory (with `recursive`, its whole tree) for changes. onEvent is called
 * once per event, in order; credit is granted after it returned (or its promise resolved),
 * so a slow handler makes the agent stop reading (the kernel queue may then overflow,
 * reported as an 'overflow' event).
 */
export function watchDirectory(
  conn: AgentConnection,
  path: string,
  opts: { recursive?: boolean },
  onEvent: (e: WatchEvent) => void | Promise<void>,
): WatchHandle {
  let stopped = false;
  let partial = '';
  const deliver = async (line: string) => {
    if (!line || stopped) return;
    const v = JSON.parse(line) as Partial<WatchEvent>;
    if (typeof v.type !== 'string' || !WATCH_TYPES.has(v.type) || typeof v.path !== 'string') {
      throw new AgentError('PROTOCOL_ERROR', `malformed watch event: ${line.slice(0, 200)}`);
    }
    const r = onEvent({ type: v.type, path: v.path, is_dir: v.is_dir === true });
    if (isPromiseLike(r)) await r;
  };
  let st: AgentStream;
  try {
    st = conn.open({ op: 'watch', path, recursive: opts.recursive === true }, async (_type, chunk) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) await deliver(line);
    });
  } catch (err) {
    const done = Promise.reject(err);
    done.catch(() => {});
    return { done, stop: () => {} };
  }
  const done = st.result.then(
    () => {},
    (err: unknown) => {
      if (stopped) return; // the agent's CANCELLED answer to stop(), or anything racing it
      throw err;
    },
  );
  done.catch(() => {});
  return {
    done,
    stop: () => {
      if (stopped) return;
      stopped = true;
      st.discard = true;
      st.cancel();
    },
  };
}
