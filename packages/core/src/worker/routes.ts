/**
 * Every route of the worker's HTTP transport, declared once. WorkerHttpServer registers these
 * (validating with the schemas) and serves the empty/json/exec ones on its multiplexed channel
 * too (mux.ts); HttpWorkerClient and MuxWorkerClient are generated from them, and the
 * conformance suite runs each of them in process, over HTTP and over the channel. A route
 * names the WorkerApi verb it carries (or `openCachedImage`, what a worker serves its peers) and
 * how that verb's arguments and answer travel: `encode` turns a call into a request, `decode` a
 * request back into the call.
 *
 * Kinds: `empty` answers 204; `json` answers a JSON body (`response`); `stream-in` takes a raw
 * upload (application/octet-stream) and answers JSON; `stream-out` answers raw bytes; `exec`
 * answers NDJSON lines ({"t":"stdout"|"stderr","d":base64} … {"t":"exit",…} or {"t":"error",…}),
 * or a plain JSON error when it fails before any output; `events` answers NDJSON lines
 * {"t":"event","e":…} … {"t":"end","r":…} or {"t":"error",…} (process output, file changes);
 * `tunnel` is an HTTP upgrade (`Connection: Upgrade`, `Upgrade: scaibunker-tunnel`): `101 Switching
 * Protocols` once the verb's Duplex is there, then raw bytes both ways on the socket, or a plain
 * JSON error answer instead of the 101.
 * Every route needs `Authorization: Bearer <worker token>`; errors are {error:{code,message}}
 * with the status from WORKER_ERROR_STATUS (or the route's `errorStatus`).
 */
import type { Readable } from 'node:stream';
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { CachedImageSource, EventHandlers, ExecHandlers, ProcessOutput, WorkerApi } from './api.js';
import type { WorkerErrorCode } from './errors.js';
import * as S from './schemas.js';

/** Everything a worker answers over HTTP: the WorkerApi, and its cached images to peers. */
export interface WorkerTarget extends WorkerApi, CachedImageSource {}
export type WorkerVerb = keyof WorkerTarget;
export type WorkerArgs<K extends WorkerVerb> = Parameters<WorkerTarget[K]>;
export type WorkerResult<K extends WorkerVerb> = Awaited<ReturnType<WorkerTarget[K]>>;

export type WorkerRouteKind = 'empty' | 'json' | 'stream-in' | 'stream-out' | 'exec' | 'events' | 'tunnel';
/** The `Upgrade` protocol token of `tunnel` routes. */
export const TUNNEL_UPGRADE = 'scaibunker-tunnel';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

type Part<Key extends string, T> = T extends TSchema ? { [k in Key]: Static<T> } : { [k in Key]?: undefined };
/** A query's optional members may be given as undefined: the client leaves them out of the URL. */
type Loose<T> = { [K in keyof T]: undefined extends T[K] ? T[K] | undefined : T[K] };
type QueryPart<T> = T extends TSchema ? { query: Loose<Static<T>> } : { query?: undefined };
/** A request as it travels: path params, query, JSON body; the upload (stream-in) or the output handlers (exec). */
export type WireRequest<P = unknown, Q = unknown, B = unknown> = Part<'params', P> &
  QueryPart<Q> &
  Part<'body', B> & { upload?: Readable; handlers?: ExecHandlers; events?: EventHandlers<unknown>; from?: number };
/**
 * A stream-out answer: the bytes, and their length when known up front (sent as content-length).
 * With `from` (a route taking ranges, asked for one), `stream` holds bytes `from`… of the
 * `bytes` there are: answered 206 with `content-range: bytes from-(bytes-1)/bytes`.
 */
export interface StreamReply {
  stream: Readable;
  bytes?: number | undefined;
  from?: number | undefined;
}
type Reply<K extends WorkerVerb, R> = R extends TSchema ? Static<R> : K extends 'readFile' | 'openCachedImage' ? StreamReply : void;

