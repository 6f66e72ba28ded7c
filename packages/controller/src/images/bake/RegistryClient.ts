import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { BakeError } from './BakeError.js';
import { checkCounted, HashingCounter, sha256Hex, sha256Of, verifyBytes } from './digest.js';
import { type Descriptor, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES } from './manifest.js';
import { type OciContentStore, readLimited } from './OciContentStore.js';
import type { RegistryRef } from './parseImageRef.js';
import { type AuthChallenge, basicAuthHeader, fetchBearerToken, parseWwwAuthenticate } from './registryAuth.js';
import type { RegistryCredentials } from './types.js';

export interface RegistryClientOptions {
  /** Plain http instead of https (the host is listed in insecureRegistries). */
  insecure: boolean;
  credentials?: RegistryCredentials;
  /** Whether a token realm at this host:port may be used over plain http. */
  allowHttp: (hostPort: string) => boolean;
  /** Where layer blobs are stored while the bake runs. */
  blobDir: string;
  signal?: AbortSignal;
}

/**
 * A minimal OCI distribution client for pulling one repository: manifests and blobs over
 * fetch, answering Bearer (token service) and Basic challenges, verifying every byte it returns.
 */
export class RegistryClient implements OciContentStore {
  readonly name: string;
  private authorization: string | undefined;
  private readonly layerFiles = new Map<string, Promise<string>>();

  constructor(
    private readonly ref: RegistryRef,
    private readonly opts: RegistryClientOptions,
  ) {
    this.name = `${ref.hostKey}/${ref.repository}`;
  }

  private url(path: string): string {
    return `${this.opts.insecure ? 'http' : 'https'}://${this.ref.host}/v2/${this.ref.repository}/${path}`;
  }

