import websocketPlugin from '@fastify/websocket';
import { ApiError, hasPermission, newId, type Permission, PhaseTrace, RETRYABLE_AFTER_S } from '@scaibunker/core';
import type { TSchema } from '@sinclair/typebox';
import Ajv, { type ValidateFunction } from 'ajv';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { type Principal, systemPrincipal } from '../auth/Principal.js';
import type { StorageAuthenticator } from '../storage/StorageAuthenticator.js';
import { ClosingConnections } from './ClosingConnections.js';
import type { RenderedError, RouteDef } from './Route.js';
import { REQUEST_ID, type RequestContext, requestContext } from './requestContext.js';

/** What the server asks about credentials: the controller's Authenticator, or the proxy's. */
export interface RequestAuthenticator {
  authenticate(header: string | undefined): Promise<Principal>;
  readonly storage: StorageAuthenticator;
}

/** Redeems `?ticket=` on the routes that take one (ShellTickets). */
export interface TicketRedeemer {
  redeem(ticket: string, bunkerId: string): Promise<Principal>;
}

/** Requests answered by host name before any route (previews): `serve` takes the reply over or throws an API error. */
export interface HostRouter {
  matches(req: FastifyRequest): boolean;
  serve(req: FastifyRequest, reply: FastifyReply): Promise<void>;
}

export interface HttpServerOptions {
  /** Answers requests for other hosts than the API's (previews) before routing reaches a route. */
  hostRouter?: HostRouter;
  authenticator: RequestAuthenticator;
  routes: RouteDef[];
  /** Needed when a route declares `ticket`. */
  tickets?: TicketRedeemer;
  /** JSON body cap; uploads have their own cap enforced while streaming. */
  bodyLimitBytes?: number;
  logger?: boolean;
  /** Told about every answered request (metrics, the request log). */
  observe?: (r: RequestRecord) => void;
}

/** One answered request, as the metrics and the request log see it. */
export interface RequestRecord {
  requestId: string;
  method: string;
  /** The route's pattern (`/v1/modules/scaibunker/bunkers/:id`), `preview` for preview hosts, `unmatched` for a 404 without a route. */
  route: string;
  /** The path without its query (which may hold a ticket). */
  path: string;
  status: number;
  durationMs: number;
  /** The caller, once authenticated. */
  tenantId: string | undefined;
  actor: string | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: string;
    renderError?: (err: ApiError, req: FastifyRequest) => RenderedError;
  }
}

function ajvFor(coerce: boolean) {
  // Bodies are validated strictly (no coercion, unknown fields rejected, never stripped);
  // query strings and path params arrive as text, so those coerce.
  const ajv = new Ajv({
    allErrors: false,
    removeAdditional: false,
    useDefaults: true,
    coerceTypes: coerce ? 'array' : false,
    strict: false,
  });
  ajv.addFormat('date-time', true);
  return ajv;
}

/** Compile once per schema object: schemas with `$id` may be reused by several routes. */
function validatorCompiler() {
  const body = ajvFor(false);
  const text = ajvFor(true);
  const cache = new WeakMap<object, ValidateFunction>();
  return ({ schema, httpPart }: { schema: unknown; httpPart?: string }) => {
    const s = schema as TSchema;
    let validate = cache.get(s);
    if (!validate) {
      const { $id: _drop, ...rest } = s as Record<string, unknown>;
      validate = (httpPart === 'body' ? body : text).compile(rest);
      cache.set(s, validate);
    }
    const fn = validate;
    return (data: unknown) => {
      if (fn(data)) return { value: data };
      const e = fn.errors?.[0];
      const where = `${httpPart ?? 'request'}${e?.instancePath ?? ''}`;
      const extra = e?.params && 'additionalProperty' in e.params ? ` '${String(e.params.additionalProperty)}'` : '';
      const err = new ApiError('VALIDATION_FAILED', `${where} ${e?.message ?? 'is invalid'}${extra}`, {
        field: where,
        rule: e?.keyword,
      });
      return { error: err as unknown as Error };
    };
  };
}

