import { ApiError, schemas } from '@scaibunker/core';
import { type RouteDef, route } from '../Route.js';
import { SseStream } from '../SseStream.js';
import { API, type Services } from './Services.js';

export function codeRoutes(s: Services): RouteDef[] {
  return [
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/code`,
      auth: 'scaibunker:execute',
      operationId: 'runCode',
      summary: 'Run Python in a stateful context (variables and imports kept between runs); answers Server-Sent Events',
      tags: ['code'],
      params: schemas.BunkerIdParams,
      body: schemas.RunCodeBody,
      response: { status: 200, sse: ['stdout', 'stderr', 'result', 'error', 'end_of_execution'] },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'WORKER_UNAVAILABLE', 'CODE_CONTEXT_NOT_FOUND', 'KERNEL_UNAVAILABLE'],
      handler: async ({ params, body, principal, req, reply }) => {
        // Resolved before the 200 event stream: a missing bunker or context stays an HTTP error.
        const ctx = await s.code.contextFor(principal, params.id, body.context_id);
        const sse = new SseStream(req, reply);
        try {
          await s.code.run(principal, params.id, ctx, body, (e) => sse.send(e.type, e), sse.signal);
        } catch (err) {
          const e = err instanceof ApiError ? err : new ApiError('INTERNAL', 'code run failed');
          await sse.send('error', { name: e.code, value: e.message, traceback: '' });
        }
        sse.end();
        return reply;
      },
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/code/contexts`,
      auth: 'scaibunker:execute',
      operationId: 'createCodeContext',
      summary: 'Start a new Python context (its own kernel process) in the bunker',
      tags: ['code'],
      params: schemas.BunkerIdParams,
      body: schemas.CreateCodeContextBody,
      bodyOptional: true,
      response: { status: 201, schema: schemas.CodeContext },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'WORKER_UNAVAILABLE', 'KERNEL_UNAVAILABLE'],
      handler: async ({ params, body, principal }) => s.code.createContext(principal, params.id, body),
    }),
    route({
      method: 'GET',
      url: `${API}/bunkers/:id/code/contexts`,
      auth: 'scaibunker:read',
      operationId: 'listCodeContexts',
      summary: "The bunker's running code contexts",
      tags: ['code'],
      params: schemas.BunkerIdParams,
      response: { status: 200, schema: schemas.CodeContextList },
      errors: ['BUNKER_NOT_FOUND'],
      handler: async ({ params, principal }) => ({ items: await s.code.listContexts(principal, params.id) }),
    }),
    route({
      method: 'POST',
      url: `${API}/bunkers/:id/code/contexts/:context_id/restart`,
      auth: 'scaibunker:execute',
      operationId: 'restartCodeContext',
      summary: 'Restart a context: a fresh kernel under the same id (its state is dropped)',
      tags: ['code'],
      params: schemas.CodeContextParams,
      response: { status: 200, schema: schemas.CodeContext },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'WORKER_UNAVAILABLE', 'CODE_CONTEXT_NOT_FOUND', 'KERNEL_UNAVAILABLE'],
      handler: async ({ params, principal }) => s.code.restartContext(principal, params.id, params.context_id),
    }),
    route({
      method: 'DELETE',
      url: `${API}/bunkers/:id/code/contexts/:context_id`,
      auth: 'scaibunker:execute',
      operationId: 'deleteCodeContext',
      summary: 'Stop a context (its kernel is killed)',
      tags: ['code'],
      params: schemas.CodeContextParams,
      response: { status: 204 },
      errors: ['BUNKER_NOT_FOUND', 'BUNKER_NOT_RUNNING', 'WORKER_UNAVAILABLE', 'CODE_CONTEXT_NOT_FOUND'],
      handler: async ({ params, principal, reply }) => {
        await s.code.deleteContext(principal, params.id, params.context_id);
        return reply.status(204).send();
      },
    }),
  ];
}
