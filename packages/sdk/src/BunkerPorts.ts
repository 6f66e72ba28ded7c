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