export function toApiError(err: unknown, requestId: string): ApiError {
  if (err instanceof ApiError) return err;
  const fe = err as FastifyError & { validation?: unknown };
  if (fe?.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new ApiError('PAYLOAD_TOO_LARGE', 'request body exceeds its cap');
  if (fe?.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || fe?.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError)
    return new ApiError('VALIDATION_FAILED', `malformed JSON body: ${fe.message}`);
  if (fe?.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ApiError('VALIDATION_FAILED', `unsupported content type: ${fe.message}`);
  if (fe?.code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return new ApiError('VALIDATION_FAILED', 'invalid Content-Length');
  if (fe?.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return new ApiError('VALIDATION_FAILED', fe.message);
  return new ApiError('INTERNAL', 'internal error', { request_id: requestId });
}

/** Fastify with our validation, one error shape, and auth enforced per route declaration. */
export function buildHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    logger: opts.logger ? { level: 'info' } : false,
    bodyLimit: opts.bodyLimitBytes ?? 16 * 1024 * 1024,
    keepAliveTimeout: 65_000,
    requestIdHeader: false,
    // A caller's (or load balancer's) `x-request-id` is kept when it is plain; otherwise a new id.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : newId('rq');
    },
  });
  app.setValidatorCompiler(validatorCompiler());
  new ClosingConnections(app);
  // Every answer names its request id, and the work done for it carries the id (calls to workers
  // send it as x-request-id). Entered again before the handler: body parsing may lose it.
  const contextOf = (req: FastifyRequest) => (req as unknown as { requestContext?: RequestContext }).requestContext;
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    const context: RequestContext = { requestId: req.id, trace: PhaseTrace.start('request') };
    context.trace.mark('controller.received');
    (req as unknown as { requestContext: RequestContext }).requestContext = context;
    requestContext.run(context, done);
  });
  app.addHook('preHandler', (req, _reply, done) => {
    const context = contextOf(req) ?? { requestId: req.id, trace: PhaseTrace.off };
    context.trace.mark('controller.parsed');
    requestContext.run(context, done);
  });
  if (PhaseTrace.enabled) {
    // The bench's breakdown: the request's trace, once its answer is written.
    app.addHook('onSend', (req, _reply, payload, done) => {
      contextOf(req)?.trace.mark('controller.answered');
      done(null, payload);
    });
    app.addHook('onResponse', (req, _reply, done) => {
      contextOf(req)?.trace.end();
      done();
    });
  }
  const observe = opts.observe;
  if (observe) {
    app.addHook('onResponse', (req, reply, done) => {
      const principal = (req as unknown as { principal?: Principal }).principal;
      const previewed = (req as unknown as { previewed?: boolean }).previewed;
      try {
        observe({
          requestId: req.id,
          method: req.method,
          route: previewed ? 'preview' : (req.routeOptions.url ?? 'unmatched'),
          path: req.url.split('?')[0] ?? '',
          status: reply.statusCode,
          durationMs: reply.elapsedTime,
          tenantId: principal?.tenantId || undefined,
          actor: principal?.actor,
        });
      } catch {
        // An observer never fails a request.
      }
      done();
    });
  }
  // Preview hosts first: nothing of the API (routes, auth, body parsing) applies to them.
  const hostRouter = opts.hostRouter;
  if (hostRouter) {
    app.addHook('onRequest', async (req, reply) => {
      if (hostRouter.matches(req)) {
        (req as unknown as { previewed?: boolean }).previewed = true;
        await hostRouter.serve(req, reply);
      }
    });
  }
  app.addHook('onRoute', (r) => {
    if (!r.config?.auth) throw new Error(`route ${r.method} ${r.url} declares no auth`);
  });
  app.setErrorHandler((err, req, reply) => {
    const apiErr = toApiError(err, req.id);
    if (apiErr.code === 'INTERNAL') {
      // Without Fastify's logger a 500 would leave no trace of its cause: say it on stderr.
      if (opts.logger) req.log.error({ err }, 'unhandled error');
      else
        process.stderr.write(
          `[http] ${req.method} ${req.url.split('?')[0]} → 500 (request ${req.id}): ${(err as Error)?.stack ?? String(err)}\n`,
        );
    }
    if (reply.sent || reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    // A refused WebSocket upgrade: the socket is closed after this answer, so say so (no client reuses it).
    if ((req as { ws?: boolean }).ws) reply.header('connection', 'close');
    const retryAfter = RETRYABLE_AFTER_S[apiErr.code];
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    const render = req.routeOptions?.config?.renderError;
    if (render) {
      const r = render(apiErr, req);
      for (const [k, v] of Object.entries(r.headers ?? {})) reply.header(k, v);
      void reply.status(r.status).send(r.body);
      return;
    }
    void reply.status(apiErr.status).send(apiErr.toBody());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new ApiError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`).toBody());
  });

  const authenticate = async (def: RouteDef, req: FastifyRequest): Promise<void> => {
    const ticket = (req.query as { ticket?: unknown } | undefined)?.ticket;
    const own = def.authenticate ? await def.authenticate(req) : undefined;
    const principal = own
      ? permitted(own, def)
      : def.ticket && typeof ticket === 'string' && !req.headers.authorization
        ? await redeemTicket(opts.tickets, def, ticket, (req.params as { id?: string }).id ?? '')
        : await authorize(opts.authenticator, def, req.headers.authorization);
    (req as unknown as { principal: Principal }).principal = principal;
    contextOf(req)?.trace.mark('controller.authenticated');
  };
  const principalOf = (req: FastifyRequest) => (req as unknown as { principal: Principal }).principal;
  const schemaOf = (def: RouteDef) => ({
    ...(def.body ? { body: def.body } : {}),
    ...(def.querystring ? { querystring: def.querystring } : {}),
    ...(def.params ? { params: def.params } : {}),
  });

  const addRoute = (target: FastifyInstance, def: RouteDef): void => {
    const raw = def.raw;
    if (raw) {
      target.route({
        method: def.method,
        url: def.url,
        config: { auth: def.auth, ...(def.renderError ? { renderError: def.renderError } : {}) },
        onRequest: [
          async (req) => authenticate(def, req),
          async (req, reply) => raw({ params: (req.params ?? {}) as Record<string, string>, principal: principalOf(req), req, reply }),
        ],
        handler: async () => {
          throw new ApiError('INTERNAL', `raw route ${def.url} did not answer`);
        },
      });
      return;
    }
    target.route({
      method: def.method,
      url: def.url,
      config: { auth: def.auth, ...(def.renderError ? { renderError: def.renderError } : {}) },
      schema: schemaOf(def),
      // Authenticate before the body is parsed: an unauthenticated upload is refused unread.
      onRequest: async (req) => authenticate(def, req),
      ...(def.bodyOptional
        ? {
            preValidation: async (req: FastifyRequest) => {
              if (req.body === undefined) req.body = {};
            },
          }
        : {}),
      handler: async (req, reply) => {
        const result = await def.handler({
          body: req.body as never,
          query: (req.query ?? {}) as never,
          params: (req.params ?? {}) as never,
          principal: principalOf(req),
          req,
          reply,
        });
        if (reply.sent) return reply;
        // A handler may answer another success status it declares (`POST …/exec` with `background`: 202).
        if (reply.statusCode === 200) reply.status(def.response.status);
        return result;
      },
    });
  };
  const plain = opts.routes.filter((d) => !d.response.websocket);
  for (const def of plain.filter((d) => !d.rawBody)) addRoute(app, def);
  // Uploads stream straight through, whatever their content type says (curl --data-binary sends
  // form-urlencoded, editors text/plain, JSON files application/json): on these routes every
  // body is the raw request stream, never parsed.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    for (const def of plain.filter((d) => d.rawBody)) addRoute(scope, def);
  });

  // WebSocket routes: auth and validation run on the upgrade request, so a refused one is an
  // ordinary HTTP error and never a socket.
  const sockets = opts.routes.filter((d) => d.response.websocket);
  if (sockets.length > 0) {
    app.register(websocketPlugin, { options: { maxPayload: 1024 * 1024 } });
    app.register(async (scope) => {
      for (const def of sockets) {
        const serve = def.socket;
        if (!serve) throw new Error(`websocket route ${def.url} has no socket handler`);
        scope.route({
          method: 'GET',
          url: def.url,
          config: { auth: def.auth },
          schema: schemaOf(def),
          websocket: true,
          onRequest: async (req) => authenticate(def, req),
          preHandler: async (req) => {
            await def.beforeUpgrade?.({
              query: (req.query ?? {}) as never,
              params: (req.params ?? {}) as never,
              principal: principalOf(req),
              req,
            });
          },
          handler: (socket: WebSocket, req: FastifyRequest) =>
            serve({
              query: (req.query ?? {}) as never,
              params: (req.params ?? {}) as never,
              principal: principalOf(req),
              req,
              socket,
            }),
        });
      }
    });
  }
  return app;
}

async function redeemTicket(tickets: TicketRedeemer | undefined, def: RouteDef, ticket: string, bunkerId: string): Promise<Principal> {
  if (!tickets) throw new ApiError('UNAUTHENTICATED', 'this server takes no tickets');
  const principal = await tickets.redeem(ticket, bunkerId);
  if (!hasPermission(principal.permissions, def.auth as Permission)) {
    throw new ApiError('PERMISSION_DENIED', `this route needs ${def.auth}`, { needed: def.auth });
  }
  return principal;
}

async function authorize(auth: RequestAuthenticator, def: RouteDef, header: string | undefined): Promise<Principal> {
  if (def.auth === 'public') return systemPrincipal('anonymous');
  if (def.auth === 'storage') return storagePrincipal(auth, header);
  return permitted(await auth.authenticate(header), def);
}

/** A tenant caller holding the route's permission (workers and storage grants never reach tenant routes). */
function permitted(principal: Principal, def: RouteDef): Principal {
  if (def.auth === 'worker') {
    if (principal.kind !== 'worker') throw new ApiError('PERMISSION_DENIED', 'this route is for workers only');
    return principal;
  }
  if (principal.kind === 'worker' || principal.kind === 'storage') {
    throw new ApiError('PERMISSION_DENIED', 'the worker token cannot call tenant routes');
  }
  if (!hasPermission(principal.permissions, def.auth as Permission)) {
    throw new ApiError('PERMISSION_DENIED', `this route needs ${def.auth}`, { needed: def.auth });
  }
  return principal;
}

/**
 * Storage routes take the worker token or a capability token. Other credentials are still
 * authenticated (an unknown one is 401), then refused (403): API keys never reach storage.
 */
async function storagePrincipal(auth: RequestAuthenticator, header: string | undefined): Promise<Principal> {
  const grant = auth.storage.grantFor(header);
  if (grant) return { ...systemPrincipal(grant.actor, 'storage'), storage: grant };
  await auth.authenticate(header);
  throw new ApiError('PERMISSION_DENIED', 'storage routes take the worker token or a capability token');
}