export interface WorkerRoute<K extends WorkerVerb = WorkerVerb, P = unknown, Q = unknown, B = unknown, R = unknown> {
  verb: K;
  method: HttpMethod;
  /** Fastify-style path from the server's root, `:name` for path params. */
  url: string;
  kind: WorkerRouteKind;
  params?: P;
  query?: Q;
  body?: B;
  /** The JSON answer (json and stream-in kinds). */
  response?: R;
  /** The worker error codes this route may answer, besides WORKER_UNAVAILABLE/IO_ERROR of the transport itself. */
  errors: readonly WorkerErrorCode[];
  /** Statuses that differ from WORKER_ERROR_STATUS on this route. */
  errorStatus?: Partial<Record<WorkerErrorCode, number>>;
  /** Safe to send again when a pooled keep-alive socket turned out stale (GET and DELETE always are). */
  idempotent?: boolean;
  /** Cap on the JSON answer the client reads (default 1 MiB). */
  replyLimit?: number;
  /**
   * stream-out: the route serves `Range: bytes=N-` (the rest of its bytes from N): the request's
   * `from`, travelling as that header. Any other Range is ignored (answered whole).
   */
  ranges?: boolean;
  /** stream-in: the most bytes the upload may have; a larger declared content-length is TOO_LARGE at once. */
  uploadLimit?: (req: WireRequest<P, Q, B>) => number;
  encode(...args: WorkerArgs<K>): WireRequest<P, Q, B>;
  decode(req: WireRequest<P, Q, B>): WorkerArgs<K>;
  /** The verb's result as it goes on the wire (default: as it is). */
  toWire?(result: WorkerResult<K>): Reply<K, R>;
  /** The wire answer back into the verb's result (default: as it is). */
  fromWire?(reply: Reply<K, R>): WorkerResult<K>;
  /** events: one event as it goes on the wire, and back (default: as it is). */
  eventToWire?(event: never): unknown;
  eventFromWire?(wire: never): unknown;
}

const route =
  <K extends WorkerVerb>(verb: K) =>
  <
    P extends S.MaybeSchema = undefined,
    Q extends S.MaybeSchema = undefined,
    B extends S.MaybeSchema = undefined,
    R extends S.MaybeSchema = undefined,
  >(
    def: Omit<WorkerRoute<K, P, Q, B, R>, 'verb'>,
  ): WorkerRoute<K, P, Q, B, R> => ({ verb, ...def });

const truthy = (v: string | undefined): boolean => v === 'true' || v === '1';
const boolQuery = (v: boolean | undefined): 'true' | 'false' | undefined => (v === undefined ? undefined : v ? 'true' : 'false');
const id = (bunkerId: string) => ({ id: bunkerId });

const W = '/v1/worker';
const BUNKER = `${W}/bunkers/:id`;
const FILE_ERRORS = [
  'BUNKER_NOT_FOUND',
  'INVALID_STATE',
  'NOT_FOUND',
  'NOT_A_DIRECTORY',
  'IS_A_DIRECTORY',
  'ALREADY_EXISTS',
  'NOT_EMPTY',
  'PERMISSION_DENIED',
  'INVALID_PATH',
  'NO_SPACE',
  'IO_ERROR',
  'CHANNEL_CLOSED',
] as const satisfies readonly WorkerErrorCode[];

const PROCESS = `${BUNKER}/processes/:execId`;
const proc = (bunkerId: string, execId: string) => ({ id: bunkerId, execId });
const PROCESS_ERRORS = [
  'BUNKER_NOT_FOUND',
  'PROCESS_NOT_FOUND',
  'PROCESS_CONFLICT',
  'CHANNEL_CLOSED',
] as const satisfies readonly WorkerErrorCode[];
const PROCESS_START_ERRORS = [
  'BUNKER_NOT_FOUND',
  'INVALID_STATE',
  'NOT_FOUND',
  'PERMISSION_DENIED',
  'IO_ERROR',
  'CHANNEL_CLOSED',
] as const satisfies readonly WorkerErrorCode[];

