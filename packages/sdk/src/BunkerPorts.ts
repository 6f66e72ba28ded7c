import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import { connectionFailed, errorFromResponseBody } from './errors.js';
import type { HttpTransport } from './HttpTransport.js';
import type { PreviewInfo } from './types.js';

export type { PreviewInfo };

export interface PreviewOptions {
  /** Lifetime in seconds, 60 to 604800 (default 3600). */
  expiresInS?: number;
  /** No token needed (needs `scaibunker:preview:public`). */
  public?: boolean;
}

/** Ports inside one bunker: the path-proxy URL, and host-based previews. */
export class BunkerPorts {
  constructor(
    private readonly transport: HttpTransport,
    readonly bunkerId: string,
  ) {}

  /** The path-proxy URL of a port (send the API key as `Authorization`; `path` is appended). */
  url(port: number, path = '/'): string {
    const base = this.transport.baseUrl.replace(/\/+$/, '');
    return `${base}/v1/modules/scaibunker/bunkers/${encodeURIComponent(this.bunkerId)}/ports/${port}${path.startsWith('/') ? path : `/${path}`}`;
  }

  /**
   * A raw TCP connection to the port (what `scaibunker bunker port-forward` uses): an upgrade of
   * `GET …/port-forward/{port}` to `scaibunker-tunnel`. Refusals are the API's typed errors
   * (a closed port: PORT_NOT_LISTENING). Node only.
   */
  connect(port: number): Promise<Duplex> {
    const url = new URL(
      `${this.transport.baseUrl.replace(/\/+$/, '')}/v1/modules/scaibunker/bunkers/${encodeURIComponent(this.bunkerId)}/port-forward/${port}`,
    );
    const request = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, {
        headers: { ...this.transport.webSocketHeaders(), connection: 'Upgrade', upgrade: 'scaibunker-tunnel' },
      });
      req.once('upgrade', (_res, socket, head) => {
        if (head.length > 0) socket.unshift(head);
        resolve(socket);
      });
      req.once('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.once('end', () => reject(errorFromResponseBody(res.statusCode ?? 502, text)));
        res.once('error', (err) => reject(connectionFailed(`port-forward: ${err.message}`, err)));
      });
      req.once('error', (err) => reject(connectionFailed(`cannot reach ${url.origin}: ${err.message}`, err)));
      req.end();
    });
  }

  /** A preview of the port: its URL and (unless public) its token, shown only now. */
  preview(port: number, opts: PreviewOptions = {}): Promise<PreviewInfo> {
    return this.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/previews', {
      path: { id: this.bunkerId },
      body: {
        port,
        ...(opts.expiresInS !== undefined ? { expires_in_s: opts.expiresInS } : {}),
        ...(opts.public !== undefined ? { public: opts.public } : {}),
      },
    });
  }

  /** The bunker's previews, newest first (without tokens). */
  async previews(): Promise<PreviewInfo[]> {
    return (await this.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/previews', { path: { id: this.bunkerId } })).items;
  }

  /** Revokes a preview at once. */
  async revoke(previewId: string): Promise<void> {
    await this.transport.json('delete', '/v1/modules/scaibunker/bunkers/{id}/previews/{preview_id}', {
      path: { id: this.bunkerId, preview_id: previewId },
    });
  }
}
