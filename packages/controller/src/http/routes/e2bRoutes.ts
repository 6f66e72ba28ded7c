import { ApiError, type ErrorCode, type Permission } from '@scaibunker/core';
import { Type } from '@sinclair/typebox';
import type { E2b } from '../../e2b/E2b.js';
import { renderConnectError, renderE2bError } from '../../e2b/E2b.js';
import { Envd } from '../../e2b/Envd.js';
import { CODE_INTERPRETER_PORT } from '../../e2b/Jupyter.js';
import type { NewSandbox } from '../../e2b/mapping.js';
import { type RouteDef, route } from '../Route.js';

const open = (description: string) => Type.Object({}, { additionalProperties: true, description });
const SandboxParams = Type.Object({ sandboxID: Type.String({ minLength: 1, maxLength: 64 }) });
const TimeoutBody = Type.Object({ timeout: Type.Integer({ minimum: 1 }) }, { additionalProperties: true });
const ListQuery = Type.Object(
  {
    metadata: Type.Optional(Type.String({ maxLength: 4096 })),
    state: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
    nextToken: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: true },
);
const SANDBOX_ERRORS = ['BUNKER_NOT_FOUND'] as const;
const CREATE_ERRORS = [
  'IMAGE_NOT_FOUND',
  'IMAGE_NOT_READY',
  'QUOTA_EXCEEDED',
  'NETWORK_PROFILE_DENIED',
  'NO_SUITABLE_WORKER',
  'WORKER_UNAVAILABLE',
  'LIVE_STATE_UNAVAILABLE',
] as const;

/** Where E2B's SDK has a call we do not serve: a clear 400 in E2B's shape instead of a bare 404. */
const REFUSED: Array<{ method: 'GET' | 'POST' | 'PUT'; url: string; auth: Permission; what: string; why: string }> = [
  {
    method: 'POST',
    url: '/sandboxes/:sandboxID/fork',
    auth: 'scaibunker:create',
    what: 'fork',
    why: 'use POST /v1/modules/scaibunker/bunkers/{id}/fork',
  },
  {
    method: 'POST',
    url: '/sandboxes/:sandboxID/snapshots',
    auth: 'scaibunker:execute',
    what: 'snapshots',
    why: 'use POST /v1/modules/scaibunker/bunkers/{id}/snapshots',
  },
  { method: 'GET', url: '/snapshots', auth: 'scaibunker:read', what: 'snapshots', why: 'use GET /v1/modules/scaibunker/snapshots' },
  {
    method: 'PUT',
    url: '/sandboxes/:sandboxID/network',
    auth: 'scaibunker:create',
    what: 'network updates',
    why: 'a bunker keeps its network profile for life',
  },
  {
    method: 'POST',
    url: '/sandboxes/:sandboxID/refreshes',
    auth: 'scaibunker:create',
    what: 'refreshes',
    why: 'use POST /sandboxes/{id}/timeout',
  },
];

/**
 * The E2B SDK's API on ScaiBunker's port (docs/E2B.md): the control plane under E2B's own paths
 * (`X-API-KEY`), and envd — its HTTP routes and Connect services — for requests carrying
 * `E2b-Sandbox-Id` (`X-Access-Token`). Thin: everything is in `e2b/`.
 */
