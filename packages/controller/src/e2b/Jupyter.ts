import { ApiError, type schemas } from '@scaibunker/core';
import type { CodeContext, CodeService } from '../code/CodeService.js';
import { readUnaryBody } from './connect.js';
import type { EnvdCall } from './Envd.js';

/** The port `@e2b/code-interpreter` sends its calls to (`E2b-Sandbox-Port`). */
export const CODE_INTERPRETER_PORT = '49999';

type Json = Record<string, unknown>;

/**
 * `@e2b/code-interpreter`'s calls (its in-sandbox Jupyter server's `/execute` and `/contexts`),
 * served by our own code contexts (CodeService): the same kernels `POST /bunkers/{id}/code`
 * runs, so nothing here executes code itself. `/execute` answers NDJSON lines the SDK parses:
 * `stdout`/`stderr` `{text}`, `result` (`is_main_result`), `error` `{name, value, traceback}`,
 * and `number_of_executions` last.
 */
export class Jupyter {
  constructor(private readonly code: CodeService) {}

  async execute(call: EnvdCall): Promise<void> {
    const body = asObject(await readUnaryBody(call.req));
    const run: schemas.RunCodeBody = { code: typeof body.code === 'string' ? body.code : '' };
    if (typeof body.code !== 'string') throw new ApiError('VALIDATION_FAILED', 'code must be a string', { field: 'body/code' });
    checkLanguage(body.language);
    if (typeof body.context_id === 'string') run.context_id = body.context_id;
    const env = stringMap(body.env_vars);
    if (env) run.env = env;
    // Resolved before the answer starts: a missing context is a plain 404.
    const ctx = await this.code.contextFor(call.principal, call.bunkerId, run.context_id);
    const abort = new AbortController();
    call.res.on('close', () => abort.abort());
    call.res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const line = (obj: Json) =>
      new Promise<void>((resolve) => (call.res.write(`${JSON.stringify(obj)}\n`) ? resolve() : call.res.once('drain', resolve)));
    try {
      await this.code.run(
        call.principal,
        call.bunkerId,
        ctx,
        run,
        async (e) => {
          if (e.type === 'end_of_execution') await line({ type: 'number_of_executions', execution_count: e.execution_count ?? 0 });
          else if (e.type === 'result') await line({ ...e, is_main_result: true });
          else await line(e as Json);
        },
        abort.signal,
      );
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError('INTERNAL', 'code run failed');
      await line({ type: 'error', name: e.code, value: e.message, traceback: '' });
    }
    call.res.end();
  }

  async createContext(call: EnvdCall): Promise<void> {
    const body = asObject(await readUnaryBody(call.req));
    checkLanguage(body.language);
    const ctx = await this.code.createContext(call.principal, call.bunkerId, {
      ...(typeof body.cwd === 'string' && body.cwd ? { cwd: body.cwd } : {}),
    });
    json(call, 200, toE2b(ctx, typeof body.cwd === 'string' ? body.cwd : null));
  }

  async listContexts(call: EnvdCall): Promise<void> {
    json(
      call,
      200,
      (await this.code.listContexts(call.principal, call.bunkerId)).map((c) => toE2b(c, c.cwd)),
    );
  }

  async removeContext(call: EnvdCall, contextId: string): Promise<void> {
    await this.code.deleteContext(call.principal, call.bunkerId, contextId);
    call.res.writeHead(204).end();
  }

  async restartContext(call: EnvdCall, contextId: string): Promise<void> {
    await this.code.restartContext(call.principal, call.bunkerId, contextId);
    call.res.writeHead(204).end();
  }
}

function toE2b(c: CodeContext, cwd: string | null): Json {
  return { id: c.id, language: c.language, cwd: cwd ?? '/root' };
}

function json(call: EnvdCall, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  call.res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  call.res.end(text);
}

function checkLanguage(language: unknown): void {
  if (language === undefined || language === null || language === 'python') return;
  throw new ApiError('VALIDATION_FAILED', `language ${String(language)} is not offered: code contexts run Python`, {
    field: 'body/language',
  });
}

function asObject(v: unknown): Json {
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  throw new ApiError('VALIDATION_FAILED', 'the body must be a JSON object', { field: 'body' });
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v))
    throw new ApiError('VALIDATION_FAILED', 'env_vars must be an object', { field: 'body/env_vars' });
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) || typeof val !== 'string')
      throw new ApiError('VALIDATION_FAILED', `env_vars.${k} must be a string with a valid name`, { field: 'body/env_vars' });
    out[k] = val;
  }
  return out;
}
