/**
 * Every request and response shape of the public API. These objects validate requests at the
 * edge (Fastify + Ajv) and are the same objects the OpenAPI document is generated from.
 */
import { type Static, type TLiteral, type TOptional, type TSchema, type TUnion, Type } from '@sinclair/typebox';
import { ERROR_CODES } from '../errors/codes.js';
import { idPattern, SHA256_HEX_PATTERN } from '../ids/newId.js';
import { LIFECYCLES } from '../lifecycle/defaults.js';
import { PROCESS_STATES } from '../lifecycle/processStates.js';
import { BUNKER_STATES } from '../lifecycle/transitions.js';
import {
  BANDWIDTH_MBIT_MAX,
  BANDWIDTH_MBIT_MIN,
  MAC_PATTERN,
  NETWORK_ALLOWLIST_MAX,
  TRANSIT_INTERFACES_MAX,
  TRANSIT_INTERFACES_MIN,
} from '../network/profiles.js';
import { GPU_COUNT_MAX, NETWORK_PROFILE_NAMES, QUOTA_ASSIGNMENT_KINDS, QUOTA_RESOURCES } from '../quotas/resources.js';
import { PERMISSIONS } from './permissions.js';

const strict = { additionalProperties: false } as const;
type Literals<T extends readonly string[]> = { -readonly [K in keyof T]: TLiteral<T[K]> };
const literalUnion = <const T extends readonly string[]>(values: T, opts: object = {}): TUnion<Literals<T>> =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    opts,
  ) as unknown as TUnion<Literals<T>>;

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: literalUnion(Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]),
      message: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  },
  { $id: 'Error' },
);

/** Labels and env: bounded string maps. */
const StringMap = (maxKeys: number, keyPattern: string, maxValue: number) =>
  Type.Record(Type.String(), Type.String({ maxLength: maxValue }), {
    maxProperties: maxKeys,
    propertyNames: { pattern: keyPattern, maxLength: 128 },
  });
export const EnvMap = StringMap(128, '^[A-Za-z_][A-Za-z0-9_]*$', 32768);
export const Labels = StringMap(32, '^[a-z0-9]([a-z0-9._-]{0,62})$', 256);

export const BunkerId = Type.String({ pattern: idPattern('bk'), description: 'Bunker id' });
export const BunkerIdParams = Type.Object({ id: BunkerId }, strict);

/** Absolute path inside the bunker; `..` components and NUL are rejected here, at the edge. */
export const BunkerPath = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: '^(?!.*/\\.\\.(/|$))/[^\\x00]*$',
  description: 'Absolute path inside the bunker; no `..` components',
});

/** How a bunker is isolated from its host: a hardened container, or its own microVM (QEMU). */
export const ISOLATIONS = ['container', 'microvm', 'proot'] as const;
export type Isolation = (typeof ISOLATIONS)[number];

/** Every design profile; the bunker service checks the permission each needs. */
export const NetworkProfile = literalUnion(NETWORK_PROFILE_NAMES, {
  description:
    "`isolated` (default): loopback only, no DNS. `registry`: DNS and connections only to package registries, model hubs and OS mirrors. `allowlisted`: only to the hosts in `network_allowlist`. `unrestricted`: full egress, every flow audited. Each profile but `isolated` needs the `scaibunker:network:<profile>` permission (else `NETWORK_PROFILE_DENIED`) and a worker that offers it (else `NO_SUITABLE_WORKER`). `transit`: only layer-2 interfaces on the tenant's bridges (`interfaces`), no DNS, no internet.",
});

export const NetworkAllowlist = Type.Array(
  Type.String({
    minLength: 1,
    maxLength: 1024,
    description:
      "A hostname (`pypi.org`) or a first-level wildcard (`*.example.com`: exactly one more label). No URLs, ports, IPs, '**' or mid-name wildcards.",
  }),
  {
    maxItems: NETWORK_ALLOWLIST_MAX,
    description:
      'Hosts an `allowlisted` bunker may resolve and reach: required (non-empty) with that profile, refused with any other. Stored lower-cased, without a trailing dot, duplicates dropped. A bad entry is `VALIDATION_FAILED` naming it.',
  },
);

export const BridgeId = Type.String({ pattern: idPattern('br'), description: 'Bridge id' });
export const BridgeIdParams = Type.Object({ id: BridgeId }, strict);
export const MacAddress = Type.String({ pattern: MAC_PATTERN, description: 'A unicast MAC address, `aa:bb:cc:dd:ee:ff`' });

export const TransitInterface = Type.Object(
  {
    bridge_id: BridgeId,
    mac: Type.Optional({ ...MacAddress, description: 'Unicast MAC of the interface; omitted: a locally administered one is generated' }),
    spoof_guard: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          "Drop frames (and ARP) whose source MAC is not the interface's (default true); false needs `scaibunker:l2_transparency` and is audited",
      }),
    ),
  },
  strict,
);
export const TransitInterfaces = Type.Array(TransitInterface, {
  minItems: TRANSIT_INTERFACES_MIN,
  maxItems: TRANSIT_INTERFACES_MAX,
  description:
    'Required with the `transit` profile, refused with any other: one interface (eth0, eth1, …) per entry, on a bridge of the tenant.',
});

export const SnapshotId = Type.String({ pattern: idPattern('sn'), description: 'Snapshot id' });

export const CreateBunkerBody = Type.Object(
  {
    image: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 128,
        pattern: '^[a-z0-9][a-z0-9._:/-]*$',
        description: "The image to start from. Required unless `snapshot_id` is given (then it may only name the snapshot's image).",
      }),
    ),
    snapshot_id: Type.Optional({
      ...SnapshotId,
      description:
        "Start from a `ready` snapshot of the tenant: its image with the snapshot's files restored. Isolation defaults to the snapshot's (another isolation is refused), disk_mb to at least the snapshot's.",
    }),
    auto_resume: Type.Optional(
      Type.Boolean({
        description:
          'Only with `lifecycle: persistent`: an exec, file, process or shell call on the bunker while it is passivated resumes it first (default false: such calls answer `BUNKER_NOT_RUNNING`).',
      }),
    ),
    lifecycle: Type.Optional(literalUnion(LIFECYCLES)),
    cpu_millicores: Type.Optional(Type.Integer({ minimum: 100, maximum: 64000 })),
    memory_mb: Type.Optional(Type.Integer({ minimum: 32, maximum: 262144 })),
    disk_mb: Type.Optional(Type.Integer({ minimum: 16, maximum: 1048576 })),
    gpu_count: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: GPU_COUNT_MAX,
        default: 0,
        description:
          'GPUs the bunker needs (default 0). Counted against quotas; no worker offers GPUs yet, so more than 0 ends in `NO_SUITABLE_WORKER`.',
      }),
    ),
    network_profile: Type.Optional(NetworkProfile),
    network_allowlist: Type.Optional(NetworkAllowlist),
    interfaces: Type.Optional(TransitInterfaces),
    bandwidth_mbit: Type.Optional(
      Type.Integer({
        minimum: BANDWIDTH_MBIT_MIN,
        maximum: BANDWIDTH_MBIT_MAX,
        description: "Egress cap in Mbit/s (a tc TBF shaper on the worker). Omitted: the worker's default.",
      }),
    ),
    isolation: Type.Optional(
      literalUnion(ISOLATIONS, {
        description:
          '`container` (default): namespaces, seccomp and cgroups on the worker; `microvm`: its own kernel in a QEMU microVM; `proot`: NO kernel isolation (ptrace path translation under a uid of its own, cgroup limits, no network: `isolated` only, no snapshots), for development and trusted code on workers whose admin enabled it. Needs an online worker that offers it, else `NO_SUITABLE_WORKER`.',
      }),
    ),
    idle_timeout_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86400 })),
    max_lifetime_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 365 * 86400 })),
    env: Type.Optional(EnvMap),
    metadata: Type.Optional(Labels),
  },
  { ...strict, $id: 'CreateBunker' },
);
export type CreateBunkerBody = Static<typeof CreateBunkerBody>;

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