export function e2bRoutes(e2b: E2b): RouteDef[] {
  const cp = {
    tags: ['e2b'],
    authenticate: (req: Parameters<E2b['controlPlaneCaller']>[0]) => e2b.controlPlaneCaller(req),
    renderError: renderE2bError,
  };
  const envdHttp = {
    tags: ['e2b-envd'],
    authenticate: (req: Parameters<E2b['envdCaller']>[0]) => e2b.envdCaller(req),
    renderError: renderE2bError,
    handler: async () => undefined,
  };
  const create = (url: string, operationId: string) =>
    route({
      ...cp,
      method: 'POST',
      url,
      auth: 'scaibunker:create',
      operationId,
      summary: 'E2B: create a sandbox (a bunker of the template’s image); answers E2B’s Sandbox with an envdAccessToken',
      body: open('E2B NewSandbox: templateID, timeout, metadata, envVars, autoPause, autoResume, allow_internet_access, network'),
      response: { status: 201, schema: open('E2B Sandbox') },
      errors: [...CREATE_ERRORS],
      handler: async ({ body, principal, req }) => e2b.sandboxes.create(principal, e2b.credentialOf(req), body as NewSandbox),
    });
  const connect = (url: string, operationId: string) =>
    route({
      ...cp,
      method: 'POST',
      url,
      auth: 'scaibunker:read',
      operationId,
      summary: 'E2B: connect to a sandbox (a fresh envdAccessToken); a paused one is resumed (201, needs scaibunker:execute)',
      params: SandboxParams,
      body: open('E2B ConnectSandbox: timeout (only ever extends)'),
      bodyOptional: true,
      response: { status: 200, schema: open('E2B Sandbox'), also: [{ status: 201, schema: open('E2B Sandbox'), description: 'resumed' }] },
      errors: [...SANDBOX_ERRORS, 'WORKER_UNAVAILABLE', 'NO_SUITABLE_WORKER'],
      handler: async ({ params, body, principal, req, reply }) => {
        const timeout = (body as { timeout?: unknown }).timeout;
        const r = await e2b.sandboxes.connect(
          principal,
          e2b.credentialOf(req),
          params.sandboxID,
          typeof timeout === 'number' ? timeout : undefined,
        );
        if (r.resumed) reply.status(201);
        return r.sandbox;
      },
    });
  const list = (url: string, operationId: string, paged: boolean) =>
    route({
      ...cp,
      method: 'GET',
      url,
      auth: 'scaibunker:read',
      operationId,
      summary: paged
        ? 'E2B: running and paused sandboxes, newest first; `metadata`, `state`, `limit`, `nextToken` (next page in `x-next-token`)'
        : 'E2B (v1): running and paused sandboxes; `metadata`',
      querystring: ListQuery,
      response: { status: 200, schema: Type.Array(open('E2B ListedSandbox')) },
      errors: [],
      handler: async ({ query, principal, reply }) => {
        const page = await e2b.sandboxes.list(
          principal,
          paged ? query : { ...(query.metadata ? { metadata: query.metadata } : {}), limit: 200 },
        );
        if (paged && page.nextToken) reply.header('x-next-token', page.nextToken);
        return page.items;
      },
    });

  const rpcRoutes = Object.entries(Envd.METHODS).map(([method, kind]) =>
    route({
      method: 'POST',
      url: `/${method}`,
      auth: RPC_AUTH[method] ?? 'scaibunker:execute',
      operationId: `envd${method.replace(/[^A-Za-z]/g, '')}`,
      summary: `envd Connect RPC ${method} (${kind.replace('_', '-')}, JSON codec); needs E2b-Sandbox-Id`,
      tags: ['e2b-envd'],
      authenticate: (req) => e2b.envdCaller(req),
      renderError: renderConnectError,
      response: { status: 200, binary: true },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'FILE_NOT_FOUND', 'EXEC_NOT_FOUND'],
      handler: async () => undefined,
      raw: async ({ principal, req, reply }) => e2b.serveRpc(principal, req, reply, method),
    }),
  );
  const unknownRpc = ['filesystem.Filesystem', 'process.Process'].map((service) =>
    route({
      method: 'POST',
      url: `/${service}/*`,
      auth: 'scaibunker:read',
      operationId: `envd${service.replace(/[^A-Za-z]/g, '')}Unknown`,
      summary: `envd: any other ${service} method answers Connect \`unimplemented\``,
      tags: ['e2b-envd'],
      wildcard: 'method',
      authenticate: (req) => e2b.envdCaller(req),
      renderError: renderConnectError,
      response: { status: 200, binary: true },
      errors: [],
      handler: async () => undefined,
      raw: async ({ principal, req, reply }) =>
        e2b.serveRpc(principal, req, reply, `${service}/${(req.url.split('?')[0] ?? '').split('/').pop()}`),
    }),
  );

  return [
    create('/sandboxes', 'e2bCreateSandbox'),
    create('/v2/sandboxes', 'e2bCreateSandboxV2'),
    list('/sandboxes', 'e2bListSandboxes', false),
    list('/v2/sandboxes', 'e2bListSandboxesV2', true),
    route({
      ...cp,
      method: 'GET',
      url: '/sandboxes/:sandboxID',
      auth: 'scaibunker:read',
      operationId: 'e2bGetSandbox',
      summary: 'E2B: one sandbox (SandboxDetail); an ended one is 404',
      params: SandboxParams,
      response: { status: 200, schema: open('E2B SandboxDetail') },
      errors: [...SANDBOX_ERRORS],
      handler: async ({ params, principal }) => e2b.sandboxes.get(principal, params.sandboxID),
    }),
    route({
      ...cp,
      method: 'DELETE',
      url: '/sandboxes/:sandboxID',
      auth: 'scaibunker:create',
      operationId: 'e2bKillSandbox',
      summary: 'E2B: kill (terminate) a sandbox → 204; an unknown or ended one is 404',
      params: SandboxParams,
      response: { status: 204 },
      errors: [...SANDBOX_ERRORS],
      handler: async ({ params, principal, reply }) => {
        await e2b.sandboxes.kill(principal, params.sandboxID);
        return reply.status(204).send();
      },
    }),
    route({
      ...cp,
      method: 'POST',
      url: '/sandboxes/:sandboxID/timeout',
      auth: 'scaibunker:create',
      operationId: 'e2bSetSandboxTimeout',
      summary: 'E2B: the sandbox ends `timeout` seconds from now (autoPause: is passivated after that long idle) → 204',
      params: SandboxParams,
      body: TimeoutBody,
      response: { status: 204 },
      errors: [...SANDBOX_ERRORS],
      handler: async ({ params, body, principal, reply }) => {
        await e2b.sandboxes.setTimeout(principal, params.sandboxID, body.timeout);
        return reply.status(204).send();
      },
    }),
    connect('/sandboxes/:sandboxID/connect', 'e2bConnectSandbox'),
    connect('/v2/sandboxes/:sandboxID/connect', 'e2bConnectSandboxV2'),
    route({
      ...cp,
      method: 'POST',
      url: '/sandboxes/:sandboxID/pause',
      auth: 'scaibunker:execute',
      operationId: 'e2bPauseSandbox',
      summary: 'E2B: pause (freezer; `memory: false` passivates an autoPause sandbox) → 204; already paused: 409',
      params: SandboxParams,
      body: open('E2B SandboxPauseRequest: memory'),
      bodyOptional: true,
      response: { status: 204 },
      errors: [...SANDBOX_ERRORS, 'BUNKER_INVALID_TRANSITION', 'WORKER_UNAVAILABLE', 'SNAPSHOT_FAILED'],
      handler: async ({ params, body, principal, reply }) => {
        const memory = (body as { memory?: unknown }).memory;
        await e2b.sandboxes.pause(principal, params.sandboxID, typeof memory === 'boolean' ? memory : undefined);
        return reply.status(204).send();
      },
    }),
    route({
      ...cp,
      method: 'POST',
      url: '/sandboxes/:sandboxID/resume',
      auth: 'scaibunker:execute',
      operationId: 'e2bResumeSandbox',
      summary: 'E2B (deprecated there): resume a paused sandbox → 201 Sandbox; not paused: 409',
      params: SandboxParams,
      body: open('E2B ResumedSandbox: timeout'),
      bodyOptional: true,
      response: { status: 201, schema: open('E2B Sandbox') },
      errors: [...SANDBOX_ERRORS, 'BUNKER_INVALID_TRANSITION', 'WORKER_UNAVAILABLE', 'NO_SUITABLE_WORKER'],
      handler: async ({ params, body, principal, req }) => {
        const timeout = (body as { timeout?: unknown }).timeout;
        return e2b.sandboxes.resume(principal, e2b.credentialOf(req), params.sandboxID, typeof timeout === 'number' ? timeout : undefined);
      },
    }),
    route({
      ...cp,
      method: 'GET',
      url: '/sandboxes/:sandboxID/metrics',
      auth: 'scaibunker:read',
      operationId: 'e2bSandboxMetrics',
      summary: "E2B: the sandbox's current CPU, memory and disk reading (one entry; none while paused)",
      params: SandboxParams,
      querystring: Type.Object(
        { start: Type.Optional(Type.Integer()), end: Type.Optional(Type.Integer()) },
        { additionalProperties: true },
      ),
      response: { status: 200, schema: Type.Array(open('E2B SandboxMetric')) },
      errors: [...SANDBOX_ERRORS, 'WORKER_UNAVAILABLE'],
      handler: async ({ params, principal }) => e2b.sandboxes.metrics(principal, params.sandboxID),
    }),
    route({
      ...cp,
      method: 'GET',
      url: '/templates',
      auth: 'scaibunker:read',
      operationId: 'e2bListTemplates',
      summary: 'E2B: the images the tenant can use, as templates (templateID = image name)',
      response: { status: 200, schema: Type.Array(open('E2B Template')) },
      errors: [],
      handler: async ({ principal }) => e2b.sandboxes.templates(principal),
    }),
    ...REFUSED.map((r) =>
      route({
        ...cp,
        method: r.method,
        url: r.url,
        auth: r.auth,
        operationId: `e2bRefused${r.method}${r.url.replace(/[^A-Za-z]/g, '')}`,
        summary: `E2B ${r.what}: not served (400 naming what to use instead)`,
        response: { status: 400 },
        errors: [],
        handler: async () => {
          throw new ApiError('VALIDATION_FAILED', `E2B ${r.what} are not supported by ScaiBunker: ${r.why}`);
        },
      }),
    ),
    route({
      ...envdHttp,
      method: 'GET',
      url: '/health',
      auth: 'scaibunker:read',
      operationId: 'envdHealth',
      summary: 'envd: 204 while the sandbox runs, 502 once it does not (needs E2b-Sandbox-Id)',
      response: { status: 204 },
      errors: ['BUNKER_NOT_FOUND'],
      raw: async ({ principal, req, reply }) => e2b.serveHttp(principal, req, reply, (call) => e2b.envd.health(call)),
    }),
    route({
      ...envdHttp,
      method: 'GET',
      url: '/envs',
      auth: 'scaibunker:read',
      operationId: 'envdEnvs',
      summary: "envd: the sandbox's environment variables (its `envVars`)",
      response: { status: 200, schema: Type.Record(Type.String(), Type.String()) },
      errors: ['BUNKER_NOT_FOUND'],
      raw: async ({ principal, req, reply }) => e2b.serveHttp(principal, req, reply, (call) => e2b.envd.envs(call)),
    }),
    route({
      ...envdHttp,
      method: 'GET',
      url: '/files',
      auth: 'scaibunker:read',
      operationId: 'envdReadFile',
      summary: 'envd: download a file (`path`, relative to the user’s home; `username`)',
      response: { status: 200, binary: true },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'FILE_NOT_FOUND', 'FILE_CONFLICT'],
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.envd.readFile(asUser(call, req.url), queryOf(req.url).path)),
    }),
    route({
      ...envdHttp,
      method: 'POST',
      url: '/files',
      auth: 'scaibunker:execute',
      operationId: 'envdWriteFiles',
      summary: 'envd: upload files (multipart/form-data, a part per file, or application/octet-stream to `path`); parents are created',
      response: { status: 200, schema: Type.Array(open('envd EntryInfo')) },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'FILE_CONFLICT', 'PAYLOAD_TOO_LARGE', 'DISK_FULL'],
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.envd.writeFiles(asUser(call, req.url), queryOf(req.url).path)),
    }),
    ...rpcRoutes,
    ...unknownRpc,
    ...codeInterpreterRoutes(e2b, envdHttp),
  ];
}

