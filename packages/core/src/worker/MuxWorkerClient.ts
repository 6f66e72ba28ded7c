/**
 * The controller's handle on a remote worker daemon over the multiplexed channel (mux.ts):
 * generated from WORKER_ROUTES like HttpWorkerClient, and indistinguishable from it to callers
 * (same results, same WorkerErrors). The routes of MUX_KINDS (empty, json, exec) travel as
 * calls on one long-lived connection per worker — no HTTP request, no per-call headers or
 * parsing; the streaming kinds (uploads, downloads, event streams, tunnels) go over HTTP
 * through an HttpWorkerClient. The connection is opened on the first call and again on the
 * first call after it was lost; the calls in flight when it is lost fail WORKER_UNAVAILABLE.
 * A worker from before the channel (it answers the upgrade 404) is called over HTTP for every
 * verb, and asked again after HTTP_FALLBACK_MS (it may have been upgraded meanwhile).
 */
import { WorkerError } from './errors.js';
import { HttpWorkerClient, type HttpWorkerClientOptions } from './HttpWorkerClient.js';
import { MuxChannel, MuxUnsupported } from './MuxChannel.js';
import { MUX_KINDS } from './mux.js';
import { type AnyWorkerRoute, WORKER_ROUTES, type WorkerTarget, type WorkerVerb } from './routes.js';

/** How long a worker without the channel is called over HTTP before the upgrade is tried again. */
export const HTTP_FALLBACK_MS = 60_000;

export class MuxWorkerClient implements WorkerTarget {
  private readonly base: URL;
  private readonly http: HttpWorkerClient;
  private channel: MuxChannel | null = null;
  private opening: Promise<MuxChannel> | null = null;
  /** Until when calls go over HTTP (the worker had no channel). */
  private httpUntil = 0;

  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly options: HttpWorkerClientOptions = {},
  ) {
    this.base = new URL(baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`);
    this.http = new HttpWorkerClient(baseUrl, token, options);
  }

  readonly spawn = this.verb('spawn');
  readonly destroy = this.verb('destroy');
  readonly pause = this.verb('pause');
  readonly resume = this.verb('resume');
  readonly snapshot = this.verb('snapshot');
  readonly exec = this.verb('exec');
  readonly startProcess = this.verb('startProcess');
  readonly listProcesses = this.verb('listProcesses');
  readonly getProcess = this.verb('getProcess');
  readonly processEvents = this.verb('processEvents');
  readonly writeStdin = this.verb('writeStdin');
  readonly closeStdin = this.verb('closeStdin');
  readonly signalProcess = this.verb('signalProcess');
  readonly resizeProcess = this.verb('resizeProcess');
  readonly watchFiles = this.verb('watchFiles');
  readonly readFile = this.verb('readFile');
  readonly openTunnel = this.verb('openTunnel');
  readonly writeFile = this.verb('writeFile');
  readonly stat = this.verb('stat');
  readonly list = this.verb('list');
  readonly mkdir = this.verb('mkdir');
  readonly remove = this.verb('remove');
  readonly stats = this.verb('stats');
  readonly createBridge = this.verb('createBridge');
  readonly deleteBridge = this.verb('deleteBridge');
  readonly ensureImage = this.verb('ensureImage');
  readonly openCachedImage = this.verb('openCachedImage');

  /** Ends the channel once its calls are done and drops pooled HTTP connections; a later call connects again. */
  close(): void {
    this.channel?.close();
    this.channel = null;
    const opening = this.opening;
    this.opening = null;
    // A channel being opened is closed too, once the calls waiting for it are on it.
    opening?.then(
      (channel) => setImmediate(() => channel.close()),
      () => undefined,
    );
    this.http.close();
  }

  /** The verb `k` as a function: a call on the channel, or the HTTP client's verb for the streaming kinds. */
  private verb<K extends WorkerVerb>(k: K): WorkerTarget[K] {
    const route = WORKER_ROUTES[k] as AnyWorkerRoute;
    if (!MUX_KINDS.has(route.kind))
      return ((...args: unknown[]) => (this.http[k] as (...a: unknown[]) => unknown)(...args)) as WorkerTarget[K];
    return ((...args: unknown[]) => this.call(route, args)) as WorkerTarget[K];
  }

  private async call(route: AnyWorkerRoute, args: unknown[]): Promise<unknown> {
    const overHttp = () => (this.http[route.verb] as (...a: unknown[]) => Promise<unknown>)(...args);
    if (Date.now() < this.httpUntil) return overHttp();
    const wire = route.encode(...args);
    // Asked now, in the caller's context (the controller's request id lives in an AsyncLocalStorage).
    const requestId = this.options.headers?.()['x-request-id'];
    let channel: MuxChannel;
    try {
      channel = await this.connect();
    } catch (err) {
      if (!(err instanceof MuxUnsupported)) throw err;
      this.httpUntil = Date.now() + HTTP_FALLBACK_MS;
      return overHttp();
    }
    if (wire.handlers?.signal?.aborted) throw new WorkerError('IO_ERROR', 'request aborted by the caller');
    return channel.call(route, wire, typeof requestId === 'string' ? requestId : undefined);
  }

  /** The open channel, or a new one (concurrent callers share one attempt). */
  private connect(): Promise<MuxChannel> {
    if (this.channel?.usable) return Promise.resolve(this.channel);
    if (!this.opening) {
      const opening: Promise<MuxChannel> = MuxChannel.open(this.base, this.token)
        .then((channel) => {
          if (this.opening === opening) this.channel = channel;
          return channel;
        })
        .finally(() => {
          if (this.opening === opening) this.opening = null;
        });
      this.opening = opening;
    }
    return this.opening;
  }
}
