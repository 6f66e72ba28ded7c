import type { Readable, Writable } from 'node:stream';
import { returnChunk } from './ChunkPool.js';

/**
 * `from.pipe(to)` for a stream whose chunks may be lent (ChunkPool: an agent tunnel's): each
 * chunk is handed back once its write is done, so a relayed stream reuses its memory. As pipe
 * does: back-pressure (`from` pauses until `to` drains), `to` ended after `from` ends, and
 * nothing more written once `to` has closed.
 */
export function pipeLent(from: Readable, to: Writable): void {
  const resume = () => from.resume();
  const onData = (chunk: Buffer) => {
    if (!to.write(chunk, () => returnChunk(chunk))) {
      from.pause();
      to.once('drain', resume);
    }
  };
  from.on('data', onData);
  from.once('end', () => to.end());
  to.once('close', () => {
    from.off('data', onData);
    to.off('drain', resume);
  });
}
