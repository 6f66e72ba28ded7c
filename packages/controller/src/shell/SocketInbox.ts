import type { WebSocket } from 'ws';

type Message = { data: Buffer; isBinary: boolean };

/**
 * Holds a WebSocket's messages from the moment it opens until a consumer takes over: a client
 * may type before its shell has started, and `ws` drops messages nobody listens for. Must be
 * created synchronously in the upgrade handler, before anything is awaited.
 */
export class SocketInbox {
  private held: Message[] | null = [];
  private consumer: ((m: Message) => void) | null = null;

  constructor(socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const m = { data: bytes, isBinary };
      if (this.consumer) this.consumer(m);
      else if (this.held && this.held.length < 1024) this.held.push(m); // a client flooding before the shell runs loses the excess
    });
  }

  /** Delivers what was held, in order, then every later message. */
  consume(consumer: (m: Message) => void): void {
    const held = this.held ?? [];
    this.held = null;
    this.consumer = consumer;
    for (const m of held) consumer(m);
  }
}
