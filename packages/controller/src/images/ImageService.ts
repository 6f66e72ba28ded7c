import { realpath } from 'node:fs/promises';
import { isAbsolute, sep } from 'node:path';
import { ApiError, hasPermission, newId, type schemas } from '@scaibunker/core';
import type { Principal } from '../auth/Principal.js';
import { type BlobStore, blobKeys } from '../blobs/BlobStore.js';
import type { Store } from '../store/Store.js';
import type { ImageRow } from '../store/schema.js';
import { recordAudit } from '../tenants/audit.js';
import { BakeError } from './bake/BakeError.js';
import { parseImageRef } from './bake/parseImageRef.js';
import { imageToApi } from './toApi.js';

export interface ImageServiceOptions {
  /**
   * Local sources (OCI layouts, docker archives, rootfs tarballs) must resolve inside this
   * directory, and only platform admins may name one: a path is the controller host's files.
   */
  importDir: string;
  /** Asked to start baking soon after an image is registered (the bake job also polls). */
  onRegistered?: () => void;
}

/** Registering, listing and deleting images; the bake and scan jobs do the slow work. */
export class ImageService {
  constructor(
    private readonly store: Store,
    private readonly blobs: BlobStore,
    private readonly opts: ImageServiceOptions,
  ) {}

  async create(principal: Principal, body: schemas.CreateImageBody): Promise<schemas.Image> {
    const scope = body.scope ?? 'tenant';
    const platformAdmin = hasPermission(principal.permissions, 'scaibunker:admin');
    if (scope !== 'tenant' && !platformAdmin) {
      throw new ApiError('PERMISSION_DENIED', `a ${scope} image needs scaibunker:admin`, { needed: 'scaibunker:admin' });
    }
    if (scope === 'partner' && !body.shared_with?.length) {
      throw new ApiError('VALIDATION_FAILED', 'a partner image needs shared_with: the tenants that may use it', {
        field: 'body/shared_with',
      });
    }
    if (scope !== 'partner' && body.shared_with) {
      throw new ApiError('VALIDATION_FAILED', 'shared_with is only for partner images', { field: 'body/shared_with' });
    }
    for (const t of body.shared_with ?? []) {
      if (!(await this.store.tenants.get(t))) throw new ApiError('TENANT_NOT_FOUND', `no tenant ${t}`, { tenant_id: t });
    }
    const source = await this.checkSource(body.source, platformAdmin);
    const owner = scope === 'platform' ? null : principal.tenantId;
    if (await this.store.images.nameTaken(owner, body.name)) {
      throw new ApiError('IMAGE_CONFLICT', `an image named ${body.name} already exists`, { name: body.name });
    }
    const now = new Date().toISOString();
    const row: ImageRow = {
      id: newId('im'),
      tenant_id: owner,
      name: body.name,
      scope,
      state: 'pending',
      sha256: null,
      size_bytes: null,
      created_at: now,
      source: JSON.stringify(source),
      lazy_pull: body.lazy_pull ? 1 : 0,
      progress: null,
      failure: null,
      baker: null,
      baker_seen_at: null,
      scan_state: null,
      scan_result: null,
      scanned_at: null,
      created_by: principal.actor,
      updated_at: now,
    };
    await this.store.images.insert(row, body.shared_with ?? []);
    await recordAudit(this.store, principal, owner, 'image.create', { type: 'image', id: row.id }, { name: row.name, scope, source });
    this.opts.onRegistered?.();
    return imageToApi(row);
  }

