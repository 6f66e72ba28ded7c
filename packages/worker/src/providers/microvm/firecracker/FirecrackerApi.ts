/**
 * A client of Firecracker's REST API on its Unix socket (`--api-sock`), as published in
 * src/firecracker/swagger/firecracker.yaml (a copy is packages/worker/test/fixtures/). Every
 * call is one HTTP/1.1 request with a JSON body; Firecracker answers 204 (no body) or 200
 * (JSON) on success, and 4xx/5xx with `{ "fault_message": "…" }`, which becomes a
 * FirecrackerApiError naming the request.
 */
import { request } from 'node:http';
import { FirecrackerApiError } from './FirecrackerApiError.js';

export type ApiMethod = 'GET' | 'PUT' | 'PATCH';

export class FirecrackerApi {
  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /**
   * Resolves once the API answers (GET /version), retrying while its socket does not exist or
   * is bound but not listening yet — Firecracker binds, then listens, and no event tells the
   * second step — until `timeoutMs`.
   */
  async whenListening(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let delay = 5;
    for (;;) {
      try {
        await this.get('/version');
        return;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() + delay > deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  put(path: string, body: unknown): Promise<void> {
    return this.call('PUT', path, body).then(() => undefined);
  }

  patch(path: string, body: unknown): Promise<void> {
    return this.call('PATCH', path, body).then(() => undefined);
  }

  get<T>(path: string): Promise<T> {
    return this.call('GET', path) as Promise<T>;
  }

  /** One request; resolves with the parsed JSON body (undefined for 204). */
  call(method: ApiMethod, path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.socketPath,
          agent: false, // one connection per request: nothing pooled outlives the call
          method,
          path,
          headers: {
            Accept: 'application/json',
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          },
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300) return resolve(json);
            const fault = (json as { fault_message?: unknown } | undefined)?.fault_message;
            reject(new FirecrackerApiError(method, path, status, typeof fault === 'string' ? fault : text || `HTTP ${status}`));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`Firecracker API ${method} ${path}: no answer within ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