export const Bunker = Type.Object(
  {
    id: BunkerId,
    tenant_id: Type.String(),
    image: Type.String(),
    image_sha256: Nullable(Type.String()),
    lifecycle: literalUnion(LIFECYCLES),
    state: literalUnion(BUNKER_STATES),
    termination_reason: Nullable(Type.String()),
    worker_id: Nullable(Type.String()),
    worker_reachable: Type.Boolean({
      description:
        "False while the bunker's worker is offline (it missed its heartbeats): calls for the bunker answer WORKER_UNAVAILABLE and its state is kept until the worker is back, or lost after the controller's --worker-lost-after. True otherwise, including while the bunker has no worker yet.",
    }),
    isolation: literalUnion(ISOLATIONS),
    cpu_millicores: Type.Integer(),
    memory_mb: Type.Integer(),
    disk_mb: Type.Integer(),
    gpu_count: Type.Integer(),
    network_profile: Type.String(),
    network_allowlist: Nullable(
      Type.Array(Type.String(), { description: "The `allowlisted` profile's hosts (normalized); null for other profiles" }),
    ),
    bandwidth_mbit: Nullable(Type.Integer({ description: "Egress cap in Mbit/s; null: the worker's default" })),
    interfaces: Nullable(
      Type.Array(Type.Object({ name: Type.String(), bridge_id: Type.String(), mac: Type.String(), spoof_guard: Type.Boolean() }), {
        description: "A `transit` bunker's interfaces (eth0, eth1, … in order); null for other profiles",
      }),
    ),
    idle_timeout_s: Type.Integer(),
    max_lifetime_s: Nullable(Type.Integer()),
    metadata: Type.Record(Type.String(), Type.String()),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Nullable(Type.String({ format: 'date-time' })),
    last_activity_at: Type.String({ format: 'date-time' }),
    ended_at: Nullable(Type.String({ format: 'date-time' })),
    snapshot_id: Nullable(
      Type.String({
        description:
          "The snapshot the bunker's files were restored from (at create, at resume after passivation, or on recovery); null: the bare image",
      }),
    ),
    passivated: Type.Boolean({
      description:
        '`paused` with its worker resources released: its files are in `snapshot_id`; `resume` (or a call with `auto_resume`) restores it',
    }),
    auto_resume: Type.Boolean(),
    recovered_from: Nullable(
      Type.String({
        description: 'The worker it ran on before that worker was lost and the bunker was restored elsewhere from its newest snapshot',
      }),
    ),
  },
  { $id: 'Bunker' },
);
export type Bunker = Static<typeof Bunker>;

export const ListBunkersQuery = Type.Object(
  {
    state: Type.Optional(literalUnion(BUNKER_STATES)),
    label: Type.Optional(
      Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}=.{0,256}$' }), {
        maxItems: 16,
        description: 'Metadata filter `key=value`; repeat to AND several.',
      }),
    ),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  strict,
);
export type ListBunkersQuery = Static<typeof ListBunkersQuery>;

export const Page = <T extends TSchema>(item: T, name: string) =>
  Type.Object({ items: Type.Array(item), next_cursor: Nullable(Type.String()) }, { $id: name });
export const BunkerPage = Page(Bunker, 'BunkerPage');

export const PauseBody = Type.Object(
  {
    passivate: Type.Optional(
      Type.Boolean({
        description:
          'Snapshot the bunker and release its worker resources (`passivated: true`) instead of freezing it in place; `persistent` bunkers only',
      }),
    ),
  },
  { ...strict, $id: 'PauseBunker' },
);
export type PauseBody = Static<typeof PauseBody>;

// ---- code contexts -----------------------------------------------------------------------------

export const CodeContextId = Type.String({
  pattern: `^(default|${idPattern('cx').slice(1, -1)})$`,
  description: "A code context: `default` (the bunker's own, started on first use) or one made by `POST …/code/contexts`",
});
export const CodeContextParams = Type.Object({ id: BunkerId, context_id: CodeContextId }, strict);

export const RunCodeBody = Type.Object(
  {
    code: Type.String({ maxLength: 1024 * 1024, description: 'Python source; the value of a trailing expression is the result' }),
    context_id: Type.Optional(CodeContextId),
    language: Type.Optional(literalUnion(['python'] as const, { description: 'Only `python`' })),
    env: Type.Optional({ ...EnvMap, description: "Environment variables set for this run only (the context's own come back after it)" }),
    timeout_s: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 86400,
        description: 'Interrupt the execution (KeyboardInterrupt) after this long; the context keeps its state. Default: none',
      }),
    ),
  },
  { ...strict, $id: 'RunCode' },
);
export type RunCodeBody = Static<typeof RunCodeBody>;

export const CreateCodeContextBody = Type.Object(
  {
    language: Type.Optional(literalUnion(['python'] as const, { description: 'Only `python`' })),
    cwd: Type.Optional(BunkerPath),
    env: Type.Optional(EnvMap),
  },
  { ...strict, $id: 'CreateCodeContext' },
);
export type CreateCodeContextBody = Static<typeof CreateCodeContextBody>;

export const CodeContext = Type.Object(
  {
    id: Type.String(),
    language: literalUnion(['python'] as const),
    exec_id: Type.String({ description: 'The kernel: a background process of the bunker' }),
    cwd: Nullable(Type.String()),
  },
  { $id: 'CodeContext' },
);
export const CodeContextList = Type.Object({ items: Type.Array(CodeContext) }, { $id: 'CodeContextList' });

// ---- snapshots --------------------------------------------------------------------------------

