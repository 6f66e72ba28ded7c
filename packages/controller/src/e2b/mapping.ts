import { ApiError, type FileStatInfo, type schemas } from '@scaibunker/core';
import type { Store } from '../store/Store.js';
import type { BunkerRow } from '../store/schema.js';

/**
 * The envd version we answer as. It picks which SDK code paths run: ≥ 0.4.0 sends no default
 * user, ≥ 0.5.2 has CloseStdin, ≥ 0.5.7 octet-stream uploads; below 0.6.2 the SDK itself refuses
 * file metadata (xattrs) and below 0.6.3/0.6.4 watch `includeEntry` / `allowNetworkMounts`,
 * which we do not serve either.
 */
export const ENVD_VERSION = '0.5.7';

/** The SDK's default template (`base`) when the tenant has no image of that name. */
export const BASE_TEMPLATE_IMAGE = 'minimal';

/** Metadata keys read as the bunker's resources (the E2B API has no field for them); kept as labels too. */
export const RESOURCE_KEYS = {
  'scaibunker.cpu_millicores': 'cpu_millicores',
  'scaibunker.memory_mb': 'memory_mb',
  'scaibunker.disk_mb': 'disk_mb',
} as const;

/** E2B's `NewSandbox` / `NewSandboxV2` (only what we read; the rest is refused when set). */
export interface NewSandbox {
  templateID?: string;
  timeout?: number;
  metadata?: Record<string, string>;
  envVars?: Record<string, string>;
  autoPause?: boolean;
  autoPauseMemory?: boolean;
  autoResume?: { enabled?: boolean };
  allow_internet_access?: boolean;
  secure?: boolean;
  network?: {
    allowOut?: string[];
    denyOut?: string[];
    allowPublicTraffic?: boolean;
    egressProxy?: unknown;
    rules?: Record<string, unknown>;
    maskRequestHost?: string;
    httpsPorts?: number[];
  };
  mcp?: unknown;
  iam?: { tokens?: Record<string, unknown> };
  volumeMounts?: unknown[];
}

/** Default E2B timeout (s) when a create gives none, as the API does. */
export const DEFAULT_TIMEOUT_S = 300;
const MAX_TIMEOUT_S = 7 * 86400;

function refuse(field: string, why: string): never {
  throw new ApiError('VALIDATION_FAILED', `${field}: ${why}`, { field: `body/${field}` });
}

/** The image a template id names: an image of that name, else `base` → BASE_TEMPLATE_IMAGE. */
export async function templateImage(store: Store, tenantId: string, templateId: string | undefined): Promise<string> {
  const name = templateId ?? 'base';
  if (await store.images.findVisible(tenantId, name)) return name;
  if (name === 'base') return BASE_TEMPLATE_IMAGE;
  // BunkerService answers IMAGE_NOT_FOUND naming it.
  return name;
}

const ALL = new Set(['0.0.0.0/0', '0.0.0.0', '::/0']);
const IP_OR_CIDR = /^[\d.]+(\/\d+)?$|:/;

/** E2B's network settings onto our profiles; what has no equivalent is refused, never ignored. */
export function networkOf(body: NewSandbox): Pick<schemas.CreateBunkerBody, 'network_profile' | 'network_allowlist'> {
  const n = body.network;
  if (n?.egressProxy) refuse('network/egressProxy', 'egress proxies are not supported');
  if (n?.rules && Object.keys(n.rules).length > 0) refuse('network/rules', 'request transform rules are not supported');
  if (n?.maskRequestHost !== undefined) refuse('network/maskRequestHost', 'not supported');
  if (n?.httpsPorts?.length) refuse('network/httpsPorts', 'not supported (ports are reached through the API with a key or a preview)');
  if (n?.allowPublicTraffic === true)
    refuse('network/allowPublicTraffic', 'sandbox ports are never public here; make a public preview instead');
  const deny = n?.denyOut ?? [];
  const allow = n?.allowOut ?? [];
  const denyAll = body.allow_internet_access === false || deny.some((d) => ALL.has(d));
  const partialDeny = deny.filter((d) => !ALL.has(d));
  if (partialDeny.length > 0) {
    refuse(
      'network/denyOut',
      `only 0.0.0.0/0 (deny everything) is supported, not ${partialDeny.join(', ')}: egress is allowed by host name`,
    );
  }
  if (allow.length > 0) {
    const ips = allow.filter((a) => IP_OR_CIDR.test(a));
    if (ips.length > 0) refuse('network/allowOut', `addresses and CIDRs are not supported (${ips.join(', ')}): allow host names`);
    if (!denyAll) return { network_profile: 'unrestricted' };
    return { network_profile: 'allowlisted', network_allowlist: allow };
  }
  if (denyAll) return { network_profile: 'isolated' };
  // Internet access asked for explicitly; otherwise ScaiBunker's default: no network.
  if (body.allow_internet_access === true || n) return { network_profile: 'unrestricted' };
  return {};
}

