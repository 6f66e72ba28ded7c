/**
 * Every request and response shape of the public API. These objects validate requests at the
 * edge (Fastify + Ajv) and are the same objects the OpenAPI document is generated from.
 */
import { type Static, type TLiteral, type TSchema, type TUnion, Type } from '@sinclair/typebox';
import { ERROR_CODES } from '../errors/codes.js';
import { LIFECYCLES } from '../lifecycle/defaults.js';
import { BUNKER_STATES } from '../lifecycle/transitions.js';
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

export const BunkerId = Type.String({ pattern: '^bk_[0-9a-z]{20}$', description: 'Bunker id' });
export const BunkerIdParams = Type.Object({ id: BunkerId }, strict);

/** Absolute path inside the bunker; `..` components and NUL are rejected here, at the edge. */
export const BunkerPath = Type.String({
  minLength: 1,
  maxLength: 4096,
  pattern: '^(?!.*/\\.\\.(/|$))/[^\\x00]*$',
  description: 'Absolute path inside the bunker; no `..` components',
});

/** How a bunker is isolated from its host: a hardened container, or its own microVM (QEMU). */
export const ISOLATIONS = ['container', 'microvm'] as const;
export type Isolation = (typeof ISOLATIONS)[number];

export const NetworkProfile = literalUnion(['isolated'] as const, {
  description: 'Only `isolated` (loopback only) is implemented so far; other profiles are rejected.',
});

