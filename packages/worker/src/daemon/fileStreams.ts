/** Byte streams between the worker contract and the agent's files: capped uploads, mapped downloads. */
import { toWorkerError } from './agentErrors.js';

/** Passes chunks through, throwing (so the write is aborted) once more than `maxBytes` went by. */
export async function* capBytes(
  source: AsyncIterable<Buffer | string>,
  maxBytes: number,
  counter: { bytes: number; overCap: boolean },
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    counter.bytes += buf.length;
    if (counter.bytes > maxBytes) {
      counter.overCap = true;
      throw new Error(`upload exceeds ${maxBytes} bytes`);
    }
    yield buf;
  }
}

/** Re-yields an iterator whose first result was already pulled, mapping agent errors. */
export async function* continueIteration(first: IteratorResult<Buffer>, iterator: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  let finished = first.done === true;
  try {
    if (finished) return;
    yield first.value;
    for (;;) {
      let next: IteratorResult<Buffer>;
      try {
        next = await iterator.next();
      } catch (err) {
        finished = true;
        throw toWorkerError(err);
      }
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // The reader went away early (consumer destroyed the stream): cancel the agent's read.
    if (!finished) await iterator.return?.().catch(() => {});
  }
}
