/** ImageOrigins through the worker's ControllerLink: the controller's peer list and its storage proxy. */
import type { Readable } from 'node:stream';
import type { ControllerLink } from '../WorkerApi.js';
import type { ImageOrigins, ImagePeer } from './ImageOrigins.js';

export class LinkImageOrigins implements ImageOrigins {
  /** `workerId` is read per call: the worker learns its id only in init(). */
  constructor(
    private readonly link: ControllerLink,
    private readonly workerId: () => string,
  ) {}

  async peers(sha256: string): Promise<ImagePeer[]> {
    const items = await this.link.imagePeers(sha256, this.workerId());
    return items.map((p) => ({ workerId: p.worker_id, url: p.url }));
  }

  openFromStorage(sha256: string, from = 0): Promise<Readable> {
    return this.link.openImage(sha256, from);
  }
}
