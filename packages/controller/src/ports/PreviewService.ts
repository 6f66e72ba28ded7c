import { hash, randomBytes } from 'node:crypto';
import { ApiError, type BunkerState, hasPermission, newId, type schemas, TERMINAL_STATES } from '@scaibunker/core';
import type { AuditTrail } from '../audit/AuditTrail.js';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { Store } from '../store/Store.js';
import type { PortPreviewRow } from '../store/schema.js';
import { previewHostname } from './previewHost.js';

const TOKEN_PREFIX = 'sbpv_';

export function hashPreviewToken(token: string): string {
  return hash('sha256', token, 'hex');
}

/** Who a preview request acts as: the preview itself, in the bunker's tenant, with no permissions. */
export interface PreviewGrant {
  principal: Principal;
  previewId: string;
  expiresAt: string;
}

/**
 * Host-based previews of a bunker's port: created by a caller with `scaibunker:execute` (public
 * ones also need `scaibunker:preview:public`), expiring (60 s to 7 days) and revocable. Tokens
 * are random (256 bits), shown once, and stored as their sha256 only; every preview request is
 * checked against the database, so a revocation holds on every controller at once.
 */
export class PreviewService {
  constructor(
    private readonly store: Store,
    private readonly bunkers: BunkerService,
    private readonly config: { previewDomain: string | null; previewScheme: 'http' | 'https' },
    private readonly audit?: AuditTrail,
  ) {}

  get domain(): string | null {
    return this.config.previewDomain;
  }

  async create(principal: Principal, bunkerId: string, body: schemas.CreatePreviewBody): Promise<schemas.Preview> {
    const bunker = await this.bunkers.get(principal, bunkerId);
    if (!this.config.previewDomain)
      throw new ApiError('PREVIEWS_DISABLED', 'this deployment serves no previews (start the controller with --preview-domain)');
    if (body.public && !hasPermission(principal.permissions, 'scaibunker:preview:public')) {
      throw new ApiError('PERMISSION_DENIED', 'a public preview needs scaibunker:preview:public', { needed: 'scaibunker:preview:public' });
    }
    if (TERMINAL_STATES.has(bunker.state as BunkerState))
      throw new ApiError('BUNKER_NOT_RUNNING', `bunker ${bunkerId} is ${bunker.state}`, { state: bunker.state });
    const token = body.public ? null : `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const now = Date.now();
    const row: PortPreviewRow = {
      id: newId('pv'),
      tenant_id: principal.tenantId,
      bunker_id: bunkerId,
      port: body.port,
      token_sha256: token ? hashPreviewToken(token) : null,
      public: body.public ? 1 : 0,
      created_by: principal.actor,
      created_at: new Date(now).toISOString(),
      expires_at: new Date(now + (body.expires_in_s ?? 3600) * 1000).toISOString(),
      revoked_at: null,
    };
    await this.store.previews.insert(row);
    this.audit?.record(principal, {
      action: 'preview.create',
      target: { type: 'preview', id: row.id },
      bunkerId,
      details: { port: row.port, public: row.public === 1, expires_at: row.expires_at },
    });
    return this.toApi(row, token);
  }

  async list(principal: Principal, bunkerId: string): Promise<schemas.PreviewList> {
    await this.bunkers.get(principal, bunkerId);
    return { items: (await this.store.previews.list(principal.tenantId, bunkerId)).map((r) => this.toApi(r, null)) };
  }

  async revoke(principal: Principal, bunkerId: string, previewId: string): Promise<void> {
    await this.bunkers.get(principal, bunkerId);
    const before = await this.store.previews.get(principal.tenantId, bunkerId, previewId);
    if (!before) throw new ApiError('PREVIEW_NOT_FOUND', `no preview ${previewId} of bunker ${bunkerId}`, { preview_id: previewId });
    if (before.revoked_at) return;
    await this.store.previews.revoke(principal.tenantId, bunkerId, previewId, new Date().toISOString());
    this.audit?.record(principal, {
      action: 'preview.revoke',
      target: { type: 'preview', id: previewId },
      bunkerId,
      details: { port: before.port },
    });
  }

  /**
   * The grant for a request to a preview host: its token's preview when that is for this bunker
   * and port, live and not revoked; without a token, a live public preview of it. UNAUTHENTICATED
   * otherwise (never saying whether the bunker exists).
   */
  async authorize(bunkerId: string, port: number, token: string | undefined, now = new Date()): Promise<PreviewGrant> {
    const at = now.toISOString();
    let row: PortPreviewRow | undefined;
    if (token) {
      row = await this.store.previews.byTokenHash(hashPreviewToken(token));
      if (!row || row.bunker_id !== bunkerId || row.port !== port)
        throw new ApiError('UNAUTHENTICATED', 'preview token is not valid for this host');
      if (row.revoked_at) throw new ApiError('UNAUTHENTICATED', 'preview token was revoked');
      if (row.expires_at <= at) throw new ApiError('UNAUTHENTICATED', 'preview token expired');
    } else {
      row = await this.store.previews.livePublic(bunkerId, port, at);
      if (!row) throw new ApiError('UNAUTHENTICATED', `this preview needs a token (${'X-ScaiBunker-Preview-Token'}, or a ?token= link)`);
    }
    return {
      principal: {
        kind: 'api_key',
        tenantId: row.tenant_id,
        actor: `preview:${row.id}`,
        userId: row.created_by,
        permissions: [],
        groups: [],
      },
      previewId: row.id,
      expiresAt: row.expires_at,
    };
  }

  url(bunkerId: string, port: number): string {
    return `${this.config.previewScheme}://${previewHostname(this.config.previewDomain ?? 'preview.invalid', bunkerId, port)}/`;
  }

  private toApi(row: PortPreviewRow, token: string | null): schemas.Preview {
    return {
      id: row.id,
      bunker_id: row.bunker_id,
      port: row.port,
      url: this.url(row.bunker_id, row.port),
      token,
      public: row.public === 1,
      created_by: row.created_by,
      created_at: row.created_at,
      expires_at: row.expires_at,
      revoked_at: row.revoked_at,
    };
  }
}