export const SNAPSHOT_STATES = ['creating', 'ready', 'failed'] as const;
export const SnapshotIdParams = Type.Object({ id: SnapshotId }, strict);
export const SNAPSHOT_EXPIRES_MAX_S = 365 * 86400;

export const CreateSnapshotBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._:-]*$' })),
    expires_in_s: Type.Optional(
      Type.Integer({
        minimum: 60,
        maximum: SNAPSHOT_EXPIRES_MAX_S,
        description: 'Deleted this many seconds after it was taken (by the 5-minute cleanup); omitted: kept until deleted',
      }),
    ),
  },
  { ...strict, $id: 'CreateSnapshot' },
);
export type CreateSnapshotBody = Static<typeof CreateSnapshotBody>;

export const Snapshot = Type.Object(
  {
    id: SnapshotId,
    tenant_id: Type.String(),
    bunker_id: Type.String({ description: 'The bunker it was taken of (it may have ended since)' }),
    name: Nullable(Type.String()),
    source: literalUnion(['user', 'fork', 'passivation'] as const, {
      description: "`user`: asked for; `fork`: taken by a fork; `passivation`: holds a passivated bunker's files",
    }),
    state: literalUnion(SNAPSHOT_STATES, { description: '`creating` → `ready`, or `failed` (with `error`, nothing stored)' }),
    image: Type.String(),
    isolation: literalUnion(ISOLATIONS),
    disk_mb: Type.Integer({ description: "The bunker's disk_mb when it was taken: a restore gets at least this much" }),
    size_bytes: Type.Integer({ description: 'Bytes of the stored (compressed) archive; 0 until ready' }),
    sha256: Nullable(Type.String({ description: 'sha256 of the stored archive, checked on every restore' })),
    error: Nullable(Type.String()),
    created_by: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    ready_at: Nullable(Type.String({ format: 'date-time' })),
    expires_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'Snapshot' },
);
export type Snapshot = Static<typeof Snapshot>;
export const SnapshotPage = Page(Snapshot, 'SnapshotPage');

export const ListSnapshotsQuery = Type.Object(
  {
    bunker_id: Type.Optional(BunkerId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  strict,
);
export type ListSnapshotsQuery = Static<typeof ListSnapshotsQuery>;

export const FORK_MAX = 20;
export const ForkBody = Type.Object(
  { count: Type.Integer({ minimum: 1, maximum: FORK_MAX, description: 'How many independent bunkers to start from one fresh snapshot' }) },
  { ...strict, $id: 'ForkBunker' },
);
export type ForkBody = Static<typeof ForkBody>;
export const ForkResult = Type.Object(
  {
    snapshot_id: SnapshotId,
    bunkers: Type.Array(Bunker),
  },
  { $id: 'ForkResult' },
);
export type ForkResult = Static<typeof ForkResult>;

export const TerminalSize = Type.Object(
  { cols: Type.Integer({ minimum: 1, maximum: 1000 }), rows: Type.Integer({ minimum: 1, maximum: 1000 }) },
  { ...strict, $id: 'TerminalSize' },
);

export const ExecBody = Type.Object(
  {
    command: Type.Union([
      Type.String({ minLength: 1, maxLength: 131072, description: 'Run by `/bin/sh -c`' }),
      Type.Array(Type.String({ maxLength: 131072 }), { minItems: 1, maxItems: 4096, description: 'argv' }),
    ]),
    timeout_s: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, maximum: 86400, description: 'Seconds; default 60, and none for `background: true`' }),
    ),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(BunkerPath),
    stdin: Type.Optional(
      Type.Union([
        Type.String({ maxLength: 8 * 1024 * 1024, description: "The command's whole stdin" }),
        Type.Boolean({ description: '`true` (only with `background`): stdin stays open for `POST …/execs/{exec_id}/stdin`' }),
      ]),
    ),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' })),
    stream: Type.Optional(Type.Boolean({ description: 'Answer with Server-Sent Events `start`, `stdout`, `stderr`, `exit`' })),
    background: Type.Optional(
      Type.Boolean({ description: 'Answer 202 at once with the running process; read it later by `exec_id` (it survives disconnects)' }),
    ),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$', description: 'A label to find it by' })),
    pty: Type.Optional(TerminalSize),
  },
  { ...strict, $id: 'ExecRequest' },
);
export type ExecBody = Static<typeof ExecBody>;

/** What of an exec's output the blob store keeps. */
export const OUTPUT_STORE_STATES = ['inline', 'complete', 'capped', 'failed', 'expired'] as const;
const OutputStore = literalUnion(OUTPUT_STORE_STATES, {
  description:
    '`inline`: all output is in the response, nothing stored; `complete`: the whole output is stored; `capped`: stored up to the per-exec or per-tenant cap or the disk reserve, the rest dropped; `failed`: storing failed (a full disk, the blob store down), nothing kept; `expired`: deleted after the retention',
});

export const ExecResult = Type.Object(
  {
    exec_id: Type.String(),
    exit_code: Nullable(Type.Integer()),
    signal: Nullable(Type.String()),
    stdout: Type.String(),
    stderr: Type.String(),
    duration_ms: Type.Integer(),
    timed_out: Type.Boolean({ description: 'True when the command ran past timeout_s (result code EXEC_TIMEOUT)' }),
    truncated: Type.Boolean(),
    full_output_ref: Nullable(
      Type.String({
        description: 'Path (relative to the API base) of the stored output, when truncated and stored (`complete` or `capped`)',
      }),
    ),
    output_store: OutputStore,
    output_stored_bytes: Type.Integer({ description: "Bytes of this exec's output kept in the blob store (both streams)" }),
  },
  { $id: 'ExecResult' },
);
export type ExecResult = Static<typeof ExecResult>;

export const FilePathQuery = Type.Object({ path: BunkerPath }, strict);
export const FileDeleteQuery = Type.Object({ path: BunkerPath, recursive: Type.Optional(Type.Boolean()) }, strict);
export const FileWriteQuery = Type.Object(
  { path: BunkerPath, mode: Type.Optional(Type.String({ pattern: '^[0-7]{3,4}$' })), parents: Type.Optional(Type.Boolean()) },
  strict,
);
export const MkdirBody = Type.Object({ path: BunkerPath, parents: Type.Optional(Type.Boolean()) }, strict);

export const FileStat = Type.Object(
  {
    path: Type.String(),
    name: Type.String(),
    type: literalUnion(['file', 'dir', 'symlink', 'other'] as const),
    size: Type.Integer(),
    mode: Type.String({ description: 'Octal permission bits' }),
    mtime: Type.String({ format: 'date-time' }),
    link_target: Type.Optional(Type.String()),
  },
  { $id: 'FileStat' },
);
export type FileStat = Static<typeof FileStat>;
export const FileList = Type.Object({ items: Type.Array(FileStat) }, { $id: 'FileList' });
export const WriteResult = Type.Object({ path: Type.String(), bytes: Type.Integer() }, { $id: 'WriteResult' });

