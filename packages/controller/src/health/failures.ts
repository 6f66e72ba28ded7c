/**
 * Telling an outage or a full disk apart from a bug, for the errors of the database, Redis and
 * S3 clients and of the local filesystem. Outages become 503s with Retry-After, full disks
 * 507s; anything else stays what it was (a 500 names a bug).
 */

import { ApiError } from '@scaibunker/core';

/** The store answered STORE_UNAVAILABLE: callers that can serve what they had (caches, the journal) do. */
export function isStoreUnavailable(err: unknown): boolean {
  return err instanceof ApiError && err.code === 'STORE_UNAVAILABLE';
}

/** errno codes of a peer that is gone, refusing, or unreachable (a socket file that vanished included). */
const NETWORK_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENOENT',
  'ERR_SOCKET_CLOSED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** errno codes and SQLite/PostgreSQL/MySQL codes meaning "no room left". */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100', 'ER_RECORD_FILE_FULL', 'ER_DISK_FULL']);

/**
 * mysql2 (MySQL/MariaDB): the connection lost or closed, the server shutting down or killing
 * connections (a restart), too many connections. Not access denied: that is a configuration.
 */
const MYSQL_OUTAGE_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_GONE_ERROR',
  'ER_SERVER_LOST',
]);

interface ErrorLike {
  code?: unknown;
  errno?: unknown;
  name?: unknown;
  message?: unknown;
  cause?: unknown;
  errors?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** The error, its causes and the members of an AggregateError (a failed connect tries each address). */
function* chain(err: unknown): Generator<ErrorLike> {
  const seen = new Set<unknown>();
  const queue = [err];
  while (queue.length > 0) {
    const e = queue.shift();
    if (!e || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    yield e as ErrorLike;
    queue.push((e as ErrorLike).cause);
    if (Array.isArray((e as ErrorLike).errors)) queue.push(...((e as ErrorLike).errors as unknown[]));
  }
}

export function isOutOfSpace(err: unknown): boolean {
  for (const e of chain(err)) if (typeof e.code === 'string' && NO_SPACE_CODES.has(e.code)) return true;
  return false;
}

/**
 * PostgreSQL: a connection that could not be made or was lost (SQLSTATE class 08, the server
 * shutting down or starting, too many connections), node-postgres' own connection failures;
 * MySQL/MariaDB: mysql2's alike (`MYSQL_OUTAGE_CODES`, its pool closed or connection gone).
 */
export function isDatabaseOutage(err: unknown): boolean {
  for (const e of chain(err)) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (NETWORK_ERRNOS.has(code)) return true;
    if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300'].includes(code)) return true;
    if (MYSQL_OUTAGE_CODES.has(code)) return true;
    const msg = typeof e.message === 'string' ? e.message : '';
    if (
      /Connection terminated|connection error and is not queryable|timeout exceeded when trying to connect|Client was closed and is not queryable|Cannot use a pool after calling end|Pool is closed|Can't add new command when connection is in closed state|Connection lost: The server closed the connection/i.test(
        msg,
      )
    )
      return true;
  }
  return false;
}

/** ioredis: not connected (offline queue off), the connection closed under a command, or retries exhausted. */
export function isRedisOutage(err: unknown): boolean {
  for (const e of chain(err)) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (NETWORK_ERRNOS.has(code)) return true;
    const msg = typeof e.message === 'string' ? e.message : '';
    if (/Connection is closed|Stream isn't writeable|max retries per request|LOADING|Command timed out/i.test(msg)) return true;
  }
  return false;
}

/** The S3 client: no connection, a timeout, or a 5xx (the service itself failing); 4xx are answers. */
export function isBlobStoreOutage(err: unknown): boolean {
  for (const e of chain(err)) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (NETWORK_ERRNOS.has(code) && code !== 'ENOENT') return true;
    if (e.name === 'TimeoutError' || e.name === 'RequestTimeout' || e.name === 'NetworkingError') return true;
    const status = e.$metadata?.httpStatusCode;
    if (typeof status === 'number' && status >= 500) return true;
  }
  return false;
}
