import type { UploadSourceWatch } from './HttpTransport.js';

/** What `files.write` accepts: text, bytes, or a stream of either (Node Readable, web ReadableStream, async iterable). */
export type UploadData = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array | string>;

export interface UploadBody {
  body: Uint8Array | AsyncIterable<Uint8Array>;
  /** Reports an error raised by the caller's source stream (so it is not mistaken for a network failure). */
  watch: UploadSourceWatch;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

const NO_FAILURE: UploadSourceWatch = { failure: () => undefined };

/**
 * Turns upload data into a request body. Text and bytes are sent as they are; streams become a
 * pull-based async iterable of bytes, so the upload is never buffered whole and the source is
 * read only as fast as the connection drains it. When the request ends early (an error answer,
 * an abort) the source's iterator is closed.
 */
export function toUploadBody(data: UploadData): UploadBody {
  if (typeof data === 'string') return { body: Buffer.from(data, 'utf8'), watch: NO_FAILURE };
  if (data instanceof Uint8Array) return { body: data, watch: NO_FAILURE };
  if (data instanceof ArrayBuffer) return { body: new Uint8Array(data), watch: NO_FAILURE };
  if (!isAsyncIterable(data)) throw new TypeError('files.write: data must be a string, bytes, or a (async iterable) stream');
  const source = data;
  let failure: unknown;
  async function* bytes(): AsyncGenerator<Uint8Array> {
    const iterator = source[Symbol.asyncIterator]();
    let done = false;
    try {
      for (;;) {
        let next: IteratorResult<Uint8Array | string>;
        try {
          next = await iterator.next();
        } catch (err) {
          done = true;
          failure = err;
          throw err;
        }
        if (next.done) {
          done = true;
          return;
        }
        const chunk = next.value;
        if (chunk.length === 0) continue;
        yield typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
      }
    } finally {
      // Stopped before the source ended (the server answered early, or the request failed).
      if (!done) await iterator.return?.();
    }
  }
  return { body: bytes(), watch: { failure: () => failure } };
}
