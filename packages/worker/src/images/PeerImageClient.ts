/**
 * Downloads an image from a peer worker: `GET {peer}/v1/images/{sha256}` with the worker token
 * (peers share it: they are all workers of the same controller). Streamed, never buffered.
 */
import type { Readable } from 'node:stream';
import { httpGetStream, readErrorText } from '../http/httpGetStream.js';
import type { ImagePeer, PeerImageOpener } from './ImageOrigins.js';

export class PeerImageClient implements PeerImageOpener {
  constructor(private readonly token: string) {}

  async open(peer: ImagePeer, sha256: string, signal: AbortSignal): Promise<Readable> {
    const url = `${peer.url.replace(/\/+$/, '')}/v1/images/${sha256}`;
    const res = await httpGetStream(url, { headers: { authorization: `Bearer ${this.token}` }, signal });
    if (res.statusCode !== 200) {
      // Error bodies are small JSON; anything else is not read at all.
      let text = '';
      if ((res.statusCode ?? 0) >= 400) text = await readErrorText(res).catch(() => '');
      else res.destroy();
      throw new Error(`peer ${peer.workerId} answered HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    // A body cut short fails the stream (premature close); wrong bytes fail the caller's digest check.
    return res;
  }
}
