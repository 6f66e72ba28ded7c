/**
 * Downloads an image from a peer worker: `GET {peer}/v1/images/{sha256}` with the worker token
 * (peers share it: they are all workers of the same controller), or the rest of it with
 * `Range: bytes=from-` (only a 206 starting there is taken; a whole answer is RangeNotHonored).
 * Streamed, never buffered.
 */
import type { Readable } from 'node:stream';
import { httpGetBody, readErrorText } from '../http/httpGetStream.js';
import { type ImagePeer, type PeerImageOpener, RangeNotHonored } from './ImageOrigins.js';

export class PeerImageClient implements PeerImageOpener {
  constructor(private readonly token: string) {}

  async open(peer: ImagePeer, sha256: string, signal: AbortSignal, from = 0): Promise<Readable> {
    const url = `${peer.url.replace(/\/+$/, '')}/v1/images/${sha256}`;
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (from > 0) headers.range = `bytes=${from}-`;
    const res = await httpGetBody(url, { headers, signal });
    if (from > 0 && res.statusCode === 206) {
      const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers['content-range'] ?? '');
      if (range && Number(range[1]) === from && Number(range[2]) === Number(range[3]) - 1) return res;
      res.destroy();
      throw new Error(`peer ${peer.workerId} answered bytes ${from}- with ${res.headers['content-range'] ?? 'no content-range'}`);
    }
    if (from > 0 && res.statusCode === 200) {
      res.destroy();
      throw new RangeNotHonored(`peer ${peer.workerId} sent the whole image, not bytes ${from}-`);
    }
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
