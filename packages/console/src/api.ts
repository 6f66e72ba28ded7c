/** The console's only way to the API: `fetch` on this origin with `Authorization: Bearer <key>`. */

export const M = '/v1/modules/scaibunker';
/** The read-only dashboard's bunker list (same answer as `${M}/bunkers`). */
export const DASHBOARD_BUNKERS = '/v1/scaibunker/bunkers';

/** An `{error:{code,message,details}}` answer (or a network failure: status 0). */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export type Query = Record<string, string | number | boolean | undefined | null | string[]>;

export function withQuery(path: string, query: Query = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, x);
    else q.append(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export class Api {
  constructor(
    private readonly key: string,
    /** Called when the key stops being accepted (401): the app signs out. */
    private readonly onUnauthenticated: (f: ApiFailure) => void = () => {},
  ) {}

  async raw(method: string, path: string, init: { query?: Query; body?: BodyInit; type?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (init.type) headers['content-type'] = init.type;
    let res: Response;
    try {
      res = await fetch(withQuery(path, init.query), { method, headers, body: init.body ?? null, cache: 'no-store' });
    } catch (err) {
      throw new ApiFailure(0, 'NETWORK', `the API did not answer (${(err as Error).message})`);
    }
    if (res.ok) return res;
    let body: { error?: { code?: string; message?: string; details?: Record<string, unknown> } } = {};
    try {
      body = await res.json();
    } catch {
      // not JSON: a proxy's page
    }
    const f = new ApiFailure(
      res.status,
      body.error?.code ?? `HTTP_${res.status}`,
      body.error?.message ?? res.statusText ?? 'request failed',
      body.error?.details ?? {},
    );
    if (res.status === 401) this.onUnauthenticated(f);
    throw f;
  }

  async json<T>(method: string, path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
    const res = await this.raw(method, path, {
      ...(opts.query ? { query: opts.query } : {}),
      ...(opts.body !== undefined ? { body: JSON.stringify(opts.body), type: 'application/json' } : {}),
    });
    if (res.status === 204) return undefined as T;
    return (await res.json()) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.json<T>('GET', path, query ? { query } : {});
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.json<T>('POST', path, body === undefined ? {} : { body });
  }

  del<T>(path: string, query?: Query): Promise<T> {
    return this.json<T>('DELETE', path, query ? { query } : {});
  }
}

/** Checks a key before the console keeps it: 401 is a wrong key; 403 is a key that may not list bunkers (still a key). */
export async function checkKey(key: string): Promise<void> {
  try {
    await new Api(key).get(DASHBOARD_BUNKERS, { limit: 1 });
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 403) return;
    throw err;
  }
}

// ---- the shapes the console reads (a subset of the API's; see docs/API.md) -------------------

export interface Bunker {
  id: string;
  image: string;
  lifecycle: string;
  state: string;
  termination_reason: string | null;
  worker_id: string | null;
  worker_reachable: boolean;
  isolation: string;
  cpu_millicores: number;
  memory_mb: number;
  disk_mb: number;
  gpu_count: number;
  network_profile: string;
  idle_timeout_s: number;
  max_lifetime_s: number | null;
  metadata: Record<string, string>;
  created_at: string;
  started_at: string | null;
  last_activity_at: string;
  ended_at: string | null;
  snapshot_id: string | null;
}

export const ENDED_STATES = ['terminated', 'failed'];

export interface FileStat {
  path: string;
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  mode: string;
  mtime: string;
  link_target?: string;
}

export interface ExecLog {
  id: string;
  caller: string;
  command: string;
  exit_code: number | null;
  signal: string | null;
  timed_out: boolean;
  duration_ms: number | null;
  stdout_preview: string;
  stderr_preview: string;
  truncated: boolean;
  started_at: string;
  finished_at: string | null;
}

export interface Snapshot {
  id: string;
  bunker_id: string;
  name: string | null;
  source: string;
  state: string;
  size_bytes: number;
  error: string | null;
  created_at: string;
  expires_at: string | null;
}

export interface AuditEvent {
  id: string;
  actor: string;
  action: string;
  target_type: string;
  target_id: string;
  bunker_id: string | null;
  details: Record<string, unknown>;
  created_at: string;
}

export interface Worker {
  id: string;
  name: string;
  state: string;
  isolations: string[];
  network_profiles: string[];
  capacity: { cpu_millicores: number; memory_mb: number; disk_mb: number };
  allocated: { cpu_millicores: number; memory_mb: number; disk_mb: number };
  bunker_count: number;
  last_heartbeat_at: string | null;
}

export interface Image {
  id: string;
  name: string;
  sha256: string | null;
  state: string;
  scope: string;
  size_bytes: number | null;
  lazy_pull: boolean;
  progress: { phase: string; done?: number; total?: number; detail?: string } | null;
  failure: string | null;
  scan: {
    state: string;
    scanner: string | null;
    scanned_at: string | null;
    packages: number | null;
    counts: Record<'critical' | 'high' | 'medium' | 'low' | 'unknown', number> | null;
    vulnerabilities: Array<{ id: string; package: string; ecosystem: string; installed: string; fixed?: string; severity?: string }>;
    note?: string;
    error?: string;
  } | null;
  created_at: string;
}

export interface QuotaUsage {
  items: Array<{
    bucket: { kind: string; id: string; user_id: string | null; group: string | null };
    profile_ids: string[];
    resources: Record<string, { current: number; cap: number | null; remaining: number | null }>;
  }>;
  /** The tenant's stored exec output and snapshots, against their tenant-wide caps. */
  stored_output_bytes?: { current: number; cap: number | null; remaining: number | null };
  snapshot_bytes?: { current: number; cap: number | null; remaining: number | null };
}

export interface UsageItem {
  key: string | null;
  cpu_seconds: number;
  memory_mb_minutes: number;
  disk_mb_minutes: number;
  wall_seconds: number;
}
