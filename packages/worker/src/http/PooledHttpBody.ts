import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';

/** Bytes per block the socket reads into. */
const BLOCK = 1024 * 1024;
/** Released blocks kept for reuse (more are left to the GC). */
const SPARE_BLOCKS = 8;
/** A response head larger than this is refused. */
const MAX_HEAD = 64 * 1024;

interface Block {
  buf: Buffer;
  /** Bytes of `buf` filled by reads. */
  fill: number;
  /** Chunks of this block handed out and not released yet. */
  refs: number;
}

/**
 * The body of one plain-http GET answered with a `content-length`, read from the socket into
 * reused 1 MiB blocks (`net` `onread`) instead of node:http's two fresh buffers per 64 KiB read
 * (the socket's, then the parser's copy of the body). A GiB through node:http allocates 2 GiB of
 * ArrayBuffers, and V8 answers each 64 MiB of them with a full mark-compact of the whole heap: in
 * a worker daemon that was half the CPU of an image download. Chunks pushed are views into the
 * blocks; a consumer that is done with one (written to disk) hands it back with release(), and
 * its block is read into again once all its views are back. A consumer that never releases gets
 * fresh blocks (correct, just not cheaper).
 *
 * Like an IncomingMessage for what image downloads use: `statusCode`, `headers` (lower-case
 * names), destroy(); a connection that ends before `content-length` bytes fails the stream.
 */
export class PooledHttpBody extends Readable {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  private readonly owners = new Map<ArrayBufferLike, Block>();
  private readonly spare: Block[] = [];
  private current: Block;
  private head = true;
  private remaining = 0;
  private socket: net.Socket | undefined;
  private reading = true;

  private constructor(private readonly onHead: (err: Error | null, unsupported?: boolean) => void) {
    // Object mode: read() hands out one chunk as pushed. A byte-mode read() joins what is
    // buffered into a new Buffer, which would both allocate and hide the chunks from release().
    super({ objectMode: true, highWaterMark: 8 }); // chunks: at most ~8 MiB read ahead
    this.current = this.block();
  }

  /**
   * GETs `url` (http: only) with `headers` plus host and `connection: close`. Resolves once the
   * response head arrived; with undefined when the body is not framed by a content-length
   * (chunked, or none): the caller asks again through node:http.
   */
  static get(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<PooledHttpBody | undefined> {
    // The request is written by hand: a name or value that could end the line is refused, as node:http does.
    for (const [name, value] of Object.entries(headers)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n\0]/.test(value))
        return Promise.reject(new TypeError(`invalid request header ${JSON.stringify(name)}`));
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const body: PooledHttpBody = new PooledHttpBody((err, unsupported) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else if (unsupported) {
          body.destroy();
          resolve(undefined);
        } else resolve(body);
      });
      const onAbort = () => body.fail(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      const request =
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\nconnection: close\r\n` +
        `${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join('')}\r\n`;
      body.socket = net.connect({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port || 80),
        onread: { buffer: () => body.current.buf.subarray(body.current.fill), callback: (n) => body.received(n) },
      });
      body.socket.once('connect', () => body.socket?.write(request));
      body.socket.once('error', (err) => body.fail(err));
      body.socket.once('end', () => body.fail(new Error('premature close: the connection ended before the whole body')));
    });
  }

  /** Hands a chunk of this body back once its bytes are no longer needed; anything else is ignored. */
  release(chunk: Buffer): void {
    const block = this.owners.get(chunk.buffer);
    if (!block || --block.refs > 0 || block === this.current) return;
    this.recycle(block);
  }

  override _read(): void {
    if (!this.reading) {
      this.reading = true;
      this.socket?.resume();
    }
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    this.socket?.destroy();
    this.onHead(err ?? new Error('the download was closed before its answer came'));
    done(err);
  }

  /** `n` bytes were read into the current block; returns false to stop reading (back-pressure). */
  private received(n: number): boolean {
    const block = this.current;
    const start = block.fill;
    block.fill += n;
    let bodyStart = start;
    if (this.head) {
      const end = block.buf.subarray(0, block.fill).indexOf('\r\n\r\n');
      if (end < 0) {
        if (block.fill < MAX_HEAD) return true;
        this.fail(new Error(`response head larger than ${MAX_HEAD} bytes`));
        return false;
      }
      const framing = this.parseHead(block.buf.toString('latin1', 0, end));
      if (framing !== 'ok') {
        if (framing === 'unsupported')
          this.onHead(null, true); // get() closes it
        else this.fail(new Error(framing));
        return false;
      }
      bodyStart = end + 4;
      this.head = false;
      this.onHead(null);
    }
    const take = Math.min(block.fill - bodyStart, this.remaining);
    let more = true;
    if (take > 0) {
      block.refs++;
      this.remaining -= take;
      more = this.push(block.buf.subarray(bodyStart, bodyStart + take));
    }
    if (block.fill === block.buf.length) {
      this.current = this.block();
      if (block.refs === 0) this.recycle(block);
    }
    if (this.remaining === 0) {
      this.push(null);
      this.socket?.destroy();
      return false;
    }
    if (!more) {
      this.reading = false;
      this.socket?.pause();
    }
    return more;
  }

  /** 'ok' when the head is a response with a content-length body; 'unsupported' for other framing; else the error. */
  private parseHead(text: string): string {
    const [status, ...lines] = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(status ?? '');
    if (!m) return `not an HTTP/1.1 response: ${JSON.stringify(status?.slice(0, 80))}`;
    this.statusCode = Number(m[1]);
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) return `malformed response header ${JSON.stringify(line.slice(0, 80))}`;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const had = this.headers[name];
      this.headers[name] = had === undefined ? value : `${had}, ${value}`;
    }
    if (this.headers['transfer-encoding'] !== undefined) return 'unsupported';
    const length = this.headers['content-length'];
    if (length === undefined || !/^\d{1,15}$/.test(length)) return 'unsupported';
    this.remaining = Number(length);
    return 'ok';
  }

  private fail(err: Error): void {
    if (!this.head && this.remaining === 0) return; // complete: a late end or error changes nothing
    if (!this.head) return void this.destroy(err);
    // No head yet: nobody holds the body, the error goes to get()'s caller.
    this.onHead(err);
    this.destroy();
  }

  /** A block no longer read into, whose chunks all came back: kept for reuse, or left to the GC. */
  private recycle(block: Block): void {
    this.owners.delete(block.buf.buffer);
    if (this.spare.length < SPARE_BLOCKS) {
      block.fill = 0;
      block.refs = 0;
      this.spare.push(block);
    }
  }

  /** A block to read into: a spare one, else a new one. */
  private block(): Block {
    const block = this.spare.pop() ?? { buf: Buffer.allocUnsafeSlow(BLOCK), fill: 0, refs: 0 };
    this.owners.set(block.buf.buffer, block);
    return block;
  }
}
