import type { ErrorCode, RouteAuth } from '@scaibunker/core';
import type { Static, TSchema } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
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
  /** Raw streamed request body (file uploads) instead of JSON. */
  rawBody?: boolean;
  querystring?: Q;
  params?: P;
  /** Success status and schema; `binary` answers application/octet-stream, `sse` text/event-stream. */
  response: { status: number; schema?: TSchema; binary?: boolean; sse?: string[] };
  /** Error codes this route can answer, besides the auth and validation ones every route has. */
  errors: ErrorCode[];
  handler(
    ctx: RouteContext<StaticOr<B, unknown>, StaticOr<Q, Record<string, never>>, StaticOr<P, Record<string, never>>>,
  ): Promise<unknown>;
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
