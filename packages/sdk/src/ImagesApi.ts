import type { HttpTransport } from './HttpTransport.js';
import type { CreateImageBody, ImageInfo } from './types.js';

const BASE = '/v1/modules/scaibunker/images';

/**
 * Images the caller's tenant can start bunkers from, and registering new ones. Registering
 * (`scaibunker:admin:tenant`; platform and partner scope `scaibunker:admin`) answers at once
 * with a `pending` image that bakes in the background: `waitUntilBaked` follows it.
 */
export class ImagesApi {
  constructor(private readonly transport: HttpTransport) {}

  async list(): Promise<ImageInfo[]> {
    return (await this.transport.json('get', BASE, {})).items;
  }

  get(imageId: string): Promise<ImageInfo> {
    return this.transport.json('get', `${BASE}/{id}`, { path: { id: imageId } });
  }

  create(body: CreateImageBody): Promise<ImageInfo> {
    return this.transport.json('post', BASE, { body });
  }

  /** Refused (ConflictError, IMAGE_IN_USE) while bunkers that have not ended use it. */
  async delete(imageId: string): Promise<void> {
    await this.transport.json('delete', `${BASE}/{id}`, { path: { id: imageId } });
  }

  /**
   * Polls the image until it is `ready` or `failed` (the API has no event for a bake), calling
   * `onProgress` on every poll. A failed image is returned, not thrown: its `failure` says why.
   */
  async waitUntilBaked(
    imageId: string,
    opts: { intervalMs?: number; timeoutMs?: number; onProgress?: (image: ImageInfo) => void } = {},
  ): Promise<ImageInfo> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30 * 60_000);
    for (;;) {
      const image = await this.get(imageId);
      opts.onProgress?.(image);
      if (image.state === 'ready' || image.state === 'failed') return image;
      if (Date.now() > deadline) throw new Error(`image ${imageId} is still ${image.state} after ${opts.timeoutMs ?? 1_800_000} ms`);
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
    }
  }
}