export const WORKER_ROUTES = {
  spawn: route('spawn')({
    method: 'POST',
    url: `${W}/bunkers`,
    kind: 'empty',
    body: S.SpawnRequest,
    errors: [
      'SPAWN_FAILED',
      'IMAGE_NOT_CACHED',
      'IMAGE_FETCH_FAILED',
      'HOST_DISK_FULL',
      'INVALID_STATE',
      'BRIDGE_FAILED',
      'SNAPSHOT_NOT_FOUND',
      'SNAPSHOT_CORRUPT',
    ],
    encode: (req) => ({ body: req }),
    decode: (r) => [r.body],
  }),
  destroy: route('destroy')({
    method: 'DELETE',
    url: BUNKER,
    kind: 'empty',
    params: S.BunkerParams,
    errors: ['IO_ERROR'],
    encode: (bunkerId) => ({ params: id(bunkerId) }),
    decode: (r) => [r.params.id],
  }),
  pause: route('pause')({
    method: 'POST',
    url: `${BUNKER}/pause`,
    kind: 'empty',
    params: S.BunkerParams,
    errors: ['BUNKER_NOT_FOUND', 'INVALID_STATE'],
    encode: (bunkerId) => ({ params: id(bunkerId) }),
    decode: (r) => [r.params.id],
  }),
  resume: route('resume')({
    method: 'POST',
    url: `${BUNKER}/resume`,
    kind: 'empty',
    params: S.BunkerParams,
    errors: ['BUNKER_NOT_FOUND', 'INVALID_STATE'],
    encode: (bunkerId) => ({ params: id(bunkerId) }),
    decode: (r) => [r.params.id],
  }),
  snapshot: route('snapshot')({
    method: 'POST',
    url: `${BUNKER}/snapshots`,
    kind: 'json',
    params: S.BunkerParams,
    body: S.SnapshotRequest,
    response: S.SnapshotResult,
    errors: ['BUNKER_NOT_FOUND', 'INVALID_STATE', 'SNAPSHOT_FAILED', 'HOST_DISK_FULL'],
    encode: (bunkerId, req) => ({ params: id(bunkerId), body: req }),
    decode: (r) => [r.params.id, r.body],
  }),
  exec: route('exec')({
    method: 'POST',
    url: `${BUNKER}/exec`,
    kind: 'exec',
    params: S.BunkerParams,
    body: S.ExecRequest,
    errors: ['BUNKER_NOT_FOUND', 'INVALID_STATE', 'NOT_FOUND', 'PERMISSION_DENIED', 'IO_ERROR', 'CHANNEL_CLOSED'],
    encode: (bunkerId, req, handlers) => ({ params: id(bunkerId), body: req, handlers }),
    decode: (r) => [r.params.id, r.body, r.handlers ?? {}],
  }),
  startProcess: route('startProcess')({
    method: 'POST',
    url: `${BUNKER}/processes`,
    kind: 'json',
    params: S.BunkerParams,
    body: S.StartProcessRequest,
    response: S.ProcessInfo,
    errors: [...PROCESS_START_ERRORS, 'PROCESS_CONFLICT'],
    // The execId makes a repeat answer the process the first request started.
    idempotent: true,
    encode: (bunkerId, req) => ({ params: id(bunkerId), body: req }),
    decode: (r) => [r.params.id, r.body],
  }),
  listProcesses: route('listProcesses')({
    method: 'GET',
    url: `${BUNKER}/processes`,
    kind: 'json',
    params: S.BunkerParams,
    response: S.ProcessList,
    errors: ['BUNKER_NOT_FOUND'],
    replyLimit: 16 * 1024 * 1024,
    encode: (bunkerId) => ({ params: id(bunkerId) }),
    decode: (r) => [r.params.id],
    toWire: (items) => ({ items }),
    fromWire: (reply) => reply.items,
  }),
  getProcess: route('getProcess')({
    method: 'GET',
    url: PROCESS,
    kind: 'json',
    params: S.ProcessParams,
    response: S.ProcessInfo,
    errors: PROCESS_ERRORS,
    encode: (bunkerId, execId) => ({ params: proc(bunkerId, execId) }),
    decode: (r) => [r.params.id, r.params.execId],
  }),
  processEvents: route('processEvents')({
    method: 'GET',
    url: `${PROCESS}/events`,
    kind: 'events',
    params: S.ProcessParams,
    query: S.EventsQuery,
    errors: PROCESS_ERRORS,
    encode: (bunkerId, execId, fromSeq, events) => ({ params: proc(bunkerId, execId), query: { from: fromSeq }, events }),
    decode: (r) => [r.params.id, r.params.execId, r.query.from ?? 1, r.events as EventHandlers<ProcessOutput>],
    eventToWire: (e: ProcessOutput) => ({ stream: e.stream, seq: e.seq, d: e.data.toString('base64') }),
    eventFromWire: (w: { stream: 'stdout' | 'stderr'; seq: number; d: string }): ProcessOutput => ({
      stream: w.stream,
      seq: w.seq,
      data: Buffer.from(w.d, 'base64'),
    }),
  }),
  writeStdin: route('writeStdin')({
    method: 'POST',
    url: `${PROCESS}/stdin`,
    kind: 'stream-in',
    params: S.ProcessParams,
    response: S.WriteStdinResult,
    errors: PROCESS_ERRORS,
    encode: (bunkerId, execId, data) => ({ params: proc(bunkerId, execId), upload: data }),
    decode: (r) => [r.params.id, r.params.execId, r.upload as Readable],
  }),
  closeStdin: route('closeStdin')({
    method: 'POST',
    url: `${PROCESS}/stdin/close`,
    kind: 'empty',
    params: S.ProcessParams,
    errors: PROCESS_ERRORS,
    idempotent: true,
    encode: (bunkerId, execId) => ({ params: proc(bunkerId, execId) }),
    decode: (r) => [r.params.id, r.params.execId],
  }),
  signalProcess: route('signalProcess')({
    method: 'POST',
    url: `${PROCESS}/signal`,
    kind: 'empty',
    params: S.ProcessParams,
    body: S.SignalBody,
    errors: PROCESS_ERRORS,
    encode: (bunkerId, execId, signal) => ({ params: proc(bunkerId, execId), body: { signal } }),
    decode: (r) => [r.params.id, r.params.execId, r.body.signal],
  }),
  resizeProcess: route('resizeProcess')({
    method: 'POST',
    url: `${PROCESS}/resize`,
    kind: 'empty',
    params: S.ProcessParams,
    body: S.TerminalSize,
    errors: PROCESS_ERRORS,
    idempotent: true,
    encode: (bunkerId, execId, cols, rows) => ({ params: proc(bunkerId, execId), body: { cols, rows } }),
    decode: (r) => [r.params.id, r.params.execId, r.body.cols, r.body.rows],
  }),
  watchFiles: route('watchFiles')({
    method: 'GET',
    url: `${BUNKER}/watch`,
    kind: 'events',
    params: S.BunkerParams,
    query: S.WatchQuery,
    errors: FILE_ERRORS,
    encode: (bunkerId, path, opts, events) => ({
      params: id(bunkerId),
      query: { path, recursive: boolQuery(opts.recursive) },
      events,
    }),
    decode: (r) => [r.params.id, r.query.path, { recursive: truthy(r.query.recursive) }, r.events as EventHandlers<S.WatchEvent>],
  }),
  readFile: route('readFile')({
    method: 'GET',
    url: `${BUNKER}/files`,
    kind: 'stream-out',
    params: S.BunkerParams,
    query: S.PathQuery,
    errors: FILE_ERRORS,
    encode: (bunkerId, path) => ({ params: id(bunkerId), query: { path } }),
    decode: (r) => [r.params.id, r.query.path],
    toWire: (stream) => ({ stream }),
    fromWire: (reply: StreamReply) => reply.stream,
  }),
  openTunnel: route('openTunnel')({
    method: 'GET',
    url: `${BUNKER}/ports/:port/tunnel`,
    kind: 'tunnel',
    params: S.TunnelParams,
    errors: ['BUNKER_NOT_FOUND', 'INVALID_STATE', 'PORT_NOT_LISTENING', 'TOO_MANY_TUNNELS', 'IO_ERROR', 'CHANNEL_CLOSED'],
    encode: (bunkerId, port) => ({ params: { id: bunkerId, port: String(port) } }),
    decode: (r) => [r.params.id, Number(r.params.port)],
  }),
  writeFile: route('writeFile')({
    method: 'PUT',
    url: `${BUNKER}/files`,
    kind: 'stream-in',
    params: S.BunkerParams,
    query: S.WriteFileQuery,
    response: S.WriteFileResult,
    errors: [...FILE_ERRORS, 'TOO_LARGE'],
    uploadLimit: (r) => r.query.max_bytes,
    encode: (bunkerId, path, data, opts) => ({
      params: id(bunkerId),
      query: { path, max_bytes: opts.maxBytes, mode: opts.mode, parents: boolQuery(opts.parents) },
      upload: data,
    }),
    decode: (r) => [
      r.params.id,
      r.query.path,
      r.upload as Readable,
      { mode: r.query.mode, parents: truthy(r.query.parents), maxBytes: r.query.max_bytes },
    ],
  }),
  stat: route('stat')({
    method: 'GET',
    url: `${BUNKER}/stat`,
    kind: 'json',
    params: S.BunkerParams,
    query: S.PathQuery,
    response: S.FileStatInfo,
    errors: FILE_ERRORS,
    encode: (bunkerId, path) => ({ params: id(bunkerId), query: { path } }),
    decode: (r) => [r.params.id, r.query.path],
  }),
  list: route('list')({
    method: 'GET',
    url: `${BUNKER}/list`,
    kind: 'json',
    params: S.BunkerParams,
    query: S.PathQuery,
    response: S.FileList,
    errors: FILE_ERRORS,
    encode: (bunkerId, path) => ({ params: id(bunkerId), query: { path } }),
    decode: (r) => [r.params.id, r.query.path],
    toWire: (items) => ({ items }),
    fromWire: (reply) => reply.items,
  }),
  mkdir: route('mkdir')({
    method: 'POST',
    url: `${BUNKER}/mkdir`,
    kind: 'empty',
    params: S.BunkerParams,
    body: S.MkdirBody,
    errors: FILE_ERRORS,
    encode: (bunkerId, path, opts) => ({
      params: id(bunkerId),
      body: opts.parents === undefined ? { path } : { path, parents: opts.parents },
    }),
    decode: (r) => [r.params.id, r.body.path, { parents: r.body.parents }],
  }),
  remove: route('remove')({
    method: 'DELETE',
    url: `${BUNKER}/files`,
    kind: 'empty',
    params: S.BunkerParams,
    query: S.RemoveQuery,
    errors: FILE_ERRORS,
    encode: (bunkerId, path, opts) => ({
      params: id(bunkerId),
      query: { path, recursive: boolQuery(opts.recursive) },
    }),
    decode: (r) => [r.params.id, r.query.path, { recursive: truthy(r.query.recursive) }],
  }),
  stats: route('stats')({
    // POST because the id list is long; bunkers this worker does not run are left out.
    method: 'POST',
    url: `${W}/stats`,
    kind: 'json',
    body: S.StatsBody,
    response: S.StatsReply,
    errors: [],
    idempotent: true,
    // Up to ~200 bytes per bunker: allow far more than the default reply cap.
    replyLimit: 64 * 1024 * 1024,
    encode: (bunkerIds) => ({ body: { bunkerIds } }),
    decode: (r) => [r.body.bunkerIds],
    toWire: (stats) => ({ stats }),
    fromWire: (reply) => reply.stats,
  }),
  createBridge: route('createBridge')({
    method: 'POST',
    url: `${W}/bridges`,
    kind: 'empty',
    body: S.BridgeRequest,
    errors: ['BRIDGE_FAILED'],
    encode: (req) => ({ body: req }),
    decode: (r) => [r.body],
  }),
  deleteBridge: route('deleteBridge')({
    method: 'DELETE',
    url: `${W}/bridges/:id`,
    kind: 'empty',
    params: S.BridgeParams,
    errors: ['BRIDGE_FAILED'],
    encode: (bridgeId) => ({ params: { id: bridgeId } }),
    decode: (r) => [r.params.id],
  }),
  ensureImage: route('ensureImage')({
    // Under /v1/images: the controller and peer workers share the worker token.
    method: 'POST',
    url: '/v1/images/:sha256/ensure',
    kind: 'json',
    params: S.ImageParams,
    response: S.EnsureImageResult,
    errors: ['IMAGE_NOT_CACHED', 'IMAGE_FETCH_FAILED', 'HOST_DISK_FULL'],
    // A second ensure of an image joins the first or finds it cached.
    idempotent: true,
    encode: (sha256) => ({ params: { sha256 } }),
    decode: (r) => [r.params.sha256],
  }),
  openCachedImage: route('openCachedImage')({
    // A peer's download: the complete cached image with its content-length, or the rest of it
    // from a byte on (`Range: bytes=N-`, 206), to continue a download that was cut.
    method: 'GET',
    url: '/v1/images/:sha256',
    kind: 'stream-out',
    ranges: true,
    params: S.ImageParams,
    errors: ['IMAGE_NOT_CACHED'],
    // Not here is a plain 404 to a peer (IMAGE_NOT_CACHED's usual 409 is about spawning).
    errorStatus: { IMAGE_NOT_CACHED: 404 },
    encode: (sha256, from) => (from ? { params: { sha256 }, from } : { params: { sha256 } }),
    decode: (r) => (r.from ? [r.params.sha256, r.from] : [r.params.sha256]),
    toWire: (opened) => opened,
    fromWire: (reply: StreamReply) =>
      reply.from ? { stream: reply.stream, bytes: reply.bytes ?? 0, from: reply.from } : { stream: reply.stream, bytes: reply.bytes ?? 0 },
  }),
} satisfies { [K in WorkerVerb]: WorkerRoute<K, S.MaybeSchema, S.MaybeSchema, S.MaybeSchema, S.MaybeSchema> };