export const ExecLog = Type.Object(
  {
    id: Type.String(),
    bunker_id: Type.String(),
    caller: Type.String(),
    command: Type.String(),
    exit_code: Nullable(Type.Integer()),
    signal: Nullable(Type.String()),
    timed_out: Type.Boolean(),
    duration_ms: Nullable(Type.Integer()),
    stdout_preview: Type.String(),
    stderr_preview: Type.String(),
    truncated: Type.Boolean(),
    full_output_ref: Nullable(Type.String()),
    started_at: Type.String({ format: 'date-time' }),
    finished_at: Nullable(Type.String({ format: 'date-time' })),
    output_store: OutputStore,
    output_stored_bytes: Type.Integer(),
  },
  { $id: 'ExecLog' },
);
export type ExecLog = Static<typeof ExecLog>;
export const ExecLogPage = Page(ExecLog, 'ExecLogPage');
export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  strict,
);
export type PageQuery = Static<typeof PageQuery>;

/** `{ts_us}-{worker_pid}.ndjson`: when the worker sealed the batch (µs, 16 digits) and the writing worker's pid. */
export const AuditBatchName = Type.String({
  pattern: '^[0-9]{16}-[0-9]{1,10}\\.ndjson$',
  description: 'Batch name: `{ts_us}-{worker_pid}.ndjson`',
});
export const AuditBatchParams = Type.Object({ id: BunkerId, name: AuditBatchName }, strict);
export const AuditBatchQuery = Type.Object(
  {
    since_us: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$', description: 'Only batches whose ts_us is at least this' })),
    continuation_token: Type.Optional(Type.String({ maxLength: 200, description: 'From the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  strict,
);
export const AuditBatch = Type.Object(
  {
    name: AuditBatchName,
    ts_us: Type.String({ description: 'When the worker sealed the batch, µs since the epoch (a decimal string)' }),
    bytes: Type.Integer(),
  },
  { $id: 'AuditBatch' },
);
export const AuditBatchPage = Type.Object(
  { items: Type.Array(AuditBatch), next_continuation_token: Nullable(Type.String()) },
  { $id: 'AuditBatchPage' },
);
export type AuditBatchQuery = Static<typeof AuditBatchQuery>;
export type AuditBatchPageT = Static<typeof AuditBatchPage>;

/** Storage proxy: objects by key under `scaibunker/` (`[A-Za-z0-9._/-]`, no empty or dot-led segment). */
export const StorageKeyParams = Type.Object(
  { '*': Type.String({ minLength: 1, maxLength: 1024, description: 'Object key, e.g. scaibunker/images/<sha256>' }) },
  strict,
);
export const StoragePutResult = Type.Object(
  { key: Type.String(), bytes: Type.Integer(), sha256: Type.String({ description: "The body's sha256, as received" }) },
  { $id: 'StoragePutResult' },
);
export const StorageListQuery = Type.Object(
  {
    prefix: Type.String({ minLength: 2, maxLength: 1024, description: 'A key prefix ending with `/`; direct children are listed' }),
    start_after: Type.Optional(Type.String({ maxLength: 1024 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  strict,
);
export const StorageListPage = Type.Object(
  {
    items: Type.Array(Type.Object({ key: Type.String(), bytes: Type.Integer() })),
    next_start_after: Nullable(Type.String({ description: 'Pass as start_after for the next page; null on the last' })),
  },
  { $id: 'StorageListPage' },
);
export const STORAGE_VERB_NAMES = ['get', 'put', 'delete', 'list'] as const;
export const CapabilityRequest = Type.Object(
  {
    prefix: Type.String({ minLength: 2, maxLength: 1024, description: 'Key prefix the token covers, ending with `/`, under scaibunker/' }),
    verbs: Type.Array(literalUnion(STORAGE_VERB_NAMES), { minItems: 1, maxItems: 4, uniqueItems: true }),
    ttl_s: Type.Integer({ minimum: 1, maximum: 86400, default: 900, description: 'Lifetime in seconds (at most a day)' }),
  },
  strict,
);
export const CapabilityToken = Type.Object(
  {
    token: Type.String({ description: 'Bearer token for the storage routes (`sbcap_…`)' }),
    prefix: Type.String(),
    verbs: Type.Array(literalUnion(STORAGE_VERB_NAMES)),
    expires_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'CapabilityToken' },
);

export const ExecId = Type.String({ pattern: idPattern('ex'), description: 'Exec id' });
export const OutputParams = Type.Object({ id: BunkerId, exec_id: ExecId }, strict);
export const ExecIdParams = OutputParams;

export { PROCESS_STATES };
export const Process = Type.Object(
  {
    exec_id: Type.String(),
    bunker_id: Type.String(),
    caller: Type.String(),
    command: Type.String(),
    tag: Nullable(Type.String()),
    background: Type.Boolean(),
    pty: Type.Boolean(),
    pid: Nullable(Type.Integer()),
    state: literalUnion(PROCESS_STATES),
    exit_code: Nullable(Type.Integer()),
    signal: Nullable(Type.String()),
    timed_out: Type.Boolean(),
    duration_ms: Nullable(Type.Integer()),
    end_reason: Nullable(
      Type.String({ description: '`client_gone`: its caller went away; `worker_lost`: its worker forgot it; `bunker_ended`' }),
    ),
    stdin_open: Type.Boolean(),
    next_seq: Nullable(Type.Integer({ description: 'Sequence number of the next output chunk (null: the worker no longer journals it)' })),
    started_at: Type.String({ format: 'date-time' }),
    finished_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'Process' },
);
export type Process = Static<typeof Process>;
export const ProcessPage = Page(Process, 'ProcessPage');
export const ListProcessesQuery = Type.Object(
  {
    state: Type.Optional(literalUnion(PROCESS_STATES)),
    tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
    cursor: Type.Optional(Type.String({ maxLength: 512 })),
  },
  strict,
);
export const ProcessEventsQuery = Type.Object(
  { from: Type.Optional(Type.Integer({ minimum: 1, description: 'First sequence number to send (default 1); `Last-Event-ID` + 1 wins' })) },
  strict,
);
export const SIGNALS = [
  'SIGTERM',
  'SIGKILL',
  'SIGINT',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGSTOP',
  'SIGCONT',
  'SIGWINCH',
] as const;
export const SignalBody = Type.Object({ signal: literalUnion(SIGNALS) }, strict);
export const StdinResult = Type.Object({ bytes: Type.Integer() }, { $id: 'StdinResult' });
export const ShellQuery = Type.Object(
  {
    cols: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    rows: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    command: Type.Optional(
      Type.String({ minLength: 1, maxLength: 4096, description: 'Run this instead of a login shell (by `/bin/sh -c`)' }),
    ),
    exec_id: Type.Optional(Type.String({ pattern: idPattern('ex'), description: 'Reattach to this shell instead of opening a new one' })),
    ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'From `POST …/shell-tickets` (browsers)' })),
  },
  strict,
);
export const AttachQuery = Type.Object(
  { ticket: Type.Optional(Type.String({ minLength: 1, maxLength: 2048 })), from: Type.Optional(Type.Integer({ minimum: 1 })) },
  strict,
);
export const ShellTicket = Type.Object({ ticket: Type.String(), expires_at: Type.String({ format: 'date-time' }) }, { $id: 'ShellTicket' });
export const WatchQuery = Type.Object({ path: BunkerPath, recursive: Type.Optional(Type.Boolean()) }, strict);
export const OutputQuery = Type.Object({ stream: Type.Optional(literalUnion(['stdout', 'stderr'] as const)) }, strict);

export const ImageSource = Type.Union(
  [
    Type.Object(
      {
        type: Type.Literal('oci'),
        ref: Type.String({
          minLength: 3,
          maxLength: 512,
          description:
            'A registry reference `host[:port]/repo[:tag|@sha256:…]`, or (platform admins) a local OCI layout `oci:/dir[:tag]` or a `docker-archive:/file.tar` under the import directory',
        }),
      },
      strict,
    ),
    Type.Object(
      {
        type: Type.Literal('tar'),
        path: Type.String({
          minLength: 2,
          maxLength: 4096,
          description: 'A rootfs tarball (.tar, .tar.gz) under the import directory (platform admins)',
        }),
      },
      strict,
    ),
  ],
  { $id: 'ImageSource' },
);
export const NewImageName = Type.String({
  pattern: '^[a-z0-9][a-z0-9._-]{0,62}$',
  description: 'Image name: lowercase letters, digits, `.`, `_`, `-`',
});
export const CreateImageBody = Type.Object(
  {
    name: NewImageName,
    source: ImageSource,
    scope: Type.Optional(
      literalUnion(['tenant', 'partner', 'platform'] as const, {
        description:
          "`tenant` (default): the caller's tenant only; `partner`: also the tenants in `shared_with`; `platform`: every tenant (platform admins)",
      }),
    ),
    shared_with: Type.Optional(Type.Array(Type.String({ pattern: idPattern('tn') }), { maxItems: 100, uniqueItems: true })),
    lazy_pull: Type.Optional(
      Type.Boolean({ description: 'Allow placing bunkers on workers that must fetch the image first', default: false }),
    ),
  },
  { ...strict, $id: 'CreateImageBody' },
);
export type CreateImageBody = Static<typeof CreateImageBody>;
export const ImageIdParams = Type.Object({ id: Type.String({ pattern: idPattern('im') }) }, strict);
export const ImageScan = Type.Object(
  {
    state: literalUnion(['pending', 'scanning', 'done', 'failed'] as const),
    scanner: Nullable(Type.String()),
    scanned_at: Nullable(Type.String({ format: 'date-time' })),
    packages: Nullable(Type.Integer()),
    counts: Nullable(
      Type.Object({ critical: Type.Integer(), high: Type.Integer(), medium: Type.Integer(), low: Type.Integer(), unknown: Type.Integer() }),
    ),
    vulnerabilities: Type.Array(
      Type.Object({
        id: Type.String(),
        package: Type.String(),
        ecosystem: Type.String(),
        installed: Type.String(),
        fixed: Type.Optional(Type.String()),
        severity: Type.Optional(Type.String()),
      }),
    ),
    note: Type.Optional(Type.String()),
    error: Type.Optional(Type.String()),
  },
  { $id: 'ImageScan' },
);
export const Image = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    sha256: Nullable(Type.String()),
    state: literalUnion(['pending', 'baking', 'ready', 'failed'] as const),
    scope: literalUnion(['tenant', 'partner', 'platform'] as const),
    size_bytes: Nullable(Type.Integer()),
    source: Nullable(ImageSource),
    lazy_pull: Type.Boolean(),
    progress: Nullable(
      Type.Object({
        phase: Type.String(),
        done: Type.Optional(Type.Number()),
        total: Type.Optional(Type.Number()),
        detail: Type.Optional(Type.String()),
      }),
    ),
    failure: Nullable(Type.String({ description: 'Why the bake failed: `REASON: message`' })),
    scan: Nullable(ImageScan),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Image' },
);
export type Image = Static<typeof Image>;
export const ImageList = Type.Object({ items: Type.Array(Image) }, { $id: 'ImageList' });

const WorkerIdPattern = idPattern('wk');
export const AvailabilityGroup = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    tenant_id: Nullable(
      Type.String({
        description: "A tenant group's tenant (its images warm on the workers that tenant's bunkers use); null: a platform group",
      }),
    ),
    workers: Type.Array(Type.String(), {
      description: "Member worker ids (a tenant group: the workers its tenant's bunkers were placed on in the last 7 days)",
    }),
    images: Type.Array(
      Type.Object({
        id: Type.String(),
        name: Type.String(),
        sha256: Nullable(Type.String()),
        workers: Type.Array(
          Type.Object({
            worker_id: Type.String(),
            state: literalUnion(['ready', 'warming', 'failed', 'missing'] as const),
            error: Type.Optional(Type.String()),
          }),
          { description: "Each member's copy, from the image-cache ledger" },
        ),
      }),
    ),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'AvailabilityGroup' },
);
export type AvailabilityGroup = Static<typeof AvailabilityGroup>;
export const AvailabilityGroupList = Type.Object({ items: Type.Array(AvailabilityGroup) }, { $id: 'AvailabilityGroupList' });
export const CreateAvailabilityGroupBody = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$', description: "Unique among the platform groups, or among its tenant's" }),
    tenant_id: Type.Optional(
      Type.String({
        pattern: idPattern('tn'),
        description:
          "A tenant group: tenant admins' groups are always their own tenant's; platform admins name any (without: a platform group)",
      }),
    ),
  },
  strict,
);
export type CreateAvailabilityGroupBody = Static<typeof CreateAvailabilityGroupBody>;
export const AvailabilityGroupListQuery = Type.Object(
  {
    tenant_id: Type.Optional(
      Type.String({ pattern: idPattern('tn'), description: "Platform admins: one tenant's groups (default: every group)" }),
    ),
  },
  strict,
);
export const AvailabilityGroupParams = Type.Object({ id: Type.String({ pattern: idPattern('ag') }) }, strict);
export const AvailabilityGroupWorkerParams = Type.Object(
  { id: Type.String({ pattern: idPattern('ag') }), worker_id: Type.String({ pattern: WorkerIdPattern }) },
  strict,
);
export const AvailabilityGroupImageParams = Type.Object(
  { id: Type.String({ pattern: idPattern('ag') }), image_id: Type.String({ pattern: idPattern('im') }) },
  strict,
);
export const AddGroupWorkerBody = Type.Object({ worker_id: Type.String({ pattern: WorkerIdPattern }) }, strict);
export const AddGroupImageBody = Type.Object({ image_id: Type.String({ pattern: idPattern('im') }) }, strict);
export const PeersParams = Type.Object({ sha256: Type.String({ pattern: SHA256_HEX_PATTERN }) }, strict);
export const PeersQuery = Type.Object({ worker_id: Type.String({ pattern: WorkerIdPattern, description: 'The asking worker' }) }, strict);
export const PeerList = Type.Object(
  { items: Type.Array(Type.Object({ worker_id: Type.String(), url: Type.String() })) },
  { $id: 'PeerList' },
);

