import { Readable } from 'node:stream';
import { errorFromApi, errorFromResponseBody, NotFoundError } from './errors.js';
import type { HttpTransport, TransportResponse } from './HttpTransport.js';
import { readSseEvents } from './SseParser.js';
import type { FileChangeEvent, FileStat, WriteResult } from './types.js';
import { toUploadBody, type UploadData } from './uploadBody.js';

export interface WriteFileOptions {
  /** Permission bits: a number (`0o644`) or octal text (`'0644'`). */
  mode?: number | string;
  /** Create missing parent directories. */
  parents?: boolean;
  signal?: AbortSignal;
}

function octalMode(mode: number | string): string {
  if (typeof mode === 'string') return mode;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) throw new TypeError(`files.write: invalid mode ${mode}`);
  return mode.toString(8).padStart(3, '0');
}

export interface WatchOptions {
  /** Also changes in subdirectories. */
  recursive?: boolean;
  /** Stops the watch (the iteration then throws the signal's reason); `break` out of the loop stops it too. */
  signal?: AbortSignal;
}

/** Files inside one bunker. Paths are absolute paths inside the bunker. */
export class BunkerFiles {
  constructor(
    private readonly transport: HttpTransport,
    readonly bunkerId: string,
  ) {}

  /** Writes (creates or replaces) a file. Streams are uploaded as they are read, never buffered whole. */
  async write(path: string, data: UploadData, opts: WriteFileOptions = {}): Promise<WriteResult> {
    const upload = toUploadBody(data);
    const res = await this.transport.request(
      'put',
      '/v1/modules/scaibunker/bunkers/{id}/files',
      {
        path: { id: this.bunkerId },
        query: {
          path,
          ...(opts.mode === undefined ? {} : { mode: octalMode(opts.mode) }),
          ...(opts.parents ? { parents: true } : {}),
        },
        body: upload.body,
        headers: { 'content-type': 'application/octet-stream' },
        signal: opts.signal,
      },
      upload.watch,
    );
    return JSON.parse((await this.transport.readBuffer(res)).toString('utf8')) as WriteResult;
  }

  /** The whole file, in memory. Use readStream for large files. */
  async read(path: string, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    return this.transport.readBuffer(await this.open(path, opts.signal));
  }

  /** The file as a byte stream; the request starts when the stream is first read. Errors arrive as stream errors. */
  readStream(path: string, opts: { signal?: AbortSignal } = {}): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const res = await self.open(path, opts.signal);
      for await (const chunk of self.transport.bodyChunks(res)) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async list(path: string): Promise<FileStat[]> {
    return (
      await this.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/files/list', { path: { id: this.bunkerId }, query: { path } })
    ).items;
  }

  stat(path: string): Promise<FileStat> {
    return this.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/files/stat', { path: { id: this.bunkerId }, query: { path } });
  }

  /** True when something exists at the path (a FILE_NOT_FOUND answer is false; other errors throw). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError && err.code === 'FILE_NOT_FOUND') return false;
      throw err;
    }
  }

  async mkdir(path: string, opts: { parents?: boolean } = {}): Promise<void> {
    await this.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/files/mkdir', {
      path: { id: this.bunkerId },
      body: { path, ...(opts.parents ? { parents: true } : {}) },
    });
  }

  /** Removes a file or directory; a non-empty directory needs `recursive: true`. */
  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.transport.json('delete', '/v1/modules/scaibunker/bunkers/{id}/files', {
      path: { id: this.bunkerId },
      query: { path, ...(opts.recursive ? { recursive: true } : {}) },
    });
  }

  /**
   * Changes under a directory as they happen, until the loop stops or `signal` aborts. A
   * missing path is FILE_NOT_FOUND, a file FILE_CONFLICT, thrown before the first event. Events
   * missed while not connected are not replayed (there is no journal of them): a dropped
   * connection is thrown (CONNECTION_FAILED), and a caller that watches again should rescan, as
   * for an `overflow` event.
   */
  async *watch(path: string, opts: WatchOptions = {}): AsyncGenerator<FileChangeEvent> {
    const res = await this.transport.request('get', '/v1/modules/scaibunker/bunkers/{id}/files/watch', {
      path: { id: this.bunkerId },
      query: { path, ...(opts.recursive ? { recursive: true } : {}) },
      headers: { accept: 'text/event-stream' },
      signal: opts.signal,
    });
    for await (const event of readSseEvents(this.transport.bodyChunks(res))) {
      if (event.event !== 'change' && event.event !== 'error') continue;
      let data: unknown;
      try {
        data = JSON.parse(event.data);
      } catch {
        throw errorFromResponseBody(502, `malformed data in watch event '${event.event}': ${event.data.slice(0, 200)}`);
      }
      if (event.event === 'error') throw errorFromApi(undefined, data as { code: string; message?: string });
      yield data as FileChangeEvent;
    }
  }

  private open(path: string, signal: AbortSignal | undefined): Promise<TransportResponse> {
    return this.transport.request('get', '/v1/modules/scaibunker/bunkers/{id}/files', {
      path: { id: this.bunkerId },
      query: { path },
      headers: { accept: 'application/octet-stream, application/json' },
      signal,
    });
  }
}