export const CreateBunkerBody = Type.Object(
  {
    image: Type.String({ minLength: 1, maxLength: 128, pattern: '^[a-z0-9][a-z0-9._:/-]*$' }),
    lifecycle: Type.Optional(literalUnion(LIFECYCLES)),
    cpu_millicores: Type.Optional(Type.Integer({ minimum: 100, maximum: 64000 })),
    memory_mb: Type.Optional(Type.Integer({ minimum: 32, maximum: 262144 })),
    disk_mb: Type.Optional(Type.Integer({ minimum: 16, maximum: 1048576 })),
    network_profile: Type.Optional(NetworkProfile),
    isolation: Type.Optional(
      literalUnion(ISOLATIONS, {
        description:
          '`container` (default): namespaces, seccomp and cgroups on the worker; `microvm`: its own kernel in a QEMU microVM. Needs an online worker that offers it, else `NO_SUITABLE_WORKER`.',
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
    isolation: literalUnion(ISOLATIONS),
    cpu_millicores: Type.Integer(),
    memory_mb: Type.Integer(),
    disk_mb: Type.Integer(),
    network_profile: Type.String(),
    idle_timeout_s: Type.Integer(),
    max_lifetime_s: Nullable(Type.Integer()),
    metadata: Type.Record(Type.String(), Type.String()),
    created_at: Type.String({ format: 'date-time' }),
    started_at: Nullable(Type.String({ format: 'date-time' })),
    last_activity_at: Type.String({ format: 'date-time' }),
    ended_at: Nullable(Type.String({ format: 'date-time' })),
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

export const ExecBody = Type.Object(
  {
    command: Type.Union([
      Type.String({ minLength: 1, maxLength: 131072, description: 'Run by `/bin/sh -c`' }),
      Type.Array(Type.String({ maxLength: 131072 }), { minItems: 1, maxItems: 4096, description: 'argv' }),
    ]),
    timeout_s: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 86400, default: 60 })),
    env: Type.Optional(EnvMap),
    cwd: Type.Optional(BunkerPath),
    stdin: Type.Optional(Type.String({ maxLength: 8 * 1024 * 1024 })),
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' })),
    stream: Type.Optional(Type.Boolean({ description: 'Answer with Server-Sent Events `stdout`, `stderr`, `exit`' })),
  },
  { ...strict, $id: 'ExecRequest' },
);
export type ExecBody = Static<typeof ExecBody>;

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
    full_output_ref: Nullable(Type.String({ description: 'Path (relative to the API base) of the full output, when truncated' })),
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

export const OutputParams = Type.Object({ id: BunkerId, exec_id: Type.String({ pattern: '^ex_[0-9a-z]{20}$' }) }, strict);
export const OutputQuery = Type.Object({ stream: Type.Optional(literalUnion(['stdout', 'stderr'] as const)) }, strict);

export const Image = Type.Object(
  {
    name: Type.String(),
    sha256: Nullable(Type.String()),
    state: literalUnion(['pending', 'ready', 'failed'] as const),
    scope: literalUnion(['tenant', 'partner', 'platform'] as const),
    size_bytes: Nullable(Type.Integer()),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Image' },
);
export const ImageList = Type.Object({ items: Type.Array(Image) }, { $id: 'ImageList' });

export const Worker = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    state: literalUnion(['online', 'draining', 'offline'] as const),
    isolations: Type.Array(Type.String()),
    capacity: Type.Object({ cpu_millicores: Type.Integer(), memory_mb: Type.Integer(), disk_mb: Type.Integer() }),
    allocated: Type.Object({ cpu_millicores: Type.Integer(), memory_mb: Type.Integer(), disk_mb: Type.Integer() }),
    bunker_count: Type.Integer(),
    last_heartbeat_at: Nullable(Type.String({ format: 'date-time' })),
  },
  { $id: 'Worker' },
);
export const WorkerList = Type.Object({ items: Type.Array(Worker) }, { $id: 'WorkerList' });
export const WorkerIdParams = Type.Object({ id: Type.String({ pattern: '^wk_[0-9a-z]{20}$' }) }, strict);

/** Sent by a worker every heartbeat interval (worker token auth). */
export const HeartbeatBody = Type.Object(
  {
    worker_id: Type.String({ pattern: '^wk_[0-9a-z]{20}$' }),
    name: Type.String({ minLength: 1, maxLength: 128 }),
    url: Type.String({ maxLength: 512, description: "How the controller reaches the worker; '' for the in-process worker of serve" }),
    isolations: Type.Array(Type.String({ maxLength: 32 }), { maxItems: 8 }),
    capacity: Type.Object(
      {
        cpu_millicores: Type.Integer({ minimum: 0 }),
        memory_mb: Type.Integer({ minimum: 0 }),
        disk_mb: Type.Integer({ minimum: 0 }),
      },
      strict,
    ),
    cached_images: Type.Array(Type.String({ pattern: '^[0-9a-f]{64}$' }), { maxItems: 10000 }),
    bunkers: Type.Array(Type.Object({ id: BunkerId, status: literalUnion(['running', 'paused', 'stopped'] as const) }, strict), {
      maxItems: 100000,
    }),
  },
  { ...strict, $id: 'Heartbeat' },
);
export type HeartbeatBody = Static<typeof HeartbeatBody>;
export const HeartbeatReply = Type.Object(
  { ok: Type.Boolean(), heartbeat_interval_s: Type.Number(), unknown_bunkers: Type.Array(Type.String()) },
  { $id: 'HeartbeatReply' },
);

export const CreateTenantBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' }) },
  { ...strict, $id: 'CreateTenant' },
);
export const Tenant = Type.Object({ id: Type.String(), name: Type.String() }, { $id: 'Tenant' });
export const TenantIdParams = Type.Object({ id: Type.String({ pattern: '^tn_[0-9a-z]{20}$' }) }, strict);
export const CreateApiKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    permissions: Type.Array(literalUnion(PERMISSIONS), { minItems: 1, maxItems: PERMISSIONS.length, uniqueItems: true }),
  },
  { ...strict, $id: 'CreateApiKey' },
);
export const CreatedApiKey = Type.Object(
  { id: Type.String(), key: Type.String({ description: 'Shown once; only its SHA-256 is stored' }) },
  { $id: 'CreatedApiKey' },
);
export const Empty = Type.Object({}, { $id: 'Empty' });