export const Worker = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    state: literalUnion(['online', 'draining', 'offline'] as const),
    isolations: Type.Array(Type.String()),
    network_profiles: Type.Array(Type.String(), { description: 'Network profiles the worker can give a bunker' }),
    capacity: Type.Object({ cpu_millicores: Type.Integer(), memory_mb: Type.Integer(), disk_mb: Type.Integer() }),
    allocated: Type.Object({ cpu_millicores: Type.Integer(), memory_mb: Type.Integer(), disk_mb: Type.Integer() }),
    bunker_count: Type.Integer(),
    last_heartbeat_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'Worker' },
);
export const WorkerList = Type.Object({ items: Type.Array(Worker) }, { $id: 'WorkerList' });
export const WorkerIdParams = Type.Object({ id: Type.String({ pattern: idPattern('wk') }) }, strict);

/** Sent by a worker every heartbeat interval (worker token auth). */
export const HeartbeatBody = Type.Object(
  {
    worker_id: Type.String({ pattern: idPattern('wk') }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    url: Type.String({ maxLength: 512, description: "How the controller reaches the worker; '' for the in-process worker of serve" }),
    isolations: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 8 }),
    network_profiles: Type.Optional(
      Type.Array(Type.String({ maxLength: 32 }), {
        maxItems: 8,
        description: "Network profiles the worker can give a bunker; omitted (an older worker): ['isolated']",
      }),
    ),
    capacity: Type.Object(
      {
        cpu_millicores: Type.Integer({ minimum: 0 }),
        memory_mb: Type.Integer({ minimum: 0 }),
        disk_mb: Type.Integer({ minimum: 0 }),
      },
      strict,
    ),
    cached_images: Type.Array(Type.String({ pattern: SHA256_HEX_PATTERN }), { maxItems: 10000 }),
    bridges: Type.Optional(
      Type.Array(BridgeId, { maxItems: 10000, description: 'Ids of the transit bridges the worker has; omitted: none' }),
    ),
    bunkers: Type.Array(Type.Object({ id: BunkerId, status: literalUnion(['running', 'paused', 'stopped'] as const) }, strict), {
      maxItems: 100000,
    }),
  },
  { ...strict, $id: 'Heartbeat' },
);
export type HeartbeatBody = Static<typeof HeartbeatBody>;
export const HeartbeatReply = Type.Object(
  {
    ok: Type.Boolean(),
    heartbeat_interval_s: Type.Number(),
    unknown_bunkers: Type.Array(Type.String()),
    unknown_bridges: Type.Optional(Type.Array(Type.String(), { description: 'Bridges the worker reported that it must remove' })),
  },
  { $id: 'HeartbeatReply' },
);

