import type { Writable } from 'node:stream';

/**
 * Writes a channel's frames so that those written in one turn of the event loop leave in one
 * write (corked on the first, uncorked once the turn's I/O callbacks ran): the calls of all the
 * requests read in that turn share one syscall. Both ends of the channel write through one.
 */
export class TurnBatchedWriter {
  private corked = false;

  constructor(private readonly socket: Writable) {}

  /** What `socket.write` answers: false when the caller should wait for 'drain'. */
  write(frame: Buffer): boolean {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    return this.socket.write(frame);
  }
}
