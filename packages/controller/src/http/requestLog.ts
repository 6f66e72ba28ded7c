import type { ControllerMetrics } from '../metrics/ControllerMetrics.js';
import type { RequestRecord } from './HttpServer.js';

/** `--log-format`: one JSON object per line, or a short text line. */
export type RequestLogFormat = 'json' | 'text';

/**
 * What the HTTP server tells about each answered request: the request metrics always, and with a
 * format one log line on stderr. The line never holds the query string (a `?ticket=` is a secret)
 * or any header.
 */
export function requestObserver(
  metrics: ControllerMetrics,
  format: RequestLogFormat | undefined,
  write: (line: string) => void = (line) => process.stderr.write(line),
): (r: RequestRecord) => void {
  return (r) => {
    const status = String(r.status);
    metrics.httpRequests.inc({ route: r.route, method: r.method, status });
    metrics.httpDuration.observe({ route: r.route, method: r.method }, r.durationMs / 1000);
    if (format === 'json') write(`${JSON.stringify(requestLogEntry(r))}\n`);
    else if (format === 'text')
      write(
        `[http] ${r.method} ${r.path} ${status} ${r.durationMs.toFixed(1)}ms route=${r.route} tenant=${r.tenantId ?? '-'} actor=${r.actor ?? '-'} request=${r.requestId}\n`,
      );
  };
}

/** The JSON line's fields (docs/API.md, "Request logs"). */
export function requestLogEntry(r: RequestRecord): Record<string, unknown> {
  return {
    time: new Date().toISOString(),
    level: r.status >= 500 ? 'error' : r.status >= 400 ? 'warn' : 'info',
    msg: 'request',
    request_id: r.requestId,
    method: r.method,
    route: r.route,
    path: r.path,
    status: r.status,
    duration_ms: Math.round(r.durationMs * 1000) / 1000,
    tenant: r.tenantId ?? null,
    actor: r.actor ?? null,
  };
}
