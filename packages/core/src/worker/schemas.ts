/**
 * The shapes crossing the controller ↔ worker boundary, as TypeBox schemas: the worker's HTTP
 * transport validates requests with them, and the TypeScript types of the contract are their
 * `Static`s. (The heartbeat, which the worker sends to the controller's public API, is
 * `schemas.HeartbeatBody` of the API; its type is re-derived here.)
 */
import { type Static, type TSchema, type TUnsafe, Type } from '@sinclair/typebox';
import type { HeartbeatBody, HeartbeatReply as HeartbeatReplySchema } from '../api/schemas.js';
import { SHA256_HEX_PATTERN } from '../ids/newId.js';
import { PROCESS_STATES, type ProcessState } from '../lifecycle/processStates.js';
import {
  BANDWIDTH_MBIT_MAX,
  BANDWIDTH_MBIT_MIN,
  NETWORK_ALLOWLIST_MAX,
  NETWORK_PROFILES,
  TRANSIT_INTERFACES_MAX,
  TRANSIT_INTERFACES_MIN,
} from '../network/profiles.js';

const strict = { additionalProperties: false } as const;
/** `{type: 'string', enum}`: a plain enum keyword rather than TypeBox's anyOf of consts. */
const StringEnum = <const T extends readonly string[]>(values: T): TUnsafe<T[number]> =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });

/** A bunker id as the worker accepts it (the controller's ids are stricter). */
export const BunkerId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
/** An exec id as the worker accepts it (the controller's `ex_…`). */
export const ExecId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
export const TenantId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
export const BridgeId = Type.String({ pattern: '^br_[0-9a-z]{1,64}$' });
export const Sha256 = Type.String({ pattern: SHA256_HEX_PATTERN });
export const BunkerPath = Type.String({ minLength: 1, maxLength: 4096 });
/** A boolean in a query string. */
export const BoolQuery = StringEnum(['true', 'false', '1', '0']);

export const BunkerParams = Type.Object({ id: BunkerId });
export const BridgeParams = Type.Object({ id: BridgeId });
export const ImageParams = Type.Object({ sha256: Sha256 });
export const PathQuery = Type.Object({ path: BunkerPath });
/** A TCP port 1–65535 as a path segment (decimal, no leading zero). */
export const PortParam = Type.String({
  pattern: '^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$',
});
export const TunnelParams = Type.Object({ id: BunkerId, port: PortParam });

/** One layer-2 interface of a `transit` bunker; the worker checks the bridge belongs to `tenantId`. */
export const TransitInterfaceSpec = Type.Object(
  {
    bridgeId: BridgeId,
    tenantId: TenantId,
    /** Unicast MAC, lower-case `aa:bb:cc:dd:ee:ff`. */
    mac: Type.String({ pattern: '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$' }),
    /** Drop frames and ARP whose source MAC is not `mac`. */
    spoofGuard: Type.Boolean(),
  },
  strict,
);
export type TransitInterfaceSpec = Static<typeof TransitInterfaceSpec>;

export const SnapshotId = Type.String({ pattern: '^sn_[0-9a-z]{1,64}$' });

/** A stored snapshot archive as the controller knows it (its row). */
export const SnapshotRef = Type.Object(
  {
    snapshotId: SnapshotId,
    /** sha256 of the stored (compressed) archive; a download that hashes otherwise is SNAPSHOT_CORRUPT. */
    sha256: Sha256,
    sizeBytes: Type.Integer({ minimum: 0 }),
    /** What the archive holds: a container's overlay upper dir as tar, or a microVM's disk delta as qcow2. */
    format: StringEnum(['container-tar', 'microvm-qcow2']),
  },
  strict,
);
export type SnapshotRef = Static<typeof SnapshotRef>;

export const SnapshotRequest = Type.Object({ snapshotId: SnapshotId }, strict);
export type SnapshotRequest = Static<typeof SnapshotRequest>;

/** A snapshot the worker wrote to storage (`scaibunker/snapshots/{snapshotId}`), whole. */
export const SnapshotResult = SnapshotRef;
export type SnapshotResult = Static<typeof SnapshotResult>;

