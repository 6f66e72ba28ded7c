import { Readable } from 'node:stream';
import { ApiError, type ErrorCode, type RouteAuth } from '@scaibunker/core';
import type { Static, TSchema } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Principal } from '../auth/Principal.js';

type StaticOr<T, D> = T extends TSchema ? Static<T> : D;

/**
 * One route: its auth declaration, the schemas that validate it (and generate OpenAPI), and a
 * thin handler that calls a service. `auth` is required by the type and by test/routes.test.ts.
 */
export interface RouteDef<B extends TSchema | undefined = any, Q extends TSchema | undefined = any, P extends TSchema | undefined = any> {
  method: 'HEAD' | 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  auth: RouteAuth;
  operationId: string;
  summary: string;
  tags: string[];
  body?: B;
  /** The JSON body may be left out entirely (it is then validated as `{}`). */
  bodyOptional?: boolean;
  /** Raw streamed request body (file uploads) instead of JSON. */
  rawBody?: boolean;
  querystring?: Q;
  params?: P;
  /** The OpenAPI name of a trailing `/*` (default `key`, the storage routes' object key). */
  wildcard?: string;
  /**
   * Success status and schema; `binary` answers application/octet-stream, `sse` text/event-stream,
   * `websocket` (status 101) upgrades: then `socket` serves the connection.
   */
  response: {
    status: number;
    schema?: TSchema;
    binary?: boolean;
    /** With `binary`: the media type the OpenAPI document names (default application/octet-stream). */
    mediaType?: string;
    /** A text answer of this content type (`/metrics`) instead of JSON. */
    text?: string;
    sse?: string[];
    websocket?: boolean;
    /** Other success answers the handler may choose (`reply.status(…)`). */
    also?: Array<{ status: number; schema: TSchema; description: string }>;
  };
  /** Also accepts a single-use `?ticket=` (POST …/shell-tickets) instead of the Authorization header: browsers' WebSockets. */
  ticket?: boolean;
  /** WebSocket routes: what must hold before the upgrade (a missing bunker or exec is then a plain HTTP 404/409). */
  beforeUpgrade?(ctx: Omit<SocketContext<StaticOr<Q, Record<string, never>>, StaticOr<P, Record<string, never>>>, 'socket'>): Promise<void>;
  /** WebSocket routes: runs once the connection is upgraded (auth and validation happened before). */
  socket?(ctx: SocketContext<StaticOr<Q, Record<string, never>>, StaticOr<P, Record<string, never>>>): Promise<void>;
  /**
   * Raw routes (the port proxy): runs right after authentication, before any body is read or
   * params are validated, with the request stream untouched. It takes the reply over
   * (`reply.hijack()`) and answers on `reply.raw`; what it throws before that is an ordinary
   * API error. `handler` then never runs.
   */
  raw?(ctx: RawContext): Promise<void>;
  /**
   * The route's own credentials (E2B's `X-API-KEY`, envd access tokens), tried before the
   * Authorization header: a principal, or undefined to fall back to the header. The route's
   * permission is checked on it as on any other.
   */
  authenticate?(req: FastifyRequest): Promise<Principal | undefined>;
  /**
   * How this route renders an error instead of `{error:{code,message,details}}` (E2B's
   * `{code,message}`, Connect's error envelope): status, headers and body.
   */
  renderError?(err: ApiError, req: FastifyRequest): RenderedError;
  /** Error codes this route can answer, besides the auth and validation ones every route has. */
  errors: ErrorCode[];
  handler(
    ctx: RouteContext<StaticOr<B, unknown>, StaticOr<Q, Record<string, never>>, StaticOr<P, Record<string, never>>>,
  ): Promise<unknown>;
}

export interface RenderedError {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

export interface RawContext {
  /** Path params as text, unvalidated. */
  params: Record<string, string>;
  principal: Principal;
  req: FastifyRequest;
  reply: FastifyReply;
}

export interface SocketContext<Q, P> {
  query: Q;
  params: P;
  principal: Principal;
  req: FastifyRequest;
  socket: WebSocket;
}

/** The HTTP handler of a WebSocket route: a plain GET without the upgrade. */
export async function upgradeRequired(): Promise<never> {
  throw new ApiError('VALIDATION_FAILED', 'this route needs a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)');
}

export interface RouteContext<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  principal: Principal;
  req: FastifyRequest;
  reply: FastifyReply;
}

export function route<
  B extends TSchema | undefined = undefined,
  Q extends TSchema | undefined = undefined,
  P extends TSchema | undefined = undefined,
>(def: RouteDef<B, Q, P>): RouteDef<B, Q, P> {
  return def;
}

/**
 * The upload of a `rawBody` route: the request stream, whatever its content type — as the
 * catch-all parser handed it over, or untouched when the request named no content type.
 */
export function rawUpload(req: FastifyRequest): Readable {
  return req.body instanceof Readable ? req.body : req.raw;
}
