/**
 * The worker's end of one `scaibunker-mux` connection (core/src/worker/mux.ts), opened by
 * WorkerHttpServer once the upgrade's token checked out. Each CALL runs like the route's HTTP
 * request does: its params, query and body are validated against the route's schemas (with
 * the options Fastify validates the HTTP routes with), then decode → the verb (the server's
 * `invoke`) → toWire, and the answer is one RESULT, EXIT or ERROR frame. An exec's output goes
 * out only within the credit its caller granted, so a slow controller holds the command back
 * (as a full socket does over HTTP) rather than this side buffering it. A CANCEL, or the
 * connection going away, aborts the call's signal, as an HTTP client hanging up does.
 * A malformed frame ends the connection.
 */
import type { Duplex } from 'node:stream';
import {
  type AnyWireRequest,
  type AnyWorkerRoute,
  encodeMuxFrame,
  encodeMuxJson,
  MUX_CHUNK,
  MUX_EXEC_WINDOW,
  MUX_HEADER_SIZE,
  MUX_KINDS,
  MUX_MAX_CALL,
  MUX_MAX_REPLY,
  type MuxFrame,
  MuxFrameDecoder,
  MuxFrameType,
  MuxProtocolError,
  parseMuxJson,
  TurnBatchedWriter,
  WORKER_ROUTES,
  type WorkerVerb,
} from '@scaibunker/core';
import Ajv, { type ValidateFunction } from 'ajv';
import { type ExecHandlers, WorkerError } from '../WorkerApi.js';

export type InvokeVerb = (verb: WorkerVerb, args: unknown[]) => Promise<unknown>;
/** Called once per answered call: the route, the HTTP status it would have had, the time taken and the caller's request id. */
export type MuxCallLog = (route: AnyWorkerRoute, status: number, ms: number, requestId: string | undefined) => void;
export type ErrorStatus = (err: WorkerError, route: AnyWorkerRoute) => number;

/** Fastify's own validation options (@fastify/ajv-compiler), so a call is accepted exactly when its HTTP request would be. */
const ajv = new Ajv({ coerceTypes: 'array', useDefaults: true, removeAdditional: true, allErrors: false });
const validators = new Map<AnyWorkerRoute, Array<[part: 'params' | 'query' | 'body', validate: ValidateFunction]>>();

function validatorsOf(route: AnyWorkerRoute): Array<['params' | 'query' | 'body', ValidateFunction]> {
  let list = validators.get(route);
  if (!list) {
    list = [];
    for (const part of ['params', 'query', 'body'] as const) if (route[part]) list.push([part, ajv.compile(route[part] as object)]);
    validators.set(route, list);
  }
  return list;
}

interface ServerCall {
  abort: AbortController;
  /** Output bytes the caller lets us send. */
  credit: number;
  /** Output waiting for credit (stdout and stderr may both wait). */
  waiting: Array<() => void>;
}

function wake(call: ServerCall): void {
  for (const resolve of call.waiting.splice(0)) resolve();
}

