import { ApiError, type BunkerState, hasPermission, schemas, TERMINAL_STATES } from '@scaibunker/core';
import { Value } from '@sinclair/typebox/value';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { ImageService } from '../images/ImageService.js';
import type { Passivation } from '../snapshots/Passivation.js';
import type { Store } from '../store/Store.js';
import type { BunkerRow } from '../store/schema.js';
import type { EnvdTokens } from './EnvdTokens.js';
import { createBodyOf, ENVD_VERSION, lifetimeFor, listedSandbox, type NewSandbox, sandboxDetail, templateImage } from './mapping.js';

/** What `POST /v2/sandboxes` and `…/connect` answer (E2B's `Sandbox`). */
export interface E2bSandbox {
  sandboxID: string;
  templateID: string;
  clientID: string;
  envdVersion: string;
  envdAccessToken: string;
  /** The preview domain (the SDK's `getHost(port)` is `{port}-{id}.{domain}`), null without one. */
  domain: string | null;
  trafficAccessToken: string;
}

/** Rows looked at per list call at most before answering with a next token (ended bunkers are skipped). */
const LIST_SCAN_CAP = 1000;

/**
 * E2B's control plane mapped onto bunkers: a sandbox is a bunker (same id), its template an
 * image, its timeout the bunker's lifetime (or, with `autoPause`, the idle time after which a
 * persistent bunker is passivated). Everything goes through BunkerService and Passivation, so
 * tenancy, permissions, quotas and audit are the ones of the native API.
 */
