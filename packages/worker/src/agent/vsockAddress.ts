/**
 * An agent behind a Firecracker vsock device. Firecracker proxies host-initiated vsock
 * connections through one Unix socket (the device's `uds_path`): the host connects, writes
 * `CONNECT <port>\n`, and Firecracker answers `OK <host port>\n` once the guest accepted on
 * that port — from then on the socket is the guest connection. If nothing listens on the port
 * (the guest is still booting), Firecracker closes the socket instead.
 *
 * The worker treats an agent address as opaque (Provider.agentSocketPath): `vsock:<port>:<uds>`
 * names such an agent, anything else is the agent's own Unix socket.
 */
import net from 'node:net';

const PREFIX = 'vsock:';
/** Longest handshake reply we accept ("OK " + a u32 + "\n" is at most 14 bytes). */
const MAX_REPLY = 64;

export function vsockAddress(udsPath: string, port: number): string {
  return `${PREFIX}${port}:${udsPath}`;
}

export function parseVsockAddress(address: string): { udsPath: string; port: number } | undefined {
  const m = /^vsock:(\d{1,10}):(.+)$/.exec(address);
  if (!m?.[1] || !m[2]) return undefined;
  return { port: Number(m[1]), udsPath: m[2] };
}

/**
 * Connects through the vsock proxy and completes the handshake. Resolves with the socket
 * paused (bytes the guest sent right after `OK` are unshifted back): the caller attaches its
 * reader, then resumes. A refused handshake rejects with code ECONNREFUSED, like a Unix socket
 * nobody listens on, so callers retry it the same way while the guest boots.
 */
export function vsockConnect(udsPath: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path: udsPath });
    let reply = Buffer.alloc(0);
    const refused = (why: string) => {
      sock.destroy();
      reject(Object.assign(new Error(`vsock port ${port} via ${udsPath}: ${why}`), { code: 'ECONNREFUSED' }));
    };
    const onData = (chunk: Buffer) => {
      reply = Buffer.concat([reply, chunk]);
      const nl = reply.indexOf(0x0a);
      if (nl < 0) {
        if (reply.length > MAX_REPLY) refused('no handshake reply');
        return;
      }
      const line = reply.subarray(0, nl).toString('latin1');
      if (!/^OK \d+$/.test(line)) return refused(`handshake answered ${JSON.stringify(line.slice(0, MAX_REPLY))}`);
      sock.off('data', onData);
      sock.off('close', onClose);
      sock.off('error', onError);
      sock.pause();
      const rest = reply.subarray(nl + 1);
      if (rest.length) sock.unshift(rest);
      resolve(sock);
    };
    const onClose = () => refused('closed before the handshake completed (nothing listening in the guest yet)');
    const onError = (err: NodeJS.ErrnoException) => {
      // a reset before the handshake completed is the proxy dropping us: nothing listens yet
      if (err.code === 'ECONNRESET') return refused('reset before the handshake completed');
      sock.destroy();
      reject(err);
    };
    sock.once('error', onError);
    sock.once('connect', () => {
      sock.on('data', onData);
      sock.once('close', onClose);
      sock.write(`CONNECT ${port}\n`);
    });
  });
}
