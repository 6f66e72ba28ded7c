import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { PooledHttpBody } from './PooledHttpBody.js';

/** An answer whose body is a Node stream: an IncomingMessage, or a PooledHttpBody. */
export type HttpBody = Readable & { statusCode?: number | undefined; headers: IncomingHttpHeaders };

/**
 * A GET for a large body that is written to disk (images): over plain http, a PooledHttpBody
 * (its chunks can be handed back with release() and are read into again); over https, or when
 * the answer is not framed by a content-length, node:http (httpGetStream).
 */
export async function httpGetBody(url: string, opts: { headers: Record<string, string>; signal: AbortSignal }): Promise<HttpBody> {
  const parsed = new URL(url);
  if (parsed.protocol === 'http:') {
    const body = await PooledHttpBody.get(parsed, opts.headers, opts.signal);
    if (body) return body;
  }
  return httpGetStream(url, opts);
}

/**
 * A GET whose body is a Node stream, for large downloads (images). node:http rather than
 * fetch: on this kind of host its body stream moves about a fifth more bytes per second than
 * fetch's web stream turned into a Node one. A response cut short fails the stream (premature
 * close); callers verify a digest anyway.
 */
export function httpGetStream(url: string, opts: { headers: Record<string, string>; signal: AbortSignal }): Promise<IncomingMessage> {
  const transport = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.get(url, { headers: opts.headers, signal: opts.signal }, resolve);
    req.once('error', reject);
  });
}

/**
 * A PUT whose body is a Node stream (chunked), resolving with the response once its head came
 * (normally after the whole body went). A body that errors destroys the request mid-body, so
 * the server sees an aborted upload rather than a short one; `idleTimeoutMs` of no socket
 * activity does the same.
 */
export function httpPutStream(
  url: string,
  opts: { headers: Record<string, string>; body: Readable; idleTimeoutMs: number },
): Promise<IncomingMessage> {
  const transport = url.startsWith('https:') ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(url, { method: 'PUT', headers: opts.headers });
    const onBodyError = (err: Error) => req.destroy(err);
    opts.body.once('error', onBodyError);
    req.setTimeout(opts.idleTimeoutMs, () => req.destroy(new Error(`no progress on ${url} for ${opts.idleTimeoutMs} ms`)));
    req.once('error', (err) => {
      opts.body.off('error', onBodyError);
      opts.body.destroy();
      reject(err);
    });
    req.once('response', (res) => {
      opts.body.off('error', onBodyError);
      // answered before the body was done (a refusal): stop sending
      if (!req.writableFinished) {
        opts.body.unpipe(req);
        opts.body.destroy();
      }
      resolve(res);
    });
    opts.body.pipe(req);
  });
}

/** The (small, JSON) body of an error answer; bodies past 64 KiB are cut. */
export async function readErrorText(res: Readable): Promise<string> {
  let text = '';
  for await (const chunk of res) {
    text += chunk;
    if (text.length > 65536) {
      res.destroy();
      break;
    }
  }
  return text;
}
