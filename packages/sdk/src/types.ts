/**
 * Names for the API's shapes, all taken from the generated OpenAPI types: when the API changes,
 * regenerating src/generated/schema.ts changes these and the compiler finds every use.
 */
import type { components, paths } from './generated/schema.js';

type Schemas = components['schemas'];

/** A bunker as the API returns it. */
export type BunkerInfo = Schemas['Bunker'];
export type BunkerState = BunkerInfo['state'];
export type Lifecycle = BunkerInfo['lifecycle'];
export type CreateBunkerBody = Schemas['CreateBunker'];
export type NetworkProfile = NonNullable<CreateBunkerBody['network_profile']>;
/** `container` (default) or `microvm`. */
export type Isolation = NonNullable<CreateBunkerBody['isolation']>;
export type ExecRequestBody = Schemas['ExecRequest'];
export type ExecResult = Schemas['ExecResult'];
/** The SSE `exit` event's data: the exec result without stdout/stderr (those arrived as events). */
export type ExecExit = Omit<ExecResult, 'stdout' | 'stderr'>;
export type ExecLog = Schemas['ExecLog'];
export type AuditEvent = Schemas['AuditEvent'];
export type AuditBatch = Schemas['AuditBatch'];
/** A command started in a bunker (background or not), as `GET …/execs/{exec_id}` answers it. */
export type ProcessInfo = Schemas['Process'];
/** `running`, `exited`, `killed`, `timed_out` or `lost`. */
export type ProcessState = ProcessInfo['state'];
/** The signals the API lets a caller send to a process group. */
export type ProcessSignal = JsonRequestBody<'post', '/v1/modules/scaibunker/bunkers/{id}/execs/{exec_id}/signal'>['signal'];
export type ShellTicket = Schemas['ShellTicket'];
/** The terminal size of a `pty` process: `{cols, rows}` (1–1000 each). */
export type TerminalSize = Schemas['TerminalSize'];
/**
 * One `change` event of `GET …/files/watch` (the SSE data is not in the OpenAPI document, so it
 * is spelled out here as docs/API.md describes it). `overflow`: the kernel dropped events; rescan.
 */
export interface FileChangeEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod' | 'overflow';
  path: string;
  is_dir: boolean;
}

/** One finished flow of an `unrestricted` bunker, as its worker recorded it (one line of a batch). */
export interface FlowRecord {
  bunker_id: string;
  /** The original direction: the bunker's address and port to the remote one. */
  src: string;
  sport: number;
  dst: string;
  dport: number;
  proto: string;
  /** The name the bunker resolved `dst` from through its worker's DNS responder, if it did. */
  hostname: string | null;
  bytes_out: number;
  bytes_in: number;
  packets_out: number;
  packets_in: number;
  /** Conntrack's start and end (µs since the epoch); the end includes the kernel's state timeout. */
  start_us: number | null;
  end_us: number | null;
}
export type FileStat = Schemas['FileStat'];
export type FileType = FileStat['type'];
export type WriteResult = Schemas['WriteResult'];
export type ImageInfo = Schemas['Image'];
export type CreateImageBody = Schemas['CreateImageBody'];
export type AvailabilityGroup = Schemas['AvailabilityGroup'];
export type WorkerInfo = Schemas['Worker'];
export type Tenant = Schemas['Tenant'];
export type CreatedApiKey = Schemas['CreatedApiKey'];
export type Permission = Schemas['CreateApiKey']['permissions'][number];
/** Who an API key acts as, for quotas: its user (default `key:<id>`) and groups (default none). */
export type ApiKeyIdentity = Pick<Schemas['CreateApiKey'], 'user_id' | 'groups'>;
/** Options of a new API key besides its identity: `expires_at` (ISO date-time; default never). */
export type ApiKeyOptions = ApiKeyIdentity & Pick<Schemas['CreateApiKey'], 'expires_at'>;
/** An API key as listed (never its secret). */
export type ApiKeyInfo = Schemas['ApiKey'];
export type Bridge = Schemas['Bridge'];
export type Snapshot = Schemas['Snapshot'];
export type CodeContext = Schemas['CodeContext'];
export type QuotaProfile = Schemas['QuotaProfile'];
export type CreateQuotaProfileBody = Schemas['CreateQuotaProfile'];
export type UpdateQuotaProfileBody = Schemas['UpdateQuotaProfile'];
export type QuotaAssignment = Schemas['QuotaAssignment'];
/** `user` (own bucket), `group` (one shared bucket), `group_per_user` (a bucket per member). */
export type QuotaAssignmentKind = QuotaAssignment['kind'];
export type QuotaBucket = Schemas['QuotaBucket'];
export type QuotaUsage = Schemas['QuotaUsage'];
export type QuotaUsageItem = QuotaUsage['items'][number];
export type QuotaResource = keyof QuotaUsageItem['resources'];
export type UsageReport = Schemas['UsageReport'];
/** `{ key, cpu_seconds, memory_mb_minutes, disk_mb_minutes, wall_seconds }`; `key` as `group_by` says. */
export type UsageItem = Schemas['UsageItem'];
export type UsageGroupBy = UsageReport['group_by'];
export type ApiErrorBody = Schemas['Error'];
export type OutputStream = 'stdout' | 'stderr';

// ---- typed access to operations, used by the transport -------------------------------------

export type HttpMethod = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** The API paths that have an operation for `M`. */
export type PathWith<M extends HttpMethod> = {
  [P in keyof paths]: paths[P][M] extends { responses: unknown } ? P : never;
}[keyof paths];

export type Operation<M extends HttpMethod, P extends PathWith<M>> = Extract<paths[P][M], { responses: unknown }>;

type SuccessContent<O> = O extends { responses: infer R }
  ? R extends { 200: { content: infer C } }
    ? C
    : R extends { 201: { content: infer C } }
      ? C
      : R extends { 202: { content: infer C } }
        ? C
        : never
  : never;

/** The JSON a successful call of the operation answers. */
export type JsonResponse<M extends HttpMethod, P extends PathWith<M>> =
  SuccessContent<Operation<M, P>> extends {
    'application/json': infer J;
  }
    ? J
    : never;

/** The JSON request body the operation takes (`undefined` when it takes none; optional bodies included). */
export type JsonRequestBody<M extends HttpMethod, P extends PathWith<M>> =
  Operation<M, P> extends {
    requestBody: { content: { 'application/json': infer B } };
  }
    ? B
    : Operation<M, P> extends {
          requestBody?: { content: { 'application/json': infer B } };
        }
      ? B
      : undefined;

export type QueryParams<M extends HttpMethod, P extends PathWith<M>> =
  Operation<M, P> extends {
    parameters: { query?: infer Q };
  }
    ? Q
    : never;

export type PathParams<M extends HttpMethod, P extends PathWith<M>> =
  Operation<M, P> extends {
    parameters: { path: infer A };
  }
    ? A
    : never;

/** A host-based preview of a port (`token` only in the answer that created it). */
export type PreviewInfo = Schemas['Preview'];
