/** Dialling the agent's socket (Unix, or a vsock proxy: vsockAddress.ts) while the bunker may still be booting. */
import net from 'node:net';
import { AgentError } from './AgentError.js';
import { SharedReads } from './SharedReads.js';
import { parseVsockAddress, vsockConnect } from './vsockAddress.js';

/** The socket does not exist yet or nobody listens on it yet: worth another try. */
const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN', 'ENOTDIR']);

/**
 * A connected agent socket. `reads`: it reads into the buffer agent sockets share (a Unix
 * socket); without it, through 'data' events (a vsock proxy, whose handshake reads them).
 */
export interface AgentSocket {
  socket: net.Socket;
  reads?: SharedReads;
}

/** One connection to an agent address, returned paused (the caller resumes it once it listens). */
async function connectOnce(address: string): Promise<AgentSocket> {
  const vsock = parseVsockAddress(address);
  if (vsock) return { socket: await vsockConnect(vsock.udsPath, vsock.port) };
  const path = address;
  const reads = new SharedReads();
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path, onread: reads.onread });
    const onError = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.off('error', onError);
      sock.pause();
      resolve({ socket: sock, reads });
    });
  });
}

/**
 * Connects to socketPath (a Unix socket or `vsock:<port>:<uds>`), retrying (5 ms doubling to
 * 100 ms) while the error is retryable, until `deadline` (a Date.now() value) or until `signal`
 * is aborted. Rejects with AgentError CONNECT_FAILED (not retryable, or given up) or
 * CONNECT_TIMEOUT. The socket comes back paused.
 */
export async function connectSocket(socketPath: string, deadline: number, timeoutMs: number, signal?: AbortSignal): Promise<AgentSocket> {
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
      if (signal?.aborted) throw new AgentError('CONNECT_FAILED', `connect ${socketPath}: given up (${String(signal.reason)})`);
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
