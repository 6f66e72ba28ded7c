import type { UploadSourceWatch } from './HttpTransport.js';

/** What `files.write` accepts: text, bytes, or a stream of either (Node Readable, web ReadableStream, async iterable). */
export type UploadData = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array | string>;

export interface UploadBody {
  body: Uint8Array | ReadableStream<Uint8Array>;
  /** Reports an error raised by the caller's source stream (so it is not mistaken for a network failure). */
  watch: UploadSourceWatch;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/**
 * Turns upload data into a request body. Text and bytes are sent as they are; streams become a
 * pull-based ReadableStream, so the upload is never buffered whole and the source is read only
 * as fast as the connection drains it.
 */
export function toUploadBody(data: UploadData): UploadBody {
  if (typeof data === 'string') return { body: Buffer.from(data, 'utf8'), watch: { failure: () => undefined } };
  if (data instanceof Uint8Array) return { body: data, watch: { failure: () => undefined } };
  if (data instanceof ArrayBuffer) return { body: new Uint8Array(data), watch: { failure: () => undefined } };
  if (!isAsyncIterable(data)) throw new TypeError('files.write: data must be a string, bytes, or a (async iterable) stream');
  const iterator = data[Symbol.asyncIterator]();
  let failure: unknown;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) {
          controller.close();
          return;
        }
        const chunk = next.value;
        controller.enqueue(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
      } catch (err) {
        failure = err;
        controller.error(err);
      }
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
  return { body, watch: { failure: () => failure } };
}