export const SpawnRequest = Type.Object(
  {
    bunkerId: BunkerId,
    imageSha256: Sha256,
    isolation: StringEnum(['container', 'microvm', 'proot']),
    cpuMillicores: Type.Integer({ minimum: 1 }),
    memoryMb: Type.Integer({ minimum: 1 }),
    diskMb: Type.Integer({ minimum: 1 }),
    networkProfile: StringEnum(NETWORK_PROFILES),
    /** Hostnames and `*.` wildcards an `allowlisted` bunker may reach (validated by the controller). */
    networkAllowlist: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { maxItems: NETWORK_ALLOWLIST_MAX })),
    /** Egress cap in Mbit/s; absent: the worker's default. */
    bandwidthMbit: Type.Optional(Type.Integer({ minimum: BANDWIDTH_MBIT_MIN, maximum: BANDWIDTH_MBIT_MAX })),
    /** Only with `transit`: one interface (eth0, eth1, …) per entry, each on a bridge of `tenantId`. */
    interfaces: Type.Optional(Type.Array(TransitInterfaceSpec, { minItems: TRANSIT_INTERFACES_MIN, maxItems: TRANSIT_INTERFACES_MAX })),
    hostname: Type.String({ minLength: 1, maxLength: 64 }),
    /**
     * Start from a snapshot's archive instead of the bare image: the worker fetches
     * `scaibunker/snapshots/{snapshotId}` from storage, checks its sha256 and lays its files
     * (container) or its disk delta (microvm) over the image before the bunker starts.
     */
    restore: Type.Optional(SnapshotRef),
  },
  strict,
);
export type SpawnRequest = Static<typeof SpawnRequest>;