export class WorkerMuxSession {
  private readonly calls = new Map<number, ServerCall>();
  private readonly decoder = new MuxFrameDecoder(MUX_MAX_CALL);
  private closed = false;
  private readonly out: TurnBatchedWriter;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Duplex,
    private readonly invoke: InvokeVerb,
    private readonly statusOf: ErrorStatus,
    private readonly log?: MuxCallLog,
  ) {
    this.out = new TurnBatchedWriter(socket);
    (socket as Duplex & { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const frame of this.decoder.push(chunk)) this.handle(frame);
      } catch (err) {
        // Not our protocol (or a bug on the other side): nothing on this connection can be trusted.
        if (!(err instanceof MuxProtocolError)) process.stderr.write(`[worker-mux] ${(err as Error).stack}\n`);
        socket.destroy();
      }
    });
    socket.on('drain', () => this.wakeDrain());
    socket.on('error', () => {}); // the close below handles it
    socket.on('close', () => {
      this.closed = true;
      for (const call of this.calls.values()) this.cancel(call, 'client disconnected');
      this.wakeDrain();
    });
  }

  private handle(frame: MuxFrame): void {
    const call = this.calls.get(frame.id);
    switch (frame.type) {
      case MuxFrameType.CALL: {
        if (call) throw new MuxProtocolError(`call id ${frame.id} is in use`);
        const msg = parseMuxJson(frame.payload) as { v?: unknown; w?: AnyWireRequest; r?: unknown } | undefined;
        if (typeof msg !== 'object' || msg === null) throw new MuxProtocolError('CALL is not an object');
        void this.run(frame.id, msg.v, msg.w ?? {}, typeof msg.r === 'string' ? msg.r : undefined);
        return;
      }
      case MuxFrameType.CREDIT:
        if (frame.payload.length !== 4) throw new MuxProtocolError('CREDIT of a wrong size');
        if (!call) return; // the call ended meanwhile
        call.credit += frame.payload.readUInt32BE(0);
        wake(call);
        return;
      case MuxFrameType.CANCEL:
        if (call) this.cancel(call, 'cancelled by the caller');
        return;
      default:
        throw new MuxProtocolError(`unknown frame type ${frame.type}`);
    }
  }

  private cancel(call: ServerCall, why: string): void {
    if (!call.abort.signal.aborted) call.abort.abort(new Error(why));
    wake(call);
  }

  private async run(id: number, verb: unknown, wire: AnyWireRequest, requestId: string | undefined): Promise<void> {
    const started = performance.now();
    const call: ServerCall = { abort: new AbortController(), credit: MUX_EXEC_WINDOW, waiting: [] };
    this.calls.set(id, call);
    const route =
      typeof verb === 'string' && Object.hasOwn(WORKER_ROUTES, verb) ? (WORKER_ROUTES[verb as WorkerVerb] as AnyWorkerRoute) : undefined;
    let status = 200;
    try {
      if (!route || !MUX_KINDS.has(route.kind)) {
        status = 404;
        this.send(encodeMuxJson(id, MuxFrameType.ERROR, { code: 'ROUTE_NOT_FOUND', message: `no channel call ${String(verb)}` }));
        return;
      }
      const request: AnyWireRequest = { params: wire.params, query: wire.query, body: wire.body };
      for (const [part, validate] of validatorsOf(route)) {
        if (!validate(request[part])) {
          status = 400;
          const e = validate.errors?.[0];
          const message = `${part}${e?.instancePath ?? ''} ${e?.message ?? 'is invalid'}`;
          this.send(encodeMuxJson(id, MuxFrameType.ERROR, { code: 'VALIDATION_FAILED', message }));
          return;
        }
      }
      if (route.kind === 'exec') {
        const handlers: ExecHandlers = {
          onStdout: (chunk) => this.output(id, call, MuxFrameType.STDOUT, chunk),
          onStderr: (chunk) => this.output(id, call, MuxFrameType.STDERR, chunk),
          signal: call.abort.signal,
        };
        const outcome = await this.invoke(route.verb, route.decode({ ...request, handlers }));
        this.send(encodeMuxJson(id, MuxFrameType.EXIT, outcome));
        return;
      }
      const result = await this.invoke(route.verb, route.decode(request));
      if (route.kind === 'empty') {
        status = 204;
        this.send(encodeMuxFrame(id, MuxFrameType.RESULT));
      } else {
        const frame = encodeMuxJson(id, MuxFrameType.RESULT, route.toWire ? route.toWire(result) : result);
        // Larger than the controller takes: that call fails (as an over-long HTTP answer does), not the connection.
        if (frame.length - MUX_HEADER_SIZE > MUX_MAX_REPLY) throw new WorkerError('IO_ERROR', 'worker reply too large');
        this.send(frame);
      }
    } catch (err) {
      const known = err instanceof WorkerError;
      status = known && route ? this.statusOf(err, route) : 500;
      const message = err instanceof Error ? err.message : String(err);
      if (!known)
        process.stderr.write(
          `[worker-mux] call ${String(verb)} → 500 (request ${requestId ?? '-'}): ${(err as Error)?.stack ?? message}\n`,
        );
      this.send(encodeMuxJson(id, MuxFrameType.ERROR, { code: known ? err.code : 'INTERNAL', message }));
    } finally {
      this.calls.delete(id);
      if (route) this.log?.(route, status, performance.now() - started, requestId);
    }
  }

  /** One output chunk of an exec: sent within the call's credit, in pieces; resolves once the socket takes more. */
  private async output(id: number, call: ServerCall, type: number, chunk: Buffer): Promise<void> {
    for (let off = 0; off < chunk.length; ) {
      while (call.credit <= 0 && !call.abort.signal.aborted) await new Promise<void>((resolve) => call.waiting.push(resolve));
      if (call.abort.signal.aborted || this.closed) return;
      const n = Math.min(call.credit, MUX_CHUNK, chunk.length - off);
      call.credit -= n;
      const more = this.send(encodeMuxFrame(id, type, chunk.subarray(off, off + n)));
      off += n;
      if (!more) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
  }

  /** A frame to the controller (frames of one turn share a write, see TurnBatchedWriter); false when the socket asks to wait for 'drain'. */
  private send(frame: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return true;
    return this.out.write(frame);
  }

  private wakeDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