/** E2B's create body as ours. */
export function createBodyOf(body: NewSandbox, image: string): schemas.CreateBunkerBody {
  if (body.mcp) refuse('mcp', 'the MCP gateway is not available');
  if (body.iam?.tokens && Object.keys(body.iam.tokens).length > 0) refuse('iam', 'workload identity tokens are not supported');
  if (body.volumeMounts?.length) refuse('volumeMounts', 'volumes are not supported');
  if (body.autoPauseMemory === true)
    refuse('autoPauseMemory', 'a paused-on-timeout sandbox keeps its files, not its memory: leave it unset or false');
  if (body.autoResume?.enabled && !body.autoPause) refuse('autoResume', 'needs autoPause');
  const timeout = body.timeout ?? DEFAULT_TIMEOUT_S;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_TIMEOUT_S) refuse('timeout', `must be 1 to ${MAX_TIMEOUT_S} seconds`);
  const resources: Partial<Record<'cpu_millicores' | 'memory_mb' | 'disk_mb', number>> = {};
  for (const [key, field] of Object.entries(RESOURCE_KEYS)) {
    const v = body.metadata?.[key];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isInteger(n)) refuse(`metadata/${key}`, 'must be an integer');
    resources[field] = n;
  }
  for (const key of Object.keys(body.metadata ?? {})) {
    if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(key)) {
      refuse(`metadata/${key}`, 'metadata keys are lower-case letters, digits, . _ - (at most 63), as bunker labels are');
    }
  }
  const persistent = body.autoPause === true;
  return {
    image,
    lifecycle: persistent ? 'persistent' : 'ephemeral',
    ...(persistent ? { auto_resume: body.autoResume?.enabled === true } : {}),
    ...(persistent ? { idle_timeout_s: timeout } : { idle_timeout_s: timeout, max_lifetime_s: timeout }),
    ...resources,
    ...networkOf(body),
    ...(body.envVars ? { env: body.envVars } : {}),
    ...(body.metadata ? { metadata: body.metadata } : {}),
  };
}

/** The row fields a timeout sets: killed `timeoutS` from now, or (autoPause) passivated after `timeoutS` idle. */
export function lifetimeFor(row: BunkerRow, timeoutS: number): { idle_timeout_s: number; max_lifetime_s: number | null } {
  if (!Number.isInteger(timeoutS) || timeoutS < 1 || timeoutS > MAX_TIMEOUT_S) refuse('timeout', `must be 1 to ${MAX_TIMEOUT_S} seconds`);
  if (row.lifecycle === 'persistent') return { idle_timeout_s: timeoutS, max_lifetime_s: row.max_lifetime_s };
  const age = Math.ceil((Date.now() - Date.parse(row.created_at)) / 1000);
  return { idle_timeout_s: Math.min(MAX_TIMEOUT_S, age + timeoutS), max_lifetime_s: age + timeoutS };
}

function endAt(r: BunkerRow): string {
  if (r.max_lifetime_s !== null) return new Date(Date.parse(r.created_at) + r.max_lifetime_s * 1000).toISOString();
  return new Date(Date.parse(r.last_activity_at) + r.idle_timeout_s * 1000).toISOString();
}

export function listedSandbox(r: BunkerRow) {
  return {
    sandboxID: r.id,
    templateID: r.image,
    alias: r.image,
    clientID: r.worker_id ?? 'scaibunker',
    startedAt: r.started_at ?? r.created_at,
    endAt: endAt(r),
    cpuCount: Math.max(1, Math.ceil(r.cpu_millicores / 1000)),
    memoryMB: r.memory_mb,
    diskSizeMB: r.disk_mb,
    metadata: JSON.parse(r.metadata) as Record<string, string>,
    state: r.state === 'paused' ? 'paused' : 'running',
    envdVersion: ENVD_VERSION,
    volumeMounts: [],
  };
}

export function sandboxDetail(r: BunkerRow, domain: string | null = null) {
  const allowlist = r.network_allowlist ? (JSON.parse(r.network_allowlist) as string[]) : null;
  return {
    ...listedSandbox(r),
    domain,
    allowInternetAccess: r.network_profile === 'unrestricted' ? true : r.network_profile === 'isolated' ? false : null,
    network:
      r.network_profile === 'allowlisted'
        ? { allowOut: allowlist ?? [], denyOut: ['0.0.0.0/0'] }
        : r.network_profile === 'isolated'
          ? { denyOut: ['0.0.0.0/0'] }
          : {},
    lifecycle: { onTimeout: r.lifecycle === 'persistent' ? 'pause' : 'kill', autoResume: Number(r.auto_resume) === 1 },
  };
}

/** E2B's EntryInfo (protobuf JSON): type enum names, int64 as a string, Timestamp as RFC 3339. */
export function entryInfo(s: FileStatInfo) {
  const type = s.type === 'dir' ? 'FILE_TYPE_DIRECTORY' : s.type === 'symlink' ? 'FILE_TYPE_SYMLINK' : 'FILE_TYPE_FILE';
  return {
    name: s.name,
    type,
    path: s.path,
    size: String(s.size),
    mode: s.mode & 0o7777,
    permissions: permissionString(s),
    owner: '',
    group: '',
    modifiedTime: new Date(s.mtime_ms).toISOString(),
    ...(s.link_target !== undefined ? { symlinkTarget: s.link_target } : {}),
  };
}

function permissionString(s: FileStatInfo): string {
  const kind = s.type === 'dir' ? 'd' : s.type === 'symlink' ? 'L' : '-';
  let out = kind;
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (s.mode >> shift) & 7;
    out += `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  }
  return out;
}

/** Our watch event types → E2B's EventType enum names (overflow has none: dropped). */
export const WATCH_TYPES: Record<string, string | undefined> = {
  create: 'EVENT_TYPE_CREATE',
  write: 'EVENT_TYPE_WRITE',
  remove: 'EVENT_TYPE_REMOVE',
  rename: 'EVENT_TYPE_RENAME',
  chmod: 'EVENT_TYPE_CHMOD',
};

/** Home of an envd user (relative paths resolve against it, commands start in it). */
export function homeOf(user: string): string {
  return user === 'root' ? '/root' : `/home/${user}`;
}

/** An envd path (absolute, or relative to the user's home) as an absolute one. */
export function absolute(path: string | undefined, user: string): string {
  if (!path) return homeOf(user);
  if (path.startsWith('/')) return path;
  if (path === '~') return homeOf(user);
  return `${homeOf(user)}/${path.replace(/^~\//, '')}`;
}