export type WorkerRoutes = typeof WORKER_ROUTES;
/** A request of any route, its parts untyped: for code that handles every route alike. */
export interface AnyWireRequest {
  params?: Record<string, string> | undefined;
  query?: Record<string, string | number | boolean | undefined> | undefined;
  body?: unknown;
  upload?: Readable | undefined;
  handlers?: ExecHandlers | undefined;
  events?: EventHandlers<unknown> | undefined;
  from?: number | undefined;
}
/** A route with its types erased (the list is checked against WorkerRoute<K> above). */
export interface AnyWorkerRoute
  extends Omit<WorkerRoute, 'encode' | 'decode' | 'toWire' | 'fromWire' | 'uploadLimit' | 'eventToWire' | 'eventFromWire'> {
  eventToWire?(event: unknown): unknown;
  eventFromWire?(wire: unknown): unknown;
  encode(...args: unknown[]): AnyWireRequest;
  decode(req: AnyWireRequest): unknown[];
  toWire?(result: unknown): unknown;
  fromWire?(reply: unknown): unknown;
  uploadLimit?(req: AnyWireRequest): number;
}
export const WORKER_ROUTE_LIST: readonly AnyWorkerRoute[] = Object.values(WORKER_ROUTES) as unknown as AnyWorkerRoute[];

/**
 * Matches a request path against the routes of one kind, returning the route and its path
 * params when one matches and the params satisfy its schema (`null` params: the path matched
 * but a param is invalid). For requests Fastify does not route: `tunnel` upgrades.
 */
export function matchRoute(
  kind: WorkerRouteKind,
  method: string,
  pathname: string,
): { route: AnyWorkerRoute; params: Record<string, string> | null } | null {
  for (const route of WORKER_ROUTE_LIST) {
    if (route.kind !== kind || route.method !== method) continue;
    const names: string[] = [];
    const re = new RegExp(
      `^${route.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:(\w+)/g, (_, n: string) => {
        names.push(n);
        return '([^/]+)';
      })}$`,
    );
    const m = re.exec(pathname);
    if (!m) continue;
    const params: Record<string, string> = {};
    try {
      names.forEach((n, i) => {
        params[n] = decodeURIComponent(m[i + 1] ?? '');
      });
    } catch {
      return { route, params: null }; // malformed %-escape
    }
    return { route, params: !route.params || Value.Check(route.params as TSchema, params) ? params : null };
  }
  return null;
}
