import { BakeError } from './BakeError.js';
import type { RegistryCredentials } from './types.js';

export interface AuthChallenge {
  scheme: 'bearer' | 'basic';
  params: Record<string, string>;
}

/** Parses a `WWW-Authenticate` header: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseWwwAuthenticate(header: string | null): AuthChallenge | undefined {
  const m = header ? /^\s*([A-Za-z]+)(?:\s+(.*))?$/s.exec(header) : null;
  const scheme = m?.[1]?.toLowerCase();
  if (scheme !== 'bearer' && scheme !== 'basic') return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  const text = m?.[2] ?? '';
  for (let p = re.exec(text); p; p = re.exec(text)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : (p[3] ?? '');
  }
  return { scheme, params };
}

export function basicAuthHeader(c: RegistryCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`, 'utf8').toString('base64')}`;
}

/**
 * Gets a bearer token from the challenge's realm (the distribution token protocol): GET
 * realm?service=…&scope=…, with basic auth when we have credentials, anonymous otherwise.
 * `allowHttp` decides whether a plain-http realm may be used (only for insecure registries).
 */
export async function fetchBearerToken(opts: {
  challenge: AuthChallenge;
  defaultScope: string;
  credentials?: RegistryCredentials;
  allowHttp: (hostPort: string) => boolean;
  signal?: AbortSignal;
}): Promise<string> {
  const { realm, service, scope } = opts.challenge.params;
  if (!realm) throw new BakeError('AUTH_FAILED', 'registry sent a Bearer challenge without a realm');
  let url: URL;
  try {
    url = new URL(realm);
  } catch {
    throw new BakeError('AUTH_FAILED', `registry sent an invalid token realm ${JSON.stringify(realm)}`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && opts.allowHttp(url.host))) {
    throw new BakeError('AUTH_FAILED', `refusing token realm ${url.origin}: only https, or http for insecure registries`);
  }
  if (service) url.searchParams.set('service', service);
  url.searchParams.set('scope', scope || opts.defaultScope);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.credentials) headers.authorization = basicAuthHeader(opts.credentials);
  let res: Response;
  try {
    res = await fetch(url, { headers, ...(opts.signal ? { signal: opts.signal } : {}) });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new BakeError('REGISTRY_UNREACHABLE', `token service ${url.origin} unreachable: ${(err as Error).message}`, { cause: err });
  }
  if (res.status === 401 || res.status === 403) {
    await res.body?.cancel();
    throw new BakeError(
      'AUTH_FAILED',
      `token service ${url.origin} refused ${opts.credentials ? 'the credentials' : 'anonymous access'} (HTTP ${res.status})`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new BakeError('REGISTRY_UNREACHABLE', `token service ${url.origin} answered HTTP ${res.status}`);
  }
  const body = (await res.json().catch(() => ({}))) as { token?: unknown; access_token?: unknown };
  const token = typeof body.token === 'string' && body.token ? body.token : body.access_token;
  if (typeof token !== 'string' || !token) throw new BakeError('AUTH_FAILED', `token service ${url.origin} returned no token`);
  return token;
}
