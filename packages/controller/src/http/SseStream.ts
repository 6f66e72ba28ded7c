import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * A Server-Sent Events answer on a hijacked reply: `send` waits while the socket is full (so a
 * slow reader slows its source down), `signal` aborts when the client goes away, and a comment
 * line every 15 s keeps idle proxies from closing a quiet stream.
 */
export class SseStream {
  private readonly abort = new AbortController();
  private readonly keepAlive: NodeJS.Timeout;

  constructor(
    req: FastifyRequest,
    private readonly reply: FastifyReply,
  ) {
    const res = reply.raw;
    res.on('close', () => {
      if (!res.writableFinished) this.abort.abort();
    });
    req.raw.on('error', () => this.abort.abort());
    reply.hijack();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    this.keepAlive = setInterval(() => {
      if (!res.writableEnded) res.write(': keep-alive\n\n');
    }, 15_000);
    this.keepAlive.unref();
  }

  /** Aborted when the client went away. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  async send(event: string, data: unknown, id?: number | null): Promise<void> {
    const res = this.reply.raw;
    if (res.writableEnded || res.destroyed) return;
    const head = id !== undefined && id !== null ? `id: ${id}\n` : '';
    if (!res.write(`${head}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }

  end(): void {
    clearInterval(this.keepAlive);
    if (!this.reply.raw.writableEnded) this.reply.raw.end();
  }
}
