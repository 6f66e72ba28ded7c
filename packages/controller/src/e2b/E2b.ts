import type { ServerResponse } from 'node:http';
import { ApiError } from '@scaibunker/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Authenticator } from '../auth/Authenticator.js';
import type { Principal } from '../auth/Principal.js';
import type { BunkerService } from '../bunkers/BunkerService.js';
import type { ExecService } from '../bunkers/ExecService.js';
import type { FileService } from '../bunkers/FileService.js';
import type { ProcessService } from '../bunkers/ProcessService.js';
import type { CodeService } from '../code/CodeService.js';
import type { RenderedError } from '../http/Route.js';
import type { ImageService } from '../images/ImageService.js';
import type { Passivation } from '../snapshots/Passivation.js';
import type { Store } from '../store/Store.js';
import { endStream, unaryErrorBody } from './connect.js';
import { E2bSandboxes } from './E2bSandboxes.js';
import { Envd, type EnvdCall } from './Envd.js';
import { EnvdTokens } from './EnvdTokens.js';
import { Jupyter } from './Jupyter.js';

export interface E2bDeps {
  store: Store;
  authenticator: Pick<Authenticator, 'authenticate' | 'principalForKeyHash'>;
  workerToken: string | undefined;
  bunkers: BunkerService;
  processes: ProcessService;
  files: FileService;
  exec: ExecService;
  passivation: Passivation;
  images: ImageService;
  code: CodeService;
  /** `--preview-domain`: answered as each sandbox's `domain`, so the SDK's `getHost(port)` names a preview host. */
  previewDomain: string | null;
}

/**
 * The E2B compatibility layer (docs/E2B.md): the E2B SDK's control plane (`X-API-KEY`) and envd
 * (told apart by `E2b-Sandbox-Id`, authenticated by the `X-Access-Token` a create or connect
 * issued), both on the API's port, both mapped onto ScaiBunker's services.
 */
export class E2b {
  readonly sandboxes: E2bSandboxes;
  readonly envd: Envd;
  readonly tokens: EnvdTokens;
  /** `@e2b/code-interpreter`'s `/execute` and `/contexts`, on our code contexts. */
  readonly jupyter: Jupyter;

  constructor(private readonly deps: E2bDeps) {
    this.jupyter = new Jupyter(deps.code);
    this.tokens = new EnvdTokens(deps.workerToken, deps.authenticator);
    this.sandboxes = new E2bSandboxes(deps.store, deps.bunkers, deps.passivation, deps.images, this.tokens, deps.previewDomain);
    this.envd = new Envd(deps.bunkers, deps.processes, deps.files, deps.exec);
  }

  close(): void {
    this.envd.close();
  }

  /** The control plane's credential: `X-API-KEY` (any ScaiBunker credential), else the Authorization header. */
  async controlPlaneCaller(req: FastifyRequest): Promise<Principal | undefined> {
    const key = header(req, 'x-api-key');
    return key ? this.deps.authenticator.authenticate(`Bearer ${key}`) : undefined;
  }

  /** The raw credential of a control-plane call (an envd token minted for it re-checks that key). */
  credentialOf(req: FastifyRequest): string | undefined {
    return header(req, 'x-api-key') ?? /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
  }

  /**
   * envd's credential: the sandbox's access token (`X-Access-Token` + `E2b-Sandbox-Id`; the code
   * interpreter's context calls send it as `E2B-Traffic-Access-Token`), or `X-API-KEY`.
   */
  async envdCaller(req: FastifyRequest): Promise<Principal | undefined> {
    const token = header(req, 'x-access-token') ?? header(req, 'e2b-traffic-access-token');
    if (token) {
      const sandbox = header(req, 'e2b-sandbox-id');
      if (!sandbox) throw new ApiError('UNAUTHENTICATED', 'X-Access-Token needs the E2b-Sandbox-Id header');
      return this.tokens.verify(token, sandbox);
    }
    return this.controlPlaneCaller(req);
  }

  /** The envd call a request makes: its sandbox (`E2b-Sandbox-Id`) and user (`Authorization: Basic`). */
  envdCall(principal: Principal, req: FastifyRequest, res: ServerResponse, servedPort = ENVD_PORT): EnvdCall {
    const bunkerId = header(req, 'e2b-sandbox-id');
    if (!bunkerId) {
      throw new ApiError('VALIDATION_FAILED', 'envd calls carry the E2b-Sandbox-Id header (set E2B_SANDBOX_URL to this server)', {
        field: 'header/e2b-sandbox-id',
      });
    }
    const port = header(req, 'e2b-sandbox-port');
    if (port && port !== servedPort) {
      throw new ApiError(
        'VALIDATION_FAILED',
        `this path is served for port ${servedPort} (${servedPort === ENVD_PORT ? 'envd' : 'the code interpreter'}), not port ${port}: reach other ports through the API`,
        { field: 'header/e2b-sandbox-port' },
      );
    }
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const user = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':')[0] || 'root' : 'root';
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(user))
      throw new ApiError('VALIDATION_FAILED', `invalid user ${user}`, { field: 'header/authorization' });
    return { principal, bunkerId, user, req: req.raw, res };
  }

  /** Serves an envd (or code interpreter) HTTP route on the taken-over reply; its errors in E2B's shape. */
  async serveHttp(
    principal: Principal,
    req: FastifyRequest,
    reply: FastifyReply,
    fn: (call: EnvdCall) => Promise<void>,
    servedPort = ENVD_PORT,
  ): Promise<void> {
    const call = this.envdCall(principal, req, reply.raw, servedPort);
    reply.hijack();
    try {
      await fn(call);
    } catch (err) {
      if (reply.raw.headersSent) {
        reply.raw.destroy();
        return;
      }
      if (!(err instanceof ApiError)) console.error(`[e2b] ${req.method} ${req.url}: ${(err as Error)?.stack ?? err}`);
      const e = renderE2bError(err instanceof ApiError ? err : new ApiError('INTERNAL', 'internal error'));
      const text = JSON.stringify(e.body);
      reply.raw.writeHead(e.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
      reply.raw.end(text);
    }
  }

  /** Serves a Connect call on the taken-over reply (the dispatcher answers every error itself). */
  async serveRpc(principal: Principal, req: FastifyRequest, reply: FastifyReply, method: string): Promise<void> {
    const call = this.envdCall(principal, req, reply.raw);
    reply.hijack();
    await this.envd.rpc(call, method);
  }
}

/** envd's port in a sandbox (`E2b-Sandbox-Port`). */
const ENVD_PORT = '49983';

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  const s = Array.isArray(v) ? v[0] : v;
  return s ? s : undefined;
}

/**
 * E2B's error body `{code: <HTTP status>, message}` — with our own `error` object beside it, so
 * either kind of client reads it.
 */
export function renderE2bError(err: ApiError): RenderedError {
  return { status: err.status, body: { code: err.status, message: err.message, ...err.toBody() } };
}

/** A Connect call's error before the dispatcher took it: a stream's end-of-stream frame (HTTP 200), or a unary error. */
export function renderConnectError(err: ApiError, req: FastifyRequest): RenderedError {
  const ct = (req.headers['content-type'] ?? '').toLowerCase();
  if (ct.startsWith('application/connect+')) {
    return { status: 200, headers: { 'content-type': 'application/connect+json' }, body: endStream(err) };
  }
  const e = unaryErrorBody(err);
  return { status: e.status, headers: { 'content-type': 'application/json' }, body: e.body };
}