  private async send(url: string, accept: string | undefined): Promise<Response> {
    const headers: Record<string, string> = {};
    if (accept) headers.accept = accept;
    if (this.authorization) headers.authorization = this.authorization;
    try {
      // fetch follows blob redirects (to a CDN/S3) and drops Authorization when they leave the origin.
      return await fetch(url, { headers, redirect: 'follow', ...(this.opts.signal ? { signal: this.opts.signal } : {}) });
    } catch (err) {
      if (this.opts.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new BakeError(
        'REGISTRY_UNREACHABLE',
        `registry ${this.ref.hostKey} unreachable: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  private async authorize(challenge: AuthChallenge): Promise<string> {
    if (challenge.scheme === 'basic') {
      if (!this.opts.credentials) throw new BakeError('AUTH_FAILED', `registry ${this.ref.hostKey} requires credentials (Basic auth)`);
      return basicAuthHeader(this.opts.credentials);
    }
    const token = await fetchBearerToken({
      challenge,
      defaultScope: `repository:${this.ref.repository}:pull`,
      ...(this.opts.credentials ? { credentials: this.opts.credentials } : {}),
      allowHttp: this.opts.allowHttp,
      ...(this.opts.signal ? { signal: this.opts.signal } : {}),
    });
    return `Bearer ${token}`;
  }

  /** GET with one round of authentication on 401; maps failure statuses to BakeErrors. */
  private async get(path: string, what: string, accept?: string): Promise<Response> {
    const url = this.url(path);
    let res = await this.send(url, accept);
    if (res.status === 401) {
      const challenge = parseWwwAuthenticate(res.headers.get('www-authenticate'));
      await res.body?.cancel();
      if (!challenge)
        throw new BakeError('AUTH_FAILED', `registry ${this.ref.hostKey} answered 401 without a usable WWW-Authenticate challenge`);
      this.authorization = await this.authorize(challenge);
      res = await this.send(url, accept);
      if (res.status === 401) {
        await res.body?.cancel();
        throw new BakeError(
          'AUTH_FAILED',
          `registry ${this.ref.hostKey} refused our ${challenge.scheme === 'basic' ? 'credentials' : 'token'} for ${what}`,
        );
      }
    }
    if (res.ok) return res;
    await res.body?.cancel();
    if (res.status === 404) throw new BakeError('SOURCE_NOT_FOUND', `${what} not found in ${this.name}`);
    if (res.status === 403) throw new BakeError('AUTH_FAILED', `registry ${this.ref.hostKey} denied access to ${what} (HTTP 403)`);
    throw new BakeError('REGISTRY_UNREACHABLE', `registry ${this.ref.hostKey} answered HTTP ${res.status} for ${what}`);
  }

  /** The manifest or index a tag or digest names; verified when `reference` is a digest. */
  async getManifest(reference: string): Promise<{ bytes: Buffer; contentType?: string; digest: string }> {
    const what = `manifest ${reference}`;
    const res = await this.get(`manifests/${reference}`, what, MANIFEST_ACCEPT);
    const bytes = await readLimited(res.body as AsyncIterable<Uint8Array> | null, MAX_MANIFEST_BYTES, what);
    const digest = reference.startsWith('sha256:') ? reference : `sha256:${sha256Of(bytes)}`;
    // Pinned by digest: the bytes must hash to it, whatever the registry says.
    verifyBytes(bytes, digest, what);
    // A tag has no digest of its own to check against, but a registry that names one must agree with the bytes.
    const header = res.headers.get('docker-content-digest');
    if (header?.startsWith('sha256:') && header !== digest) {
      throw new BakeError('DIGEST_MISMATCH', `${what}: registry says ${header}, content is ${digest}`);
    }
    const contentType = res.headers.get('content-type') ?? undefined;
    return { bytes, digest, ...(contentType ? { contentType } : {}) };
  }

  async fetchManifest(desc: Descriptor): Promise<{ bytes: Buffer; contentType?: string }> {
    const m = await this.getManifest(desc.digest);
    verifyBytes(m.bytes, desc.digest, `manifest ${desc.digest}`, desc.size);
    return m;
  }

  async fetchSmallBlob(desc: Descriptor, maxBytes: number): Promise<Buffer> {
    const what = `blob ${desc.digest}`;
    if (desc.size > maxBytes) throw new BakeError('INVALID_SOURCE', `${what} is larger than ${maxBytes} bytes`);
    const res = await this.get(`blobs/${desc.digest}`, what);
    const bytes = await readLimited(res.body as AsyncIterable<Uint8Array> | null, maxBytes, what);
    verifyBytes(bytes, desc.digest, what, desc.size);
    return bytes;
  }

  fetchLayer(desc: Descriptor, onBytes: (done: number) => void): Promise<string> {
    // The same layer may appear twice in a manifest; download it once.
    let p = this.layerFiles.get(desc.digest);
    if (!p) {
      p = this.download(desc, onBytes);
      this.layerFiles.set(desc.digest, p);
    }
    return p;
  }

  private async download(desc: Descriptor, onBytes: (done: number) => void): Promise<string> {
    const what = `layer ${desc.digest}`;
    const hex = sha256Hex(desc.digest, what);
    const final = join(this.opts.blobDir, hex);
    const partial = `${final}.partial`;
    const res = await this.get(`blobs/${desc.digest}`, what);
    if (!res.body) throw new BakeError('REGISTRY_UNREACHABLE', `registry ${this.ref.hostKey} sent no body for ${what}`);
    const counter = new HashingCounter(onBytes, desc.size, what);
    try {
      await pipeline(
        Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
        counter,
        createWriteStream(partial, { mode: 0o600 }),
        ...(this.opts.signal ? [{ signal: this.opts.signal }] : []),
      );
      checkCounted(counter, desc.digest, what, desc.size);
    } catch (err) {
      await rm(partial, { force: true });
      if (err instanceof BakeError || this.opts.signal?.aborted) throw err;
      throw new BakeError('REGISTRY_UNREACHABLE', `download of ${what} from ${this.ref.hostKey} failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    await rename(partial, final);
    return final;
  }
}
