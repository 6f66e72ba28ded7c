import { ERROR_CODES, type ErrorCode, schemas } from '@scaibunker/core';
import type { TSchema } from '@sinclair/typebox';
import type { RouteDef } from './Route.js';

/** Codes every authenticated route may answer, added to each operation. */
export const COMMON_ERRORS: ErrorCode[] = ['VALIDATION_FAILED', 'UNAUTHENTICATED', 'PERMISSION_DENIED', 'INTERNAL', 'STORE_UNAVAILABLE'];

/** Replace nested schemas that carry an `$id` with a `$ref`, collecting them as components. */
function componentize(schema: TSchema, components: Record<string, unknown>): unknown {
  const plain = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (!node || typeof node !== 'object') return node;
    const obj = node as Record<string, unknown>;
    const id = obj.$id;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) if (k !== '$id') out[k] = walk(v);
    if (typeof id === 'string') {
      components[id] = out;
      return { $ref: `#/components/schemas/${id}` };
    }
    return out;
  };
  return walk(plain);
}

function parametersOf(
  schema: TSchema | undefined,
  where: 'query' | 'path',
  components: Record<string, unknown>,
  wildcard = 'key',
): unknown[] {
  if (!schema) return [];
  const props = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  const required = new Set((schema as { required?: string[] }).required ?? []);
  return Object.entries(props).map(([name, s]) => {
    const isArray = (s as { type?: string }).type === 'array';
    return {
      name: name === '*' ? wildcard : name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(isArray ? { style: 'form', explode: true } : {}),
      schema: componentize(s, components),
    };
  });
}

export function buildOpenApi(routes: RouteDef[], version: string): Record<string, unknown> {
  const components: Record<string, unknown> = {};
  componentize(schemas.ErrorBody, components);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    // A trailing wildcard (the storage routes) is the object key, slashes and all.
    const path = r.url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, '{$1}').replace(/\/\*$/, `/{${r.wildcard ?? 'key'}}`);
    const responses: Record<string, unknown> = {};
    const ok = r.response;
    responses[String(ok.status)] = {
      description: 'Success',
      ...(ok.binary
        ? { content: { [ok.mediaType ?? 'application/octet-stream']: { schema: { type: 'string', format: 'binary' } } } }
        : ok.text
          ? { content: { [ok.text.split(';')[0] as string]: { schema: { type: 'string' } } } }
          : ok.schema
            ? { content: { 'application/json': { schema: componentize(ok.schema, components) } } }
            : {}),
    };
    if (ok.websocket) {
      responses[String(ok.status)] = {
        description:
          'Switching Protocols: a WebSocket. Binary frames carry stdin/terminal input in and output out; text frames carry JSON control.',
      };
    }
    for (const alt of ok.also ?? []) {
      responses[String(alt.status)] = {
        description: alt.description,
        content: { 'application/json': { schema: componentize(alt.schema, components) } },
      };
    }
    if (ok.sse) {
      const okResponse = responses[String(ok.status)] as { content?: Record<string, unknown> };
      okResponse.content = {
        ...(okResponse.content ?? {}),
        'text/event-stream': { schema: { type: 'string', description: `events: ${ok.sse.join(', ')}` } },
      };
    }
    const codes = new Set<ErrorCode>([...(r.auth === 'public' ? ['INTERNAL' as const] : COMMON_ERRORS), ...r.errors]);
    if (r.body || r.querystring || r.params) codes.add('VALIDATION_FAILED');
    const byStatus = new Map<number, ErrorCode[]>();
    for (const code of codes) {
      const status = ERROR_CODES[code].status;
      byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    }
    for (const [status, list] of byStatus) {
      responses[String(status)] = {
        description: list.join(' | '),
        'x-error-codes': list,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    const op: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      tags: r.tags,
      'x-scaibunker-auth': r.auth,
      security: r.auth === 'public' ? [] : [{ bearer: [] }],
      parameters: [...parametersOf(r.params, 'path', components, r.wildcard), ...parametersOf(r.querystring, 'query', components)],
      responses,
    };
    if (r.body)
      op.requestBody = { required: !r.bodyOptional, content: { 'application/json': { schema: componentize(r.body, components) } } };
    if (r.rawBody)
      op.requestBody = { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } };
    paths[path] = { ...(paths[path] ?? {}), [r.method.toLowerCase()]: op };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'ScaiBunker API', version },
    servers: [{ url: '/' }],
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key (sbk_…) or JWT' } },
    },
  };
}