  /**
   * Registers each entry as a platform image baked from its OCI source (lazy_pull), unless a
   * platform image of that name exists: idempotent. Callers serialize it across controllers
   * (the `catalog` lock). Returns the names registered now.
   */
  async registerCatalog(entries: ReadonlyArray<{ name: string; ref: string }>): Promise<string[]> {
    const added: string[] = [];
    for (const e of entries) {
      if (await this.store.images.nameTaken(null, e.name)) continue;
      const now = new Date().toISOString();
      await this.store.images.insert({
        id: newId('im'),
        tenant_id: null,
        name: e.name,
        scope: 'platform',
        state: 'pending',
        sha256: null,
        size_bytes: null,
        created_at: now,
        source: JSON.stringify({ type: 'oci', ref: e.ref }),
        lazy_pull: 1,
        created_by: 'catalog',
        updated_at: now,
      });
      added.push(e.name);
    }
    if (added.length) this.opts.onRegistered?.();
    return added;
  }

  async list(principal: Principal): Promise<schemas.Image[]> {
    return (await this.store.images.listVisible(principal.tenantId)).map(imageToApi);
  }

  async get(principal: Principal, id: string): Promise<schemas.Image> {
    return imageToApi(await this.visible(principal, id));
  }

  /** Refused while a bunker that has not ended runs it; the bytes go when no other image has them. */
  async delete(principal: Principal, id: string): Promise<void> {
    const image = await this.visible(principal, id);
    const mayDelete =
      image.scope === 'tenant' ? image.tenant_id === principal.tenantId : hasPermission(principal.permissions, 'scaibunker:admin');
    // Another tenant's shared image is visible, not theirs to delete: answer as for any other image.
    if (!mayDelete) throw new ApiError('PERMISSION_DENIED', `image ${id} is not the caller's to delete`);
    const using = await this.store.images.activeBunkerCount(image);
    if (using > 0) {
      throw new ApiError('IMAGE_IN_USE', `${using} bunker(s) that have not ended use image ${image.name}`, { bunkers: using });
    }
    await this.store.images.delete(image.id);
    if (image.sha256 && (await this.store.images.othersWithSha(image.id, image.sha256)) === 0) {
      await this.blobs.delete(blobKeys.image(image.sha256));
    }
    await recordAudit(this.store, principal, image.tenant_id, 'image.delete', { type: 'image', id: image.id }, { name: image.name });
  }

  private async visible(principal: Principal, id: string): Promise<ImageRow> {
    const image = await this.store.images.getVisible(principal.tenantId, id);
    if (!image) throw new ApiError('IMAGE_NOT_FOUND', `no image ${id}`, { image_id: id });
    return image;
  }

  /** Parses the source now, so a bad reference is a 400 rather than a failed image. */
  private async checkSource(source: schemas.CreateImageBody['source'], platformAdmin: boolean): Promise<schemas.CreateImageBody['source']> {
    let localPath: string | undefined;
    if (source.type === 'tar') {
      localPath = source.path;
    } else {
      let parsed: ReturnType<typeof parseImageRef>;
      try {
        parsed = parseImageRef(source.ref);
      } catch (err) {
        if (err instanceof BakeError) throw new ApiError('VALIDATION_FAILED', err.message, { field: 'body/source/ref' });
        throw err;
      }
      if (parsed.kind === 'oci-layout') localPath = parsed.dir;
      if (parsed.kind === 'docker-archive') localPath = parsed.path;
    }
    if (localPath === undefined) return source;
    if (!platformAdmin) {
      throw new ApiError('PERMISSION_DENIED', "local image sources are files on the controller's host: platform admins only", {
        needed: 'scaibunker:admin',
      });
    }
    if (!isAbsolute(localPath)) throw new ApiError('VALIDATION_FAILED', `${localPath} is not an absolute path`, { field: 'body/source' });
    let real: string;
    let root: string;
    try {
      root = await realpath(this.opts.importDir);
      real = await realpath(localPath);
    } catch {
      throw new ApiError('VALIDATION_FAILED', `${localPath} does not exist under the import directory ${this.opts.importDir}`, {
        field: 'body/source',
      });
    }
    if (!real.startsWith(root + sep)) {
      throw new ApiError('VALIDATION_FAILED', `${localPath} is outside the import directory ${this.opts.importDir}`, {
        field: 'body/source',
      });
    }
    return source;
  }
}
