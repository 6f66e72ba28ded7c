/**
 * The stub API's `GET …/files/watch` streams: the stub's own file operations (write, mkdir,
 * remove) are reported as `change` events to the watches they fall under, as the worker's
 * inotify would; tests can await a watch being open and end them all (the server going away).
 */
import type { ServerResponse } from 'node:http';
import type { FileChangeEvent } from '../../src/index.js';

interface Watch {
  bunkerId: string;
  path: string;
  recursive: boolean;
  res: ServerResponse;
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export class StubFileWatches {
  private readonly watches = new Set<Watch>();
  private readonly waiters: Array<() => void> = [];

  /** Serves one watch until the client leaves (or `endAll`). */
  open(res: ServerResponse, bunkerId: string, path: string, recursive: boolean): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': watching\n\n');
    const watch: Watch = { bunkerId, path, recursive, res };
    this.watches.add(watch);
    res.once('close', () => this.watches.delete(watch));
    for (const w of this.waiters.splice(0)) w();
  }

  changed(bunkerId: string, event: FileChangeEvent): void {
    for (const w of this.watches) {
      if (w.bunkerId !== bunkerId) continue;
      const under = w.recursive ? event.path.startsWith(w.path === '/' ? '/' : `${w.path}/`) : parentOf(event.path) === w.path;
      if (under || event.type === 'overflow') w.res.write(`event: change\ndata: ${JSON.stringify(event)}\n\n`);
    }
  }

  /** Resolves once `n` watches of the bunker are open. */
  async waitForWatches(bunkerId: string, n: number): Promise<void> {
    while ([...this.watches].filter((w) => w.bunkerId === bunkerId).length < n) await new Promise<void>((r) => this.waiters.push(r));
  }

  /** Ends every open watch stream, optionally with an SSE `error` event first. */
  endAll(error?: { code: string; message: string }): void {
    for (const w of this.watches) {
      if (error) w.res.write(`event: error\ndata: ${JSON.stringify({ ...error, details: {} })}\n\n`);
      w.res.end();
    }
    this.watches.clear();
  }
}
