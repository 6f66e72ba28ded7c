import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

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

/** The (small, JSON) body of an error answer; bodies past 64 KiB are cut. */
export async function readErrorText(res: IncomingMessage): Promise<string> {
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
