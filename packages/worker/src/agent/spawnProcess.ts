/** The spawn/exec verb: a process in the bunker, its output, stdin, signals and outcome. */
import type { AgentConnection, Input } from './AgentConnection.js';
import { AgentError } from './AgentError.js';
import type { AgentStream } from './AgentStream.js';
import type { AgentProcess, AgentSpawnRequest, ExecHandlers, ExecResult } from './agentTypes.js';
import { toBuffer } from './payloads.js';
import { FrameType } from './protocol.js';

/** How long past an exec's own timeout the client waits for the agent to report it. */
export const HOST_TIMEOUT_GRACE_MS = 5000;

/**
 * Starts a process and returns at once: `started` resolves with its pid, `result` with
 * its outcome. Output goes to the handlers (awaited: back-pressure); stdin can be written
 * while it runs ('pipe', or a pty). `handlers.signal` aborting kills the process group and
 * makes `result` reject with ABORTED.
 */
export function spawnProcess(conn: AgentConnection, req: AgentSpawnRequest, handlers: ExecHandlers = {}): AgentProcess {
  let resolveStarted!: (v: { pid: number }) => void;
  let rejectStarted!: (e: unknown) => void;
  const started = new Promise<{ pid: number }>((res, rej) => {
    resolveStarted = res;
    rejectStarted = rej;
  });
  started.catch(() => {}); // callers of exec() never look at it
  const failed = (err: AgentError): AgentProcess => {
    rejectStarted(err);
    const result = Promise.reject(err);
    result.catch(() => {});
    return {
      started,
      result,
      write: () => Promise.reject(err),
      closeStdin: () => {},
      signal: () => {},
      resize: () => {},
      kill: () => {},
    };
  };
  if (!Array.isArray(req.argv) || req.argv.length === 0 || !req.argv.every((a) => typeof a === 'string')) {
    return failed(new AgentError('INVALID_ARGUMENT', 'argv must be a non-empty array of strings'));
  }
  const abort = handlers.signal;
  if (abort?.aborted) return failed(new AgentError('ABORTED', 'exec aborted before it started'));
  const interactive = req.stdin === 'pipe' || (req.pty !== undefined && req.stdin === undefined);
  const feed = req.stdin !== undefined && req.stdin !== 'pipe' ? (req.stdin as Input) : undefined;
  let st: AgentStream;
  try {
    st = conn.open(
      {
        op: 'exec',
        argv: req.argv,
        env: req.env,
        cwd: req.cwd,
        user: req.user,
        timeout_ms: req.timeoutMs,
        stdin: req.stdin !== undefined,
        pty: req.pty ? { cols: req.pty.cols, rows: req.pty.rows } : undefined,
      },
      // called as methods: handler objects may rely on `this`
      (type, chunk) => (type === FrameType.STDERR ? handlers.onStderr?.(chunk) : handlers.onStdout?.(chunk)),
      (info) => {
        if (typeof info.pid === 'number') resolveStarted({ pid: info.pid });
      },
    );
  } catch (err) {
    return failed(err as AgentError);
  }
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    st.cancel(); // the agent SIGKILLs the process group; the RESULT still follows
  };
  // The agent enforces timeoutMs itself; this bound only fires when it cannot (a paused or
  // wedged guest that stopped reading its channel), so the caller still gets a timeout.
  const t0 = performance.now();
  const hostDeadline =
    req.timeoutMs !== undefined
      ? setTimeout(
          () => st.expire({ timed_out: true, duration_ms: Math.round(performance.now() - t0) }),
          req.timeoutMs + HOST_TIMEOUT_GRACE_MS,
        )
      : undefined;
  abort?.addEventListener('abort', onAbort, { once: true });
  if (feed !== undefined) {
    conn.pump(st, feed).catch((err: unknown) => {
      st.settle(err);
      st.cancel();
    });
  }
  const result = st.result.then(
    (r): ExecResult => {
      // an agent without STARTED: the process did start (and has ended)
      if (typeof r.pid === 'number') resolveStarted({ pid: r.pid });
      else rejectStarted(new AgentError('PROTOCOL_ERROR', 'the agent reported no pid'));
      if (aborted) throw new AgentError('ABORTED', 'exec aborted: process group killed');
      return {
        exitCode: typeof r.exit_code === 'number' ? r.exit_code : null,
        signal: typeof r.signal === 'string' ? r.signal : null,
        timedOut: r.timed_out === true,
        durationMs: typeof r.duration_ms === 'number' ? r.duration_ms : 0,
      };
    },
    (err: unknown) => {
      rejectStarted(err); // no-op once STARTED arrived
      throw err;
    },
  );
  result.catch(() => {});
  void result
    .finally(() => {
      clearTimeout(hostDeadline);
      abort?.removeEventListener('abort', onAbort);
    })
    .catch(() => {});

  // stdin writes and the EOF go out in call order
  let chain: Promise<void> = Promise.resolve();
  let stdinClosed = false;
  const notWritable = () =>
    new AgentError('INVALID_ARGUMENT', stdinClosed ? 'stdin was closed' : "stdin is not writable (spawn with stdin: 'pipe' or a pty)");
  return {
    started,
    result,
    write: (data) => {
      if (!interactive || stdinClosed) return Promise.reject(notWritable());
      const buf = toBuffer(data);
      const p = chain.then(() => conn.sendData(st, buf));
      chain = p.catch(() => {});
      return p;
    },
    closeStdin: () => {
      if (!interactive || stdinClosed) return;
      stdinClosed = true;
      chain = chain.then(() => {
        conn.sendEof(st);
      });
    },
    signal: (sig) => st.signal(sig),
    resize: (cols, rows) => st.resize(cols, rows),
    kill: () => st.cancel(),
  };
}
