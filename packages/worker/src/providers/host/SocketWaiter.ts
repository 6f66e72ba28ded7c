import { existsSync, watch } from 'node:fs';
import { join } from 'node:path';
import { ProviderError } from '../Provider.js';

/**
 * Waits for a file to appear in a directory: inotify (fs.watch) for the fast path, plus a
 * coarse poll that also runs a liveness check, so a lost event or a dead agent cannot hang.
 */
export class SocketWaiter {
  readonly promise: Promise<void>;
  private resolve!: () => void;
  private readonly watcher: ReturnType<typeof watch> | undefined;
  private done = false;

  constructor(
    private readonly dir: string,
    private readonly name: string,
  ) {
    this.promise = new Promise<void>((res) => {
      this.resolve = res;
    });
    try {
      this.watcher = watch(dir, (_event, filename) => {
        if (filename === name) this.check();
      });
      this.watcher.on('error', () => {});
    } catch {
      this.watcher = undefined;
    }
    this.check();
  }

  private check(): void {
    if (!this.done && existsSync(join(this.dir, this.name))) {
      this.done = true;
      this.resolve();
    }
  }

  async wait(timeoutMs: number, alive: () => void): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const poll = new Promise<void>((_res, rej) => {
      const tick = () => {
        this.check();
        if (this.done) return;
        try {
          alive();
        } catch (e) {
          rej(e);
          return;
        }
        if (Date.now() > deadline) {
          rej(new ProviderError('SPAWN_FAILED', `agent socket did not appear within ${timeoutMs} ms`));
          return;
        }
        timer = setTimeout(tick, 50);
      };
      timer = setTimeout(tick, 50);
    });
    try {
      await Promise.race([this.promise, poll]);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  close(): void {
    this.watcher?.close();
  }
}
