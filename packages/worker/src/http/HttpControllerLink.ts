/**
 * The worker's side of the controller over HTTP, authenticated with the worker token: one POST
 * per heartbeat, audit batches, images and snapshots through the storage proxy, the peers holding an
 * image. Failures throw; the Worker logs them and retries on the next tick (or falls back).
 */
import type { Readable } from 'node:stream';
import { RangeNotHonored } from '../images/ImageOrigins.js';
import { type ControllerLink, type Heartbeat, type HeartbeatReply, WorkerError } from '../WorkerApi.js';
import { type HttpBody, httpGetBody, httpPutStream, readErrorText } from './httpGetStream.js';

export interface HttpControllerLinkOptions {
  /**
   * Bound on one round trip (default 10000 ms), so a hung controller never stalls the loop. For
   * an image or snapshot download it bounds the wait for the response head only; the body may
   * take long. A snapshot upload is bounded by inactivity instead (6× this, at least 60 s).
   */
  timeoutMs?: number;
  /** Base URL of the storage proxy (default: the controller URL — it hosts the storage routes too). */
  storageUrl?: string;
}

export class HttpControllerLink implements ControllerLink {
  private readonly base: string;
  private readonly storage: string;
  private readonly timeoutMs: number;

  constructor(
    controllerUrl: string,
    private readonly token: string,
    opts: HttpControllerLinkOptions = {},
  ) {
    this.base = `${controllerUrl.replace(/\/+$/, '')}/v1/modules/scaibunker`;
    this.storage = `${(opts.storageUrl ?? controllerUrl).replace(/\/+$/, '')}/v1/modules/scaibunker/storage/scaibunker`;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async putAuditBatch(bunkerId: string, name: string, ndjson: Buffer): Promise<void> {
    const url = `${this.storage}/audit/${encodeURIComponent(bunkerId)}/${encodeURIComponent(name)}`;
    const res = await fetch(url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/octet-stream' },
      body: ndjson,
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`audit batch upload to ${url} failed with HTTP ${res.status}: ${text.slice(0, 500)}`);
  }

  async heartbeat(hb: Heartbeat): Promise<HeartbeatReply> {
    const endpoint = `${this.base}/heartbeat`;
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(hb),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`heartbeat to ${endpoint} failed with HTTP ${res.status}: ${errorDetail(text)}`);
    const reply = JSON.parse(text) as Partial<HeartbeatReply>;
    return {
      ok: reply.ok === true,
      heartbeat_interval_s: typeof reply.heartbeat_interval_s === 'number' ? reply.heartbeat_interval_s : 0,
      unknown_bunkers: Array.isArray(reply.unknown_bunkers) ? reply.unknown_bunkers.filter((x): x is string => typeof x === 'string') : [],
      unknown_bridges: Array.isArray(reply.unknown_bridges) ? reply.unknown_bridges.filter((x): x is string => typeof x === 'string') : [],
    };
  }

  async imagePeers(sha256: string, workerId: string): Promise<Array<{ worker_id: string; url: string }>> {
    const url = `${this.base}/peers/${encodeURIComponent(sha256)}?worker_id=${encodeURIComponent(workerId)}`;
    const res = await fetch(url, { headers: { authorization: `Bearer ${this.token}` }, signal: AbortSignal.timeout(this.timeoutMs) });
    const text = await res.text();
    if (!res.ok) throw new Error(`peer lookup at ${url} failed with HTTP ${res.status}: ${errorDetail(text)}`);
    const body = JSON.parse(text) as { items?: unknown };
    if (!Array.isArray(body.items)) throw new Error(`peer lookup at ${url}: no items in the reply`);
    return body.items.flatMap((p: { worker_id?: unknown; url?: unknown }) =>
      typeof p?.worker_id === 'string' && typeof p.url === 'string' ? [{ worker_id: p.worker_id, url: p.url }] : [],
    );
  }

  async openImage(sha256: string, from = 0): Promise<Readable> {
    return this.openStored(
      `images/${encodeURIComponent(sha256)}`,
      'image',
      () => new WorkerError('IMAGE_NOT_CACHED', `image ${sha256} is not in storage`),
      from,
    );
  }

  /**
   * A stored object's body (`GET {storage}/{path}`). The timeout covers the response head only:
   * clearing it leaves the body unbounded in time (its reader abandons a body that stalls).
   * Storage's BLOB_NOT_FOUND is `notFound()`; any other refusal an Error naming `what`. With
   * `from` > 0 only the rest is asked for (`Range: bytes=from-`) and only a 206 starting there
   * is taken; a whole answer (200) is RangeNotHonored.
   */
  private async openStored(path: string, what: string, notFound: () => WorkerError, from = 0): Promise<Readable> {
    const url = `${this.storage}/${path}`;
    const head = new AbortController();
    const timer = setTimeout(() => head.abort(new Error(`no answer from ${url} within ${this.timeoutMs} ms`)), this.timeoutMs);
    let res: HttpBody;
    try {
      const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
      if (from > 0) headers.range = `bytes=${from}-`;
      res = await httpGetBody(url, { headers, signal: head.signal });
    } finally {
      clearTimeout(timer);
    }
    if (from > 0 && res.statusCode === 206) {
      if (res.headers['content-range']?.startsWith(`bytes ${from}-`)) return res;
      res.destroy();
      throw new Error(`${what} download from ${url}: asked for bytes ${from}- and got ${res.headers['content-range']}`);
    }
    if (from > 0 && res.statusCode === 200) {
      res.destroy();
      throw new RangeNotHonored(`${what} download from ${url}: storage sent the whole object, not bytes ${from}-`);
    }
    if (res.statusCode === 200 && from === 0) return res;
    const text = await readErrorText(res).catch(() => '');
    if (res.statusCode === 404 && errorCode(text) === 'BLOB_NOT_FOUND') throw notFound();
    throw new Error(`${what} download from ${url} failed with HTTP ${res.statusCode}: ${errorDetail(text)}`);
  }

  /**
   * `PUT {storage}/snapshots/{id}` with the archive as a chunked body. When `archive` errors the
   * request is destroyed mid-body (no final chunk), so the proxy's put fails and stores nothing.
   */
  async putSnapshot(snapshotId: string, archive: Readable): Promise<void> {
    const url = `${this.storage}/snapshots/${encodeURIComponent(snapshotId)}`;
    const res = await httpPutStream(url, {
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/octet-stream' },
      body: archive,
      idleTimeoutMs: Math.max(60_000, this.timeoutMs * 6),
    });
    const text = await readErrorText(res).catch(() => '');
    if (res.statusCode !== 200 && res.statusCode !== 201)
      throw new Error(`snapshot upload to ${url} failed with HTTP ${res.statusCode}: ${errorDetail(text)}`);
  }

  async openSnapshot(snapshotId: string): Promise<Readable> {
    return this.openStored(
      `snapshots/${encodeURIComponent(snapshotId)}`,
      'snapshot',
      () => new WorkerError('SNAPSHOT_NOT_FOUND', `snapshot ${snapshotId} is not in storage`),
    );
  }
}

function errorCode(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** `CODE: message` of an API error body, else the start of the raw text. */
function errorDetail(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error) return `${body.error.code}: ${body.error.message}`;
  } catch {
    /* not JSON: keep the raw text */
  }
  return text.slice(0, 500);
}