export const CreateTenantBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' }) },
  { ...strict, $id: 'CreateTenant' },
);
export const Tenant = Type.Object({ id: Type.String(), name: Type.String() }, { $id: 'Tenant' });
export const TenantIdParams = Type.Object({ id: Type.String({ pattern: idPattern('tn') }) }, strict);
/** A user id as an identity provider issues it (a JWT `sub`), or one given to an API key. */
export const UserId = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\x00-\\x1f]+$' });
/** A group name as it appears in a JWT `groups` claim or on an API key. */
export const GroupName = Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\x00-\\x1f]+$' });

export const CreateApiKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    permissions: Type.Array(literalUnion(PERMISSIONS), { minItems: 1, maxItems: PERMISSIONS.length, uniqueItems: true }),
    user_id: Type.Optional({ ...UserId, description: 'The user this key acts as (quota buckets); default `key:<key id>`' }),
    groups: Type.Optional(Type.Array(GroupName, { maxItems: 64, uniqueItems: true, description: 'Groups of that user; default none' })),
    expires_at: Type.Optional(
      Type.String({
        format: 'date-time',
        pattern: '^\\d{4}-\\d{2}-\\d{2}T',
        description: 'When the key stops working (ISO 8601 date-time, in the future); default never',
      }),
    ),
  },
  { ...strict, $id: 'CreateApiKey' },
);
export const CreatedApiKey = Type.Object(
  {
    id: Type.String(),
    key: Type.String({ description: 'Shown once; only its SHA-256 is stored' }),
    user_id: Type.String({ description: 'The user the key acts as' }),
    groups: Type.Array(Type.String()),
    expires_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'CreatedApiKey' },
);
export const ApiKeyIdParams = Type.Object(
  { id: Type.String({ pattern: idPattern('tn') }), key_id: Type.String({ pattern: idPattern('ak') }) },
  strict,
);
/** An API key as listed: never its secret or its hash. */
export const ApiKey = Type.Object(
  {
    id: Type.String(),
    tenant_id: Type.String(),
    name: Type.String(),
    permissions: Type.Array(Type.String()),
    user_id: Type.String({ description: 'The user the key acts as (quota buckets)' }),
    groups: Type.Array(Type.String()),
    created_at: Type.String({ format: 'date-time' }),
    last_used_at: Nullable(
      Type.String({ format: 'date-time', description: 'Last authenticated use, written at most once a minute per key' }),
    ),
    expires_at: Nullable(Type.String({ format: 'date-time' })),
    revoked_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'ApiKey' },
);
export const ApiKeyList = Type.Object({ items: Type.Array(ApiKey) }, { $id: 'ApiKeyList' });
export const Empty = Type.Object({}, { $id: 'Empty' });

// ---- transit bridges -----------------------------------------------------------------------