/**
 * `@e2b/code-interpreter` (port 49999 in `E2b-Sandbox-Port`): `/execute` and `/contexts`, served
 * by our code contexts (e2b/Jupyter.ts).
 */
function codeInterpreterRoutes(e2b: E2b, envdHttp: Pick<RouteDef, 'tags' | 'authenticate' | 'renderError' | 'handler'>): RouteDef[] {
  const contextId = (url: string) => decodeURIComponent((url.split('?')[0] ?? '').split('/')[2] ?? '');
  const errors: ErrorCode[] = ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'CODE_CONTEXT_NOT_FOUND', 'KERNEL_UNAVAILABLE'];
  return [
    route({
      ...envdHttp,
      method: 'POST',
      url: '/execute',
      auth: 'scaibunker:execute',
      operationId: 'e2bExecuteCode',
      summary: 'Code interpreter: run Python in a context (`{code, context_id?, language?, env_vars?}`) → NDJSON events (port 49999)',
      response: { status: 200, binary: true },
      errors,
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.jupyter.execute(call), CODE_INTERPRETER_PORT),
    }),
    route({
      ...envdHttp,
      method: 'POST',
      url: '/contexts',
      auth: 'scaibunker:execute',
      operationId: 'e2bCreateCodeContext',
      summary: 'Code interpreter: a new context `{language?, cwd?}` → `{id, language, cwd}` (port 49999)',
      response: { status: 200, binary: true },
      errors,
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.jupyter.createContext(call), CODE_INTERPRETER_PORT),
    }),
    route({
      ...envdHttp,
      method: 'GET',
      url: '/contexts',
      auth: 'scaibunker:read',
      operationId: 'e2bListCodeContexts',
      summary: 'Code interpreter: the running contexts (port 49999)',
      response: { status: 200, binary: true },
      errors,
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.jupyter.listContexts(call), CODE_INTERPRETER_PORT),
    }),
    route({
      ...envdHttp,
      method: 'DELETE',
      url: '/contexts/:contextId',
      auth: 'scaibunker:execute',
      operationId: 'e2bRemoveCodeContext',
      summary: 'Code interpreter: stop a context (port 49999)',
      response: { status: 204 },
      errors,
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.jupyter.removeContext(call, contextId(req.url)), CODE_INTERPRETER_PORT),
    }),
    route({
      ...envdHttp,
      method: 'POST',
      url: '/contexts/:contextId/restart',
      auth: 'scaibunker:execute',
      operationId: 'e2bRestartCodeContext',
      summary: 'Code interpreter: restart a context, its state dropped (port 49999)',
      response: { status: 204 },
      errors,
      raw: async ({ principal, req, reply }) =>
        e2b.serveHttp(principal, req, reply, (call) => e2b.jupyter.restartContext(call, contextId(req.url)), CODE_INTERPRETER_PORT),
    }),
  ];
}

