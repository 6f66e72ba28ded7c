import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply } from 'fastify';

/**
 * Lets a closing server finish the requests in flight and nothing else. Node's close only ends
 * the connections its parser calls idle at that moment, and a connection whose last exchange
 * was a stream the client abandoned (a half-read request, a hijacked answer) can stay "active"
 * to Node until its request timeout (a minute). Here a connection is busy while a request of
 * ours is on it; at close, answers a handler took over (event streams, proxied ports) are
 * ended, and every connection without a request in flight is closed — now and as the rest finish.
 */
export class ClosingConnections {
  private readonly busy = new Map<Socket, number>();
  private readonly replies = new Set<FastifyReply>();
  private closing = false;

  constructor(app: FastifyInstance) {
    app.server.on('connection', (socket: Socket) => {
      this.busy.set(socket, 0);
      socket.once('close', () => this.busy.delete(socket));
    });
    app.addHook('onRequest', async (req, reply) => {
      const socket = req.raw.socket;
      this.busy.set(socket, (this.busy.get(socket) ?? 0) + 1);
      this.replies.add(reply);
      let done = false;
      const ended = () => {
        if (done) return;
        done = true;
        this.replies.delete(reply);
        const left = (this.busy.get(socket) ?? 1) - 1;
        this.busy.set(socket, left);
        if (this.closing && left === 0) destroy(socket);
      };
      // An answer sent before its request body was read ends with 'finish' and may never see 'close'.
      reply.raw.once('finish', ended);
      reply.raw.once('close', ended);
    });
    app.addHook('preClose', async () => {
      this.closing = true;
      for (const reply of this.replies) if (reply.sent && !reply.raw.writableFinished) reply.raw.destroy();
      for (const [socket, n] of this.busy) if (n === 0) destroy(socket);
    });
  }
}

/** Injected requests (tests) run on a stand-in socket that cannot be destroyed. */
function destroy(socket: Socket): void {
  if (typeof socket.destroy === 'function') socket.destroy();
}