export const CreateBridgeBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9._-]*$', description: 'Unique in the tenant' }),
    worker_id: Type.Optional(
      Type.String({
        pattern: idPattern('wk'),
        description: 'The worker to make it on; omitted: the first online worker that can make bridges',
      }),
    ),
  },
  { ...strict, $id: 'CreateBridge' },
);
export type CreateBridgeBody = Static<typeof CreateBridgeBody>;
export const Bridge = Type.Object(
  {
    id: BridgeId,
    tenant_id: Type.String(),
    name: Type.String(),
    worker_id: Type.String({ description: 'Transit bunkers on this bridge are placed on this worker' }),
    state: literalUnion(['reserved', 'ready'] as const, {
      description: '`reserved` while its worker is making it; only `ready` bridges take bunkers',
    }),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Bridge' },
);
export type Bridge = Static<typeof Bridge>;
export const BridgeList = Type.Object({ items: Type.Array(Bridge) }, { $id: 'BridgeList' });

// ---- quotas ---------------------------------------------------------------------------------

export const QuotaProfileId = Type.String({ pattern: idPattern('qp'), description: 'Quota profile id' });
export const QuotaProfileIdParams = Type.Object({ id: QuotaProfileId }, strict);
export const QuotaAssignmentParams = Type.Object({ id: QuotaProfileId, assignment_id: Type.String({ pattern: idPattern('qa') }) }, strict);
const TenantId = Type.String({ pattern: idPattern('tn') });

const Cap = (what: string, max: number) =>
  Nullable(Type.Integer({ minimum: 0, maximum: max, description: `Cap on ${what} per bucket; null: no cap` }));
const ImageName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._:/-]*$' });
/** Caps and allow-lists, as created, updated and answered. */
const profileFields = {
  max_bunkers: Cap('concurrent (non-ended) bunkers', 1_000_000),
  max_cpu_millicores: Cap('CPU millicores', 1_000_000_000),
  max_memory_mb: Cap('memory (MB)', 1_000_000_000),
  max_disk_mb: Cap('disk (MB)', 1_000_000_000),
  max_gpu_count: Cap('GPUs', 1_000_000),
  max_snapshot_bytes: Nullable(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description: "Cap on the tenant's stored snapshot bytes (all its snapshots, whichever bucket); null: no cap",
    }),
  ),
  allowed_lifecycles: Nullable(
    Type.Array(literalUnion(LIFECYCLES), { uniqueItems: true, description: 'Lifecycles a create may use; null: any' }),
  ),
  allowed_images: Nullable(
    Type.Array(ImageName, { maxItems: 256, uniqueItems: true, description: 'Image names a create may use; null: any' }),
  ),
  allowed_network_profiles: Nullable(
    Type.Array(literalUnion(NETWORK_PROFILE_NAMES), { uniqueItems: true, description: 'Network profiles a create may use; null: any' }),
  ),
};
const optional = <T extends Record<string, TSchema>>(props: T): { [K in keyof T]: TOptional<T[K]> } =>
  Object.fromEntries(Object.entries(props).map(([k, v]) => [k, Type.Optional(v)])) as { [K in keyof T]: TOptional<T[K]> };
const ProfileName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' });

export const CreateQuotaProfileBody = Type.Object(
  {
    name: ProfileName,
    tenant_id: Type.Optional({
      ...TenantId,
      description: "Platform admins only: the tenant the profile belongs to (default: the caller's)",
    }),
    ...optional(profileFields),
  },
  { ...strict, $id: 'CreateQuotaProfile' },
);
export type CreateQuotaProfileBody = Static<typeof CreateQuotaProfileBody>;

export const UpdateQuotaProfileBody = Type.Object(
  {
    name: Type.Optional(ProfileName),
    ...optional(profileFields),
  },
  {
    ...strict,
    minProperties: 1,
    $id: 'UpdateQuotaProfile',
    description: 'Only the fields given change; null clears a cap or list. New caps apply to later creates only.',
  },
);
export type UpdateQuotaProfileBody = Static<typeof UpdateQuotaProfileBody>;

export const QuotaAssignmentKind = literalUnion(QUOTA_ASSIGNMENT_KINDS, {
  description:
    '`user`: the user `subject`, own bucket; `group`: members of group `subject`, one shared bucket; `group_per_user`: members of group `subject`, a bucket each',
});
export const CreateQuotaAssignmentBody = Type.Object(
  { kind: QuotaAssignmentKind, subject: Type.String({ minLength: 1, maxLength: 256, description: 'A user id or a group name' }) },
  { ...strict, $id: 'CreateQuotaAssignment' },
);
export type CreateQuotaAssignmentBody = Static<typeof CreateQuotaAssignmentBody>;

export const QuotaAssignment = Type.Object(
  {
    id: Type.String(),
    profile_id: Type.String(),
    kind: QuotaAssignmentKind,
    subject: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'QuotaAssignment' },
);
export type QuotaAssignment = Static<typeof QuotaAssignment>;

export const QuotaProfile = Type.Object(
  {
    id: Type.String(),
    tenant_id: Type.String(),
    name: Type.String(),
    ...profileFields,
    assignments: Type.Array(QuotaAssignment),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'QuotaProfile' },
);
export type QuotaProfile = Static<typeof QuotaProfile>;
export const QuotaProfileList = Type.Object({ items: Type.Array(QuotaProfile) }, { $id: 'QuotaProfileList' });
export const QuotaProfileListQuery = Type.Object(
  { tenant_id: Type.Optional({ ...TenantId, description: "Platform admins: one tenant's profiles (default: every tenant's)" }) },
  strict,
);
export const QuotaUsageQuery = Type.Object(
  { tenant_id: Type.Optional({ ...TenantId, description: "Platform admins: another tenant's buckets" }) },
  strict,
);

/** A counter: who shares it. `id` is unique within the tenant (`<user>`, `<group>`, `<group>:<user>`, URI-encoded parts). */
export const QuotaBucket = Type.Object(
  {
    kind: QuotaAssignmentKind,
    id: Type.String(),
    user_id: Nullable(Type.String()),
    group: Nullable(Type.String()),
  },
  { $id: 'QuotaBucket' },
);
export type QuotaBucket = Static<typeof QuotaBucket>;
const ResourceUsage = Type.Object({
  current: Type.Integer(),
  cap: Nullable(Type.Integer({ description: 'The strictest cap of the profiles on this bucket; null: none' })),
  remaining: Nullable(Type.Integer({ description: 'max(0, cap - current); null: no cap' })),
});
export const QuotaUsage = Type.Object(
  {
    items: Type.Array(
      Type.Object({
        bucket: QuotaBucket,
        profile_ids: Type.Array(Type.String()),
        resources: Type.Object(
          Object.fromEntries(QUOTA_RESOURCES.map((r) => [r, ResourceUsage])) as Record<
            (typeof QUOTA_RESOURCES)[number],
            typeof ResourceUsage
          >,
        ),
      }),
    ),
    stored_output_bytes: Type.Optional({
      ...ResourceUsage,
      description: "The tenant's exec output kept in the blob store, against --output-store-tenant-cap-bytes",
    }),
    snapshot_bytes: Type.Optional({
      ...ResourceUsage,
      description: "The tenant's stored snapshots (ready and being written), against the strictest `max_snapshot_bytes` of its profiles",
    }),
  },
  { $id: 'QuotaUsage' },
);
export type QuotaUsage = Static<typeof QuotaUsage>;

