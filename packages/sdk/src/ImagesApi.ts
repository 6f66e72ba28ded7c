import type { HttpTransport } from './HttpTransport.js';
import type { ImageInfo } from './types.js';

/** Images the caller's tenant can start bunkers from. */
export class ImagesApi {
  constructor(private readonly transport: HttpTransport) {}

  async list(): Promise<ImageInfo[]> {
    return (await this.transport.json('get', '/v1/modules/scaibunker/images')).items;
  }
}
