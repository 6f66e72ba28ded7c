/** Dialling the agent's Unix socket while the bunker may still be booting. */
import net from 'node:net';
import { AgentError } from './AgentError.js';

/** The socket does not exist yet or nobody listens on it yet: worth another try. */
const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ENOTDIR']);

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const onError = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      resolve(sock);
    });
  });
}

/**
 * Connects to socketPath, retrying (5 ms doubling to 100 ms) while the error is retryable,
 * until `deadline` (a Date.now() value). Rejects with AgentError CONNECT_FAILED (not
 * retryable) or CONNECT_TIMEOUT.
 */
export async function connectSocket(socketPath: string, deadline: number, timeoutMs: number): Promise<net.Socket> {
  let delay = 5;
  for (;;) {
    try {
      return await connectOnce(socketPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!RETRYABLE.has(code)) {
        throw new AgentError('CONNECT_FAILED', `connect ${socketPath}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new AgentError('CONNECT_TIMEOUT', `agent socket ${socketPath} not ready after ${timeoutMs} ms (${code})`, {
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, Math.min(delay, left)));
      delay = Math.min(delay * 2, 100);
    }
  }
}