// ---- usage ----------------------------------------------------------------------------------

/** How `GET /usage` groups its sums; `none`: one item with the totals. */
export const USAGE_GROUP_BY = ['bunker', 'day', 'hour', 'image', 'none'] as const;
export type UsageGroupBy = (typeof USAGE_GROUP_BY)[number];
/** The longest range one `GET /usage` may cover. */
export const USAGE_MAX_RANGE_DAYS = 92;

const UsageTimestamp = (description: string) =>
  Type.String({
    maxLength: 40,
    pattern: '^\\d{4}-\\d{2}-\\d{2}(T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:\\d{2}))?$',
    description: `ISO 8601: a date (midnight UTC) or a date-time with \`Z\` or an offset; ${description}`,
  });
export const UsageQuery = Type.Object(
  {
    from: Type.Optional(UsageTimestamp('default: `to` minus 24 hours')),
    to: Type.Optional(UsageTimestamp(`default: now; after \`from\`, at most ${USAGE_MAX_RANGE_DAYS} days later`)),
    group_by: Type.Optional(
      literalUnion(USAGE_GROUP_BY, { default: 'none', description: 'How to group the sums (default `none`: one total)' }),
    ),
    tenant_id: Type.Optional({ ...TenantId, description: "Platform admins: another tenant's usage" }),
  },
  strict,
);
export type UsageQuery = Static<typeof UsageQuery>;

export const UsageItem = Type.Object(
  {
    key: Nullable(
      Type.String({
        description:
          'The group: a bunker id (`bunker`), a UTC day `YYYY-MM-DD` (`day`), the start of a UTC hour `YYYY-MM-DDTHH:00:00.000Z` (`hour`), an image name (`image`); null for `none`',
      }),
    ),
    cpu_seconds: Type.Number({ description: 'CPU time used (seconds)' }),
    memory_mb_minutes: Type.Number({ description: 'Memory held (MB) × minutes' }),
    disk_mb_minutes: Type.Number({ description: "Disk written (MB used in the bunker's own writable layer) × minutes" }),
    wall_seconds: Type.Number({ description: 'Time the bunkers were running or paused (seconds)' }),
  },
  { $id: 'UsageItem' },
);
export type UsageItem = Static<typeof UsageItem>;
export const UsageReport = Type.Object(
  {
    items: Type.Array(UsageItem),
    from: Type.String({ format: 'date-time' }),
    to: Type.String({ format: 'date-time' }),
    group_by: literalUnion(USAGE_GROUP_BY),
    stored_output_bytes: Type.Optional(
      Type.Integer({ description: "Bytes of the tenant's exec output kept in the blob store now (within its retention)" }),
    ),
    snapshot_bytes: Type.Optional(Type.Integer({ description: "Bytes of the tenant's stored snapshots now" })),
  },
  { $id: 'UsageReport' },
);
export type UsageReport = Static<typeof UsageReport>;

// ---- audit events -----------------------------------------------------------------------------

/** An action name as recorded (`exec.run`, `file.write`, `api_key.create`, …). */
const AuditAction = Type.String({ pattern: '^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)*$', maxLength: 64, description: 'e.g. `exec.run`' });
export const AuditEventQuery = Type.Object(
  {
    bunker_id: Type.Optional({ ...BunkerId, description: 'Only events on this bunker (or inside it)' }),
    action: Type.Optional(AuditAction),
    actor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 300, description: 'Only events by this actor (`key:<id>`, `jwt:<sub>`, `system`)' }),
    ),
    from: Type.Optional(UsageTimestamp('only events at or after it')),
    to: Type.Optional(UsageTimestamp('only events before it')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    tenant_id: Type.Optional({ ...TenantId, description: "Platform admins: another tenant's events" }),
  },
  strict,
);
export type AuditEventQuery = Static<typeof AuditEventQuery>;
export const AuditEvent = Type.Object(
  {
    id: Type.String(),
    tenant_id: Nullable(Type.String()),
    actor: Type.String(),
    action: Type.String(),
    target_type: Type.String({ description: '`bunker`, `api_key`, `image`, …' }),
    target_id: Type.String(),
    bunker_id: Nullable(Type.String({ description: 'The bunker the event is on or inside; null for others' })),
    details: Type.Record(Type.String(), Type.Unknown(), { description: "The action's own fields (an exec's `command`, a file's `path`…)" }),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'AuditEvent' },
);
export type AuditEvent = Static<typeof AuditEvent>;
export const AuditEventPage = Page(AuditEvent, 'AuditEventPage');
export type AuditEventPage = Static<typeof AuditEventPage>;

/** Ports and previews: a TCP port inside a bunker, reached through the controller. */
export const Port = Type.Integer({ minimum: 1, maximum: 65535, description: 'A TCP port inside the bunker (127.0.0.1)' });
export const PortParams = Type.Object({ id: BunkerId, port: Port }, strict);
export const PortProxyParams = Type.Object(
  { id: BunkerId, port: Port, '*': Type.String({ description: 'The path inside the bunker, after `/ports/{port}/`' }) },
  strict,
);
export const PREVIEW_TTL_MIN_S = 60;
export const PREVIEW_TTL_MAX_S = 7 * 86_400;
export const CreatePreviewBody = Type.Object(
  {
    port: Port,
    expires_in_s: Type.Optional(
      Type.Integer({
        minimum: PREVIEW_TTL_MIN_S,
        maximum: PREVIEW_TTL_MAX_S,
        default: 3600,
        description: 'Lifetime (60 s to 7 days; default 1 h)',
      }),
    ),
    public: Type.Optional(
      Type.Boolean({ description: 'No token needed: anyone with the URL reaches the port (needs `scaibunker:preview:public`)' }),
    ),
  },
  strict,
);
export type CreatePreviewBody = Static<typeof CreatePreviewBody>;
export const PreviewId = Type.String({ pattern: idPattern('pv'), description: 'Preview id' });
export const PreviewIdParams = Type.Object({ id: BunkerId, preview_id: PreviewId }, strict);
export const Preview = Type.Object(
  {
    id: Type.String(),
    bunker_id: Type.String(),
    port: Type.Integer(),
    url: Type.String({ description: 'https://{port}-{bunker id, `_` as `-`}.{preview domain}/' }),
    token: Nullable(
      Type.String({
        description:
          'Shown once, at creation: `X-ScaiBunker-Preview-Token`, or `?token=` once (sets a cookie); null for a public preview and in listings',
      }),
    ),
    public: Type.Boolean(),
    created_by: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    expires_at: Type.String({ format: 'date-time' }),
    revoked_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'Preview' },
);
export type Preview = Static<typeof Preview>;
export const PreviewList = Type.Object({ items: Type.Array(Preview) }, { $id: 'PreviewList' });
export type PreviewList = Static<typeof PreviewList>;