export class E2bSandboxes {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly passivation: Passivation,
    private readonly images: ImageService,
    private readonly tokens: EnvdTokens,
    private readonly previewDomain: string | null = null,
  ) {}

  async create(principal: Principal, credential: string | undefined, body: NewSandbox): Promise<E2bSandbox> {
    const image = await templateImage(this.store, principal.tenantId, body.templateID);
    const create = createBodyOf(body, image);
    if (!Value.Check(schemas.CreateBunkerBody, create)) {
      const e = [...Value.Errors(schemas.CreateBunkerBody, create)][0];
      throw new ApiError('VALIDATION_FAILED', `${e?.path ?? 'body'} ${e?.message ?? 'is invalid'}`, { field: `body${e?.path ?? ''}` });
    }
    const row = await this.bunkers.create(principal, create);
    return this.answer(principal, credential, row, body.templateID ?? 'base');
  }

  /** Connect: a paused (or passivated) sandbox is resumed; the timeout is only ever extended. */
  async connect(
    principal: Principal,
    credential: string | undefined,
    id: string,
    timeoutS: number | undefined,
  ): Promise<{ resumed: boolean; sandbox: E2bSandbox }> {
    let row = await this.live(principal, id);
    let resumed = false;
    if (row.state === 'paused') {
      if (!hasPermission(principal.permissions, 'scaibunker:execute')) {
        throw new ApiError('PERMISSION_DENIED', 'resuming a paused sandbox needs scaibunker:execute', { needed: 'scaibunker:execute' });
      }
      row = await this.bunkers.setPaused(principal, id, false);
      resumed = true;
    }
    if (timeoutS !== undefined) row = await this.extend(row, timeoutS, false);
    return { resumed, sandbox: await this.answer(principal, credential, row, row.image) };
  }

  async resume(principal: Principal, credential: string | undefined, id: string, timeoutS: number | undefined): Promise<E2bSandbox> {
    const row = await this.live(principal, id);
    if (row.state !== 'paused') throw new ApiError('BUNKER_INVALID_TRANSITION', `sandbox ${id} is not paused`, { state: row.state });
    return (await this.connect(principal, credential, id, timeoutS)).sandbox;
  }

  async list(
    principal: Principal,
    q: { metadata?: string; state?: string | string[]; limit?: number; nextToken?: string },
  ): Promise<{ items: ReturnType<typeof listedSandbox>[]; nextToken: string | null }> {
    const labels = parseMetadataQuery(q.metadata);
    const states = new Set(typeof q.state === 'string' ? q.state.split(',') : (q.state ?? ['running', 'paused']));
    for (const s of states) {
      if (s !== 'running' && s !== 'paused')
        throw new ApiError('VALIDATION_FAILED', `state must be running or paused, not ${s}`, { field: 'querystring/state' });
    }
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 200);
    const items: BunkerRow[] = [];
    let cursor = q.nextToken;
    let scanned = 0;
    for (;;) {
      const page = await this.store.bunkers.list({
        tenantId: principal.tenantId,
        labels,
        limit: limit - items.length,
        ...(cursor ? { cursor } : {}),
      });
      scanned += page.items.length;
      for (const r of page.items) if (states.has(e2bState(r))) items.push(r);
      cursor = page.nextCursor ?? undefined;
      if (!cursor || items.length >= limit || scanned >= LIST_SCAN_CAP) break;
    }
    return { items: items.map((r) => listedSandbox(r)), nextToken: cursor ?? null };
  }

  async get(principal: Principal, id: string) {
    return sandboxDetail(await this.live(principal, id), this.previewDomain);
  }

  /** E2B forgets killed sandboxes: an ended bunker is 404, like one that never existed. */
  async kill(principal: Principal, id: string): Promise<void> {
    await this.live(principal, id);
    await this.bunkers.terminate(principal, id);
  }

  async setTimeout(principal: Principal, id: string, timeoutS: number): Promise<void> {
    await this.extend(await this.live(principal, id), timeoutS, true);
  }

  /**
   * Pause keeps memory (the cgroup freezer: processes stay as they are) unless `memory: false`,
   * which passivates an `autoPause` (persistent) sandbox: files kept in a snapshot, worker
   * resources released. Already paused: 409, which the SDK reads as "was already paused".
   */
  async pause(principal: Principal, id: string, memory: boolean | undefined): Promise<void> {
    const row = await this.live(principal, id);
    if (row.state === 'paused') throw new ApiError('BUNKER_INVALID_TRANSITION', `sandbox ${id} is already paused`, { state: row.state });
    if (memory === false) {
      if (row.lifecycle !== 'persistent') {
        throw new ApiError(
          'VALIDATION_FAILED',
          'memory: false (a filesystem-only pause) needs a sandbox created with autoPause (onTimeout: pause)',
          { field: 'body/memory' },
        );
      }
      await this.passivation.passivateFor(principal, id);
      return;
    }
    await this.bunkers.setPaused(principal, id, true);
  }

  /** One reading now (E2B keeps a series; we answer the current one). */
  async metrics(principal: Principal, id: string) {
    const row = await this.live(principal, id);
    if (row.state !== 'running') return [];
    const { worker } = await this.bunkers.requireRunning(principal, id);
    const s = (await worker.stats([id]).catch(() => ({}) as Record<string, undefined>))[id];
    if (!s) return [];
    const now = Date.now();
    const cpuCount = Math.max(1, Math.ceil(row.cpu_millicores / 1000));
    const wallNs = Math.max(1, (now - Date.parse(row.started_at ?? row.created_at)) * 1e6);
    return [
      {
        timestamp: new Date(now).toISOString(),
        timestampUnix: Math.floor(now / 1000),
        cpuCount,
        cpuUsedPct: Math.min(100, Math.round(((s.cpuUsageNs / wallNs) * 10000) / cpuCount) / 100),
        memUsed: s.memoryBytes,
        memTotal: row.memory_mb * 1048576,
        memCache: 0,
        diskUsed: s.diskUsedBytes ?? 0,
        diskTotal: row.disk_mb * 1048576,
      },
    ];
  }

  /** Images the tenant can use, as E2B templates (the name is both id and alias). */
  async templates(principal: Principal) {
    const images = await this.images.list(principal);
    return images
      .filter((i) => i.state === 'ready')
      .map((i) => ({
        templateID: i.name,
        buildID: i.sha256 ?? i.id,
        aliases: [i.name],
        names: [i.name],
        public: i.scope !== 'tenant',
        cpuCount: 1,
        memoryMB: 512,
        diskSizeMB: Math.ceil((i.size_bytes ?? 0) / 1048576),
        envdVersion: ENVD_VERSION,
        buildStatus: 'ready',
        buildCount: 1,
        spawnCount: 0,
        createdAt: i.created_at,
        updatedAt: i.created_at,
        lastSpawnedAt: null,
        createdBy: null,
      }));
  }

  private async answer(principal: Principal, credential: string | undefined, row: BunkerRow, template: string): Promise<E2bSandbox> {
    const token = this.tokens.mint(principal, row.id, credential);
    return {
      sandboxID: row.id,
      templateID: template,
      clientID: row.worker_id ?? 'scaibunker',
      envdVersion: ENVD_VERSION,
      envdAccessToken: token,
      domain: this.previewDomain,
      // @e2b/code-interpreter sends only this one on its /contexts calls, and preview hosts take it
      // as `e2b-traffic-access-token` (PreviewGateway): the same token.
      trafficAccessToken: token,
    };
  }

  /** The bunker, unless it ended (E2B: not found). */
  private async live(principal: Principal, id: string): Promise<BunkerRow> {
    const row = await this.bunkers.get(principal, id);
    if (TERMINAL_STATES.has(row.state as BunkerState)) throw new ApiError('BUNKER_NOT_FOUND', `sandbox ${id} has ended`, { bunker_id: id });
    return row;
  }

  /** The sandbox ends (or, autoPause, passivates when idle) `timeoutS` from now; `set` may shorten it, connect only extends. */
  private async extend(row: BunkerRow, timeoutS: number, set: boolean): Promise<BunkerRow> {
    const patch = lifetimeFor(row, timeoutS);
    if (!set && patch.max_lifetime_s !== null && row.max_lifetime_s !== null && patch.max_lifetime_s <= row.max_lifetime_s) return row;
    if (!set && row.lifecycle === 'persistent' && patch.idle_timeout_s <= row.idle_timeout_s) return row;
    await this.store.bunkers.update(row.id, patch);
    this.bunkers.touch(row.id);
    return { ...row, ...patch };
  }
}

export function e2bState(r: BunkerRow): 'running' | 'paused' | 'ended' {
  if (TERMINAL_STATES.has(r.state as BunkerState)) return 'ended';
  return r.state === 'paused' ? 'paused' : 'running';
}

/** E2B's metadata filter: `k=v&k2=v2`, keys and values URL-encoded (once more by the SDK). */
function parseMetadataQuery(q: string | undefined): Array<[string, string]> {
  if (!q) return [];
  return [...new URLSearchParams(q)].map(([k, v]) => [decodeURIComponent(k), decodeURIComponent(v)]);
}