/** Read-only Connect methods; the others need scaibunker:execute. */
const RPC_AUTH: Record<string, Permission> = {
  'filesystem.Filesystem/Stat': 'scaibunker:read',
  'filesystem.Filesystem/ListDir': 'scaibunker:read',
  'filesystem.Filesystem/WatchDir': 'scaibunker:read',
  'filesystem.Filesystem/CreateWatcher': 'scaibunker:read',
  'filesystem.Filesystem/GetWatcherEvents': 'scaibunker:read',
  'filesystem.Filesystem/RemoveWatcher': 'scaibunker:read',
  'process.Process/List': 'scaibunker:read',
  'process.Process/Connect': 'scaibunker:read',
};

/** `username=` of the files routes picks the user (home of relative paths) instead of Basic auth. */
function asUser<C extends { user: string }>(call: C, url: string): C {
  const u = queryOf(url).username;
  if (u && !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(u))
    throw new ApiError('VALIDATION_FAILED', `invalid username ${u}`, { field: 'querystring/username' });
  return u ? { ...call, user: u } : call;
}

function queryOf(url: string): { path?: string; username?: string } {
  const q = new URLSearchParams(url.split('?')[1] ?? '');
  return {
    ...(q.get('path') !== null ? { path: q.get('path') as string } : {}),
    ...(q.get('username') ? { username: q.get('username') as string } : {}),
  };
}
