/** The connect verb: a byte tunnel to a port inside the bunker, as a Duplex. */
import { Duplex } from 'node:stream';
import type { AgentConnection } from './AgentConnection.js';
import type { AgentStream } from './AgentStream.js';
import { FrameType, INITIAL_WINDOW } from './protocol.js';

/**
 * What a tunnel lets the agent send ahead (its receive window): larger than the protocol's
 * initial one, so the bulk of a download moves in larger batches with fewer WINDOW frames
 * (each a write that wakes the agent). At most this much waits in the tunnel's buffer.
 */
const TUNNEL_WINDOW = 1024 * 1024;

/**
 * A byte tunnel to 127.0.0.1:port inside the bunker: the agent dials the port and relays
 * (PROTOCOL.md §3.6). Resolves once connected; rejects with AgentError PORT_NOT_LISTENING
 * (connection refused), INVALID_ARGUMENT (port not 1–65535), TOO_MANY_STREAMS (the
 * agent's per-connection tunnel cap), IO_ERROR or CHANNEL_CLOSED.
 *
 * The Duplex behaves like a net.Socket with allowHalfOpen: writes wait for the stream's
 * credit (the write callback is the back-pressure), reading grants credit only as the
 * consumer reads, end() sends EOF (the agent shuts the socket's write side), 'end' means
 * the server closed its side, destroy() cancels (the agent closes the socket). Errors after
 * the connect (ECONNRESET, CHANNEL_CLOSED) destroy the Duplex with the AgentError.
 *
 * The chunks read from it may be lent (ChunkPool): whoever holds one last hands it back with
 * returnChunk once nothing refers to its bytes (the relay does, once written to the caller).
 */
export function openTunnel(conn: AgentConnection, port: number): Promise<Duplex> {
  return new Promise<Duplex>((resolve, reject) => {
    let readWaiter: (() => void) | null = null;
    let readEnded = false;
    let connected = false;
    const wakeRead = () => {
      const w = readWaiter;
      readWaiter = null;
      w?.();
    };
    let st!: AgentStream;
    const duplex = new Duplex({
      allowHalfOpen: true,
      // As much as the agent may send unasked (its window): a smaller buffer would make every
      // chunk wait for the consumer's next read before its credit goes back, one chunk in flight.
      readableHighWaterMark: TUNNEL_WINDOW,
      writableHighWaterMark: INITIAL_WINDOW,
      read: () => wakeRead(),
      write: (chunk: Buffer, _enc, cb) => {
        conn.sendData(st, chunk).then(
          () => cb(),
          (err: unknown) => cb(err as Error),
        );
      },
      final: (cb) => {
        conn.sendEof(st);
        cb();
      },
      destroy: (err, cb) => {
        if (!st.finished) {
          st.discard = true;
          st.cancel(); // the agent closes the socket; its CANCELLED answer is dropped below
        }
        wakeRead();
        cb(err);
      },
    });
    const endRead = () => {
      if (readEnded) return;
      readEnded = true;
      duplex.push(null);
    };
    try {
      st = conn.open(
        { op: 'connect', port },
        (type, chunk) => {
          if (duplex.destroyed) return;
          if (type === FrameType.EOF) return endRead();
          // A full readable buffer: hold the credit until the consumer asks for more.
          if (!duplex.push(chunk)) return new Promise<void>((r) => (readWaiter = r));
        },
        () => {
          connected = true;
          resolve(duplex);
        },
        { window: TUNNEL_WINDOW, lend: true },
      );
    } catch (err) {
      reject(err);
      return;
    }
    st.result.then(
      () => endRead(), // both directions finished; EOF normally came first
      (err: unknown) => {
        if (!connected) {
          duplex.destroy();
          reject(err);
        } else if (!duplex.destroyed) {
          duplex.destroy(err as Error);
        }
      },
    );
  });
}
