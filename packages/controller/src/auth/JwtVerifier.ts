import { createRemoteJWKSet, type JWTPayload, jwtVerify } from 'jose';

export interface JwtConfig {
  /** HS256 shared secret. */
  hs256Secret?: string;
  /** JWKS URL of an external identity provider (RS256/ES256…). */
  jwksUrl?: string;
  issuer?: string;
  audience?: string;
}

/**
 * Verifies bearer JWTs; claims `sub`, `tenant_id`, `permissions` (array) or `scope`
 * (space-separated), and optionally `groups` (array of strings; absent: none).
 */
export class JwtVerifier {
  private readonly jwks;
  private readonly secret;

  constructor(private readonly config: JwtConfig) {
    this.secret = config.hs256Secret ? new TextEncoder().encode(config.hs256Secret) : undefined;
    this.jwks = config.jwksUrl ? createRemoteJWKSet(new URL(config.jwksUrl)) : undefined;
  }

  get enabled(): boolean {
    return Boolean(this.secret || this.jwks);
  }

  async verify(token: string): Promise<{ sub: string; tenantId: string; permissions: string[]; groups: string[] }> {
    // jose's options take no undefined members: an unset issuer or audience is left out (not checked).
    const { issuer, audience } = this.config;
    const opts = { ...(issuer !== undefined ? { issuer } : {}), ...(audience !== undefined ? { audience } : {}) };
    let payload: JWTPayload;
    if (this.secret) {
      ({ payload } = await jwtVerify(token, this.secret, { ...opts, algorithms: ['HS256'] }));
    } else if (this.jwks) {
      ({ payload } = await jwtVerify(token, this.jwks, opts));
    } else {
      throw new Error('JWT auth is not configured');
    }
    const tenantId = payload.tenant_id;
    if (typeof tenantId !== 'string' || !payload.sub) throw new Error('token lacks sub or tenant_id');
    const perms = Array.isArray(payload.permissions)
      ? payload.permissions.filter((p): p is string => typeof p === 'string')
      : typeof payload.scope === 'string'
        ? payload.scope.split(' ').filter(Boolean)
        : [];
    const groups = payload.groups ?? [];
    if (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string' || g.length === 0 || g.length > 256)) {
      throw new Error('the groups claim must be an array of non-empty strings');
    }
    return { sub: payload.sub, tenantId, permissions: perms, groups: [...new Set(groups as string[])] };
  }
}
