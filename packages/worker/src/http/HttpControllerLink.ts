/**
 * The worker's side of the controller over HTTP: one POST per heartbeat, authenticated with
 * the worker token. Failures throw; the Worker logs them and retries on the next tick.
 */
import type { ControllerLink, Heartbeat } from '../WorkerApi.js';

type HeartbeatReply = Awaited<ReturnType<ControllerLink['heartbeat']>>;

export interface HttpControllerLinkOptions {
  /** Bound on one heartbeat round trip (default 10000 ms), so a hung controller never stalls the loop. */
  timeoutMs?: number;
}

export class HttpControllerLink implements ControllerLink {
  private readonly endpoint: string;
  private readonly storage: string;
  private readonly timeoutMs: number;

  constructor(
    controllerUrl: string,
    private readonly token: string,
    opts: HttpControllerLinkOptions = {},
  ) {
    const base = `${controllerUrl.replace(/\/+$/, '')}/v1/modules/scaibunker`;
    this.endpoint = `${base}/heartbeat`;
    this.storage = `${base}/storage/scaibunker/audit`;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async putAuditBatch(bunkerId: string, name: string, ndjson: Buffer): Promise<void> {
    const url = `${this.storage}/${encodeURIComponent(bunkerId)}/${encodeURIComponent(name)}`;
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
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(hb),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) {
      let detail = text.slice(0, 500);
      try {
        const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
        if (body.error) detail = `${body.error.code}: ${body.error.message}`;
      } catch {
        /* not JSON: keep the raw text */
      }
      throw new Error(`heartbeat to ${this.endpoint} failed with HTTP ${res.status}: ${detail}`);
    }
    const reply = JSON.parse(text) as Partial<HeartbeatReply>;
    return {
      ok: reply.ok === true,
      heartbeat_interval_s: typeof reply.heartbeat_interval_s === 'number' ? reply.heartbeat_interval_s : 0,
      unknown_bunkers: Array.isArray(reply.unknown_bunkers) ? reply.unknown_bunkers.filter((x): x is string => typeof x === 'string') : [],
      unknown_bridges: Array.isArray(reply.unknown_bridges) ? reply.unknown_bridges.filter((x): x is string => typeof x === 'string') : [],
    };
  }
}
