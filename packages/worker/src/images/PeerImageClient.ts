/**
 * Downloads an image from a peer worker: `GET {peer}/v1/images/{sha256}` with the worker token
 * (peers share it: they are all workers of the same controller). Streamed, never buffered.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { ImagePeer, PeerImageOpener } from './ImageOrigins.js';

export class PeerImageClient implements PeerImageOpener {
  constructor(private readonly token: string) {}

  async open(peer: ImagePeer, sha256: string, signal: AbortSignal): Promise<Readable> {
    const url = `${peer.url.replace(/\/+$/, '')}/v1/images/${sha256}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${this.token}` }, signal });
    if (res.status !== 200 || !res.body) {
      // Error bodies are small JSON; anything else is not read at all.
      let text = '';
      if (res.status >= 400) text = await res.text().catch(() => '');
      else await res.body?.cancel().catch(() => {});
      throw new Error(`peer ${peer.workerId} answered HTTP ${res.status}: ${text.slice(0, 200)}`);
    }
    // A body cut short fails the stream (fetch checks content-length); wrong bytes fail the
    // caller's digest check.
    return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
  }
}