export const ExecRequest = Type.Object(
  {
    argv: Type.Array(Type.String(), { minItems: 1 }),
    env: Type.Optional(Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' } })),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    stdin: Type.Optional(Type.String()),
    timeoutMs: Type.Integer({ minimum: 0 }),
    /** The controller's id for this exec (its exec-log row); the worker journals the output under it. */
    execId: Type.Optional(ExecId),
  },
  strict,
);
export type ExecRequest = Static<typeof ExecRequest>;

export const TerminalSize = Type.Object(
  { cols: Type.Integer({ minimum: 1, maximum: 1000 }), rows: Type.Integer({ minimum: 1, maximum: 1000 }) },
  strict,
);
export type TerminalSize = Static<typeof TerminalSize>;

/** A process that runs on after the call returns (`background: true`, a shell). */
export const StartProcessRequest = Type.Object(
  {
    execId: ExecId,
    argv: Type.Array(Type.String(), { minItems: 1 }),
    env: Type.Optional(Type.Unsafe<Record<string, string>>({ type: 'object', additionalProperties: { type: 'string' } })),
    cwd: Type.Optional(Type.String()),
    user: Type.Optional(Type.String()),
    /** 0: no timeout. */
    timeoutMs: Type.Integer({ minimum: 0 }),
    tag: Type.Optional(Type.String({ maxLength: 64 })),
    /** Keep stdin open for writeStdin (a pty's stdin always is). */
    stdin: Type.Optional(Type.Boolean()),
    pty: Type.Optional(TerminalSize),
  },
  strict,
);
export type StartProcessRequest = Static<typeof StartProcessRequest>;

export type { ProcessState };

/** A process as the worker knows it: running, or finished and still journaled. */
export const ProcessInfo = Type.Object({
  execId: Type.String(),
  pid: Type.Union([Type.Integer(), Type.Null()]),
  state: StringEnum(PROCESS_STATES),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  timedOut: Type.Boolean(),
  startedAt: Type.String(),
  endedAt: Type.Union([Type.String(), Type.Null()]),
  durationMs: Type.Union([Type.Number(), Type.Null()]),
  background: Type.Boolean(),
  tag: Type.Union([Type.String(), Type.Null()]),
  pty: Type.Boolean(),
  stdinOpen: Type.Boolean(),
  /** The sequence number the next output chunk gets; the oldest one still kept. */
  nextSeq: Type.Integer({ minimum: 1 }),
  firstSeq: Type.Integer({ minimum: 1 }),
  outputBytes: Type.Integer({ minimum: 0 }),
  /** Output past the journal's bound was not kept (it reached live readers only). */
  outputTruncated: Type.Boolean(),
});
export type ProcessInfo = Static<typeof ProcessInfo>;
export const ProcessList = Type.Object({ items: Type.Array(ProcessInfo) });
export const ProcessParams = Type.Object({ id: BunkerId, execId: ExecId });
export const EventsQuery = Type.Object({ from: Type.Optional(Type.Integer({ minimum: 1 })) });
export const SignalBody = Type.Object({ signal: Type.String({ pattern: '^(SIG)?[A-Z0-9+-]{1,12}$' }) }, strict);
export const WriteStdinResult = Type.Object({ bytes: Type.Integer({ minimum: 0 }) });
export const WatchQuery = Type.Object({ path: BunkerPath, recursive: Type.Optional(BoolQuery) });

/** One output chunk of a process, as it travels (bytes in base64). */
export const ProcessEventLine = Type.Object({ stream: StringEnum(['stdout', 'stderr']), seq: Type.Integer(), d: Type.String() });
export const WATCH_EVENT_TYPES = ['create', 'write', 'remove', 'rename', 'chmod', 'overflow'] as const;
export const WatchEvent = Type.Object({
  type: StringEnum(WATCH_EVENT_TYPES),
  path: Type.String(),
  is_dir: Type.Boolean(),
});
export type WatchEvent = Static<typeof WatchEvent>;

/** How a command ended (the exec stream's last line). */
export const ExecOutcome = Type.Object({
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  timedOut: Type.Boolean(),
  durationMs: Type.Number(),
});
export type ExecOutcome = Static<typeof ExecOutcome>;

/** One line of the exec stream (NDJSON); output bytes are base64. */
export const ExecLine = Type.Union([
  Type.Object({ t: StringEnum(['stdout', 'stderr']), d: Type.String() }),
  Type.Composite([Type.Object({ t: Type.Literal('exit') }), ExecOutcome]),
  Type.Object({ t: Type.Literal('error'), code: Type.String(), message: Type.String() }),
]);
export type ExecLine = Static<typeof ExecLine>;

export const FileStatInfo = Type.Object({
  path: Type.String(),
  name: Type.String(),
  type: StringEnum(['file', 'dir', 'symlink', 'other']),
  size: Type.Number(),
  mode: Type.Number(),
  mtime_ms: Type.Number(),
  link_target: Type.Optional(Type.String()),
});
export type FileStatInfo = Static<typeof FileStatInfo>;
export const FileList = Type.Object({ items: Type.Array(FileStatInfo) });

export const WriteFileQuery = Type.Object({
  path: BunkerPath,
  max_bytes: Type.Integer({ minimum: 0 }),
  mode: Type.Optional(Type.Integer({ minimum: 0, maximum: 0o7777 })),
  parents: Type.Optional(BoolQuery),
});
export const WriteFileResult = Type.Object({ bytes: Type.Integer({ minimum: 0 }) });
export const RemoveQuery = Type.Object({ path: BunkerPath, recursive: Type.Optional(BoolQuery) });
export const MkdirBody = Type.Object({ path: BunkerPath, parents: Type.Optional(Type.Boolean()) }, strict);

export const BunkerStats = Type.Object({
  /** Cumulative CPU time of the bunker's processes (a VM: its VMM's) since it started. */
  cpuUsageNs: Type.Number(),
  memoryBytes: Type.Number(),
  pids: Type.Number(),
  /**
   * Bytes the bunker's own writable disk occupies on the host: a container's tmpfs upper
   * (used blocks), a VM's qcow2 overlay (allocated blocks). Absent when it cannot be read.
   */
  diskUsedBytes: Type.Optional(Type.Number()),
});
export type BunkerStats = Static<typeof BunkerStats>;
export const StatsBody = Type.Object({ bunkerIds: Type.Array(BunkerId, { maxItems: 100_000 }) }, strict);
export const StatsReply = Type.Object({ stats: Type.Record(Type.String(), BunkerStats) });

export const BridgeRequest = Type.Object({ bridgeId: BridgeId, tenantId: TenantId }, strict);
export type BridgeRequest = Static<typeof BridgeRequest>;

export const EnsureImageResult = Type.Object({
  source: StringEnum(['cache', 'peer', 'proxy']),
  bytes: Type.Integer({ minimum: 0 }),
});
export type EnsureImageResult = Static<typeof EnsureImageResult>;

/** What a worker reports every heartbeat: the API's HeartbeatBody. */
export type Heartbeat = Static<typeof HeartbeatBody>;
export type HeartbeatReply = Static<typeof HeartbeatReplySchema>;

/** A schema or nothing (routes without a body, query or JSON answer). */
export type MaybeSchema = TSchema | undefined;
