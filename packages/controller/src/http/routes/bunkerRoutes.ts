import { StringDecoder } from 'node:string_decoder';
import { ApiError, schemas } from '@scaibunker/core';
import { execLogToApi } from '../../bunkers/toApi.js';
import { type RouteDef, route } from '../Route.js';
import { SseStream } from '../SseStream.js';
import { API, type Services } from './Services.js';

/** `GET` here lists the tenant's bunkers exactly as `GET /v1/modules/scaibunker/bunkers` does (the read-only dashboard's path). */
export const DASHBOARD_BUNKERS = '/v1/scaibunker/bunkers';

export function bunkerRoutes(s: Services): RouteDef[] {
  const listBunkers = route({
    method: 'GET',
    url: `${API}/bunkers`,
    auth: 'scaibunker:read',
    operationId: 'listBunkers',
    summary: "List the tenant's bunkers, newest first",
    tags: ['bunkers'],
    querystring: schemas.ListBunkersQuery,
    response: { status: 200, schema: schemas.BunkerPage },
    errors: [],
    handler: async ({ query, principal }) => {
      const labels = (query.label ?? []).map((l): [string, string] => {
        const i = l.indexOf('=');
        return [l.slice(0, i), l.slice(i + 1)];
      });
      const page = await s.store.bunkers.list({
        tenantId: principal.tenantId,
        ...(query.state ? { state: query.state } : {}),
        labels,
        limit: query.limit ?? 50,
        ...(query.cursor ? { cursor: query.cursor } : {}),
      });
      return { items: await s.bunkers.toApi(page.items), next_cursor: page.nextCursor };
    },
  });
  return [
    route({
      method: 'POST',
      url: `${API}/bunkers`,
      auth: 'scaibunker:create',
      operationId: 'createBunker',
      summary: 'Create a bunker and wait until it runs',
      tags: ['bunkers'],
      body: schemas.CreateBunkerBody,
      response: { status: 201, schema: schemas.Bunker },
      errors: [
        'IMAGE_NOT_FOUND',
        'IMAGE_NOT_READY',
        'WORKER_UNAVAILABLE',
        'NO_SUITABLE_WORKER',
        'QUOTA_EXCEEDED',
        'NETWORK_PROFILE_DENIED',
        'LIVE_STATE_UNAVAILABLE',
        'INSUFFICIENT_STORAGE',
        'SNAPSHOT_NOT_FOUND',
        'SNAPSHOT_NOT_READY',
        'SNAPSHOT_CORRUPT',
        'BRIDGE_REJECTED',
      ],
      handler: async ({ body, principal }) => s.bunkers.toApiOne(await s.bunkers.create(principal, body)),
    }),
    listBunkers,
    // The seeds' read-only dashboard path: the same route (permission, query, answer, handler) at another URL.
    { ...listBunkers, url: DASHBOARD_BUNKERS, operationId: 'listBunkersDashboard', summary: `${listBunkers.summary} (dashboard path)` },
    route({
      method: 'GET',
      url: `${API}/bunkers/:id`,
      auth: 'scaibunker:read',
      operationId: 'getBunker',
      summary: 'Get one bunker',
      tags: ['bunkers'],
      params: schemas.BunkerIdParams,
      response: { status: 200, schema: schemas.Bunker },
      errors: ['BUNKER_NOT_FOUND'],
      handler: async ({ params, principal }) => s.bunkers.toApiOne(await s.bunkers.get(principal, params.id)),
    }),
    route({
      method: 'DELETE',
      url: `${API}/bunkers/:id`,
      auth: 'scaibunker:create',
      operationId: 'terminateBunker',
      summary: 'Terminate a bunker (idempotent)',
      tags: ['bunkers'],
      params: schemas.BunkerIdParams,
      response: { status: 200, schema: schemas.Bunker },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_INVALID_TRANSITION'],
      handler: async ({ params, principal }) => s.bunkers.toApiOne(await s.bunkers.terminate(principal, params.id)),
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/pause`,
      auth: 'scaibunker:execute',
      operationId: 'pauseBunker',
      summary:
        'Freeze every process of a running bunker; `passivate: true` (persistent bunkers) snapshots it and releases its worker resources instead',
      tags: ['bunkers'],
      params: schemas.BunkerIdParams,
      body: schemas.PauseBody,
      bodyOptional: true,
      response: { status: 200, schema: schemas.Bunker },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_INVALID_TRANSITION', 'WORKER_UNAVAILABLE', 'SNAPSHOT_FAILED'],
      handler: async ({ params, body, principal }) =>
        s.bunkers.toApiOne(
          body.passivate ? await s.passivation.passivateFor(principal, params.id) : await s.bunkers.setPaused(principal, params.id, true),
        ),
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/resume`,
      auth: 'scaibunker:execute',
      operationId: 'resumeBunker',
      summary: 'Thaw a paused bunker, or restore a passivated one from its snapshot (on any worker that takes it)',
      tags: ['bunkers'],
      params: schemas.BunkerIdParams,
      response: { status: 200, schema: schemas.Bunker },
      errors: [
        'BUNKER_NOT_FOUND',
        'BUNKER_INVALID_TRANSITION',
        'WORKER_UNAVAILABLE',
        'NO_SUITABLE_WORKER',
        'SNAPSHOT_NOT_FOUND',
        'SNAPSHOT_CORRUPT',
        'INSUFFICIENT_STORAGE',
      ],
      handler: async ({ params, principal }) => s.bunkers.toApiOne(await s.bunkers.setPaused(principal, params.id, false)),
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/exec-logs`,
      auth: 'scaibunker:read',
      operationId: 'listExecLogs',
      summary: "A bunker's exec log, newest first",
      tags: ['exec'],
      params: schemas.BunkerIdParams,
      querystring: schemas.PageQuery,
      response: { status: 200, schema: schemas.ExecLogPage },
      errors: ['BUNKER_NOT_FOUND'],
      handler: async ({ params, query, principal }) => {
        await s.bunkers.get(principal, params.id);
        const page = await s.store.execLogs.list(principal.tenantId, params.id, query.limit ?? 50, query.cursor);
        return { items: page.items.map(execLogToApi), next_cursor: page.nextCursor };
      },
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/exec-logs/:exec_id/output`,
      auth: 'scaibunker:read',
      operationId: 'getExecOutput',
      summary: 'Download the full output of a truncated exec',
      tags: ['exec'],
      params: schemas.OutputParams,
      querystring: schemas.OutputQuery,
      response: { status: 200, binary: true },
      errors: ['BUNKER_NOT_FOUND', 'OUTPUT_NOT_FOUND', 'BLOB_STORE_UNAVAILABLE'],
      handler: async ({ params, query, principal, reply }) => {
        await s.bunkers.get(principal, params.id);
        const stream = await s.exec.output(principal, params.id, params.exec_id, query.stream ?? 'stdout');
        reply.header('content-type', 'application/octet-stream');
        return reply.send(stream);
      },
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/exec`,
      auth: 'scaibunker:execute',
      operationId: 'execInBunker',
      summary:
        'Run a command: answers its result; `stream: true` answers Server-Sent Events; `background: true` answers 202 with the running process',
      tags: ['exec'],
      params: schemas.BunkerIdParams,
      body: schemas.ExecBody,
      response: {
        status: 200,
        schema: schemas.ExecResult,
        sse: ['start', 'stdout', 'stderr', 'exit', 'error'],
        also: [{ status: 202, schema: schemas.Process, description: '`background: true`: the process runs' }],
      },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'WORKER_UNAVAILABLE'],
      handler: async ({ params, body, principal, req, reply }) => {
        if (body.background) {
          const started = await s.processes.startFromBody(principal, params.id, body);
          reply.status(202);
          return started;
        }
        if (!body.stream) {
          // A blocking exec whose client goes away is killed (its process group), not left running.
          const abort = new AbortController();
          reply.raw.on('close', () => {
            if (!reply.raw.writableFinished) abort.abort();
          });
          return s.exec.exec(principal, params.id, body, { signal: abort.signal });
        }
        // Resolve the bunker before committing to a 200 event stream, so 404/409 stay HTTP errors.
        await s.bunkers.requireRunning(principal, params.id);
        const sse = new SseStream(req, reply);
        const sendText = (event: string, text: string) => (text ? sse.send(event, { data: text }) : undefined);
        // Decoders keep a multi-byte character split across chunks whole.
        const out = new StringDecoder('utf8');
        const err = new StringDecoder('utf8');
        try {
          const result = await s.exec.exec(principal, params.id, body, {
            onStart: (execId) => sse.send('start', { exec_id: execId }),
            onStdout: (c) => sendText('stdout', out.write(c)),
            onStderr: (c) => sendText('stderr', err.write(c)),
            signal: sse.signal,
          });
          const { stdout: _o, stderr: _e, ...exit } = result;
          await sse.send('exit', exit);
        } catch (err) {
          const e = err instanceof ApiError ? err : new ApiError('INTERNAL', 'exec failed');
          await sse.send('error', e.toBody().error);
        }
        sse.end();
        return reply;
      },
    }),
  ];
}
