import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError } from '@scaibunker/core';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import { type RouteDef, route } from '../Route.js';

/**
 * The web console's built files (scripts/build-console.mjs writes them): packages/console/dist,
 * at the same depth from src/ and from dist/.
 */
export const CONSOLE_DIR = fileURLToPath(new URL('../../../../console/dist/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

/**
 * The console's own scripts and styles only; the API on this origin (fetch, and the shell
 * WebSocket on ws:/wss: of the same host). xterm.js sets inline styles, hence `'unsafe-inline'`
 * for styles (never for scripts). Never framed.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>ScaiBunker console</title>
<p>The web console has not been built on this host: run <code>bash scripts/setup.sh</code>
(or <code>node scripts/build-console.mjs</code>) and reload.</p>\n`;

/** A file of the console, or undefined: never outside `dir`, never a directory. */
async function assetOf(dir: string, path: string): Promise<{ body: Buffer; type: string } | undefined> {
  if (path.includes('\0')) return undefined;
  const rel = normalize(`/${path}`).slice(1);
  const file = join(dir, rel);
  if (!file.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`)) return undefined;
  try {
    if (!(await stat(file)).isFile()) return undefined;
    return { body: await readFile(file), type: TYPES[extname(file)] ?? 'application/octet-stream' };
  } catch {
    return undefined;
  }
}

async function serve(dir: string, path: string, reply: FastifyReply): Promise<FastifyReply> {
  reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    // Small files, rebuilt in place by set-up: always revalidate rather than serve a stale build.
    .header('cache-control', 'no-cache');
  let asset = path ? await assetOf(dir, path) : undefined;
  if (!asset) {
    // A path with an extension names a file that is not there; anything else is a page of the app.
    if (extname(path)) throw new ApiError('NOT_FOUND', `no console file ${path}`);
    asset = (await assetOf(dir, 'index.html')) ?? { body: Buffer.from(NOT_BUILT), type: TYPES['.html'] as string };
  }
  return reply.type(asset.type).send(asset.body);
}

/**
 * The web console (packages/console): static files, public — the app signs in with an API key
 * the browser keeps and sends as `Authorization: Bearer`; what it shows is what the API lets
 * that key see.
 */
export function consoleRoutes(dir = CONSOLE_DIR): RouteDef[] {
  return [
    route({
      method: 'GET',
      url: '/console',
      auth: 'public',
      operationId: 'consoleIndex',
      summary: 'The web console (its page; it loads its files relative to /console/)',
      tags: ['console'],
      response: { status: 200, binary: true, mediaType: 'text/html' },
      errors: [],
      handler: async ({ reply }) => serve(dir, '', reply),
    }),
    route({
      method: 'GET',
      url: '/console/*',
      auth: 'public',
      operationId: 'consoleFile',
      summary: "A file of the web console; any path without an extension answers the console's page",
      tags: ['console'],
      params: Type.Object({ '*': Type.String() }),
      wildcard: 'path',
      response: { status: 200, binary: true },
      errors: ['NOT_FOUND'],
      handler: async ({ params, reply }) => serve(dir, params['*'], reply),
    }),
  ];
}
